import pytest

from metasd_pyg.storage import atomic_write, atomic_write_text


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "f.json"
    atomic_write_text(target, "old")

    def boom(fh):
        fh.write(b"partial")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_atomic_save_safetensors_round_trips_and_leaves_nothing_on_failure(tmp_path):
    import torch
    from safetensors.torch import load_file

    from metasd_pyg.storage.atomic import atomic_save_safetensors

    path = tmp_path / "m.safetensors"
    atomic_save_safetensors(path, {"a": torch.arange(6.0).reshape(2, 3)}, metadata={"k": "v"})
    assert torch.equal(load_file(str(path))["a"], torch.arange(6.0).reshape(2, 3))
    import os
    import stat

    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    base = torch.zeros(4)
    with pytest.raises(RuntimeError):  # safetensors refuses tensors sharing memory
        atomic_save_safetensors(path, {"x": base, "y": base[:2]})
    assert torch.equal(load_file(str(path))["a"], torch.arange(6.0).reshape(2, 3))  # old kept
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left
