"""ogbl-wikikg2 layout: round trip through ogb's own loader and through load_dataset."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from metasd_pyg.data import SPLITS, generate_synthetic, load_dataset, write_ogb_wikikg2
from metasd_pyg.data.ogb_source import _numpy_allowlist
from metasd_pyg.errors import DataError


@pytest.fixture(scope="module")
def small():
    return generate_synthetic(300, 7, 3000, seed=5)


@pytest.fixture(scope="module")
def ogb_root(small, tmp_path_factory):
    root = tmp_path_factory.mktemp("ogbroot")
    write_ogb_wikikg2(small, root, num_candidates=40, seed=1)
    return root


def _read_with_ogb(root: Path):
    from ogb.linkproppred import LinkPropPredDataset

    with torch.serialization.safe_globals(list(_numpy_allowlist().values())):
        ds = LinkPropPredDataset("ogbl-wikikg2", root=str(root))
        return ds[0], ds.get_edge_split()


def test_ogb_own_loader_reads_identical_triples(small, ogb_root, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(ogb_root, copy)  # ogb writes processed/ next to the data
    graph, split = _read_with_ogb(copy)
    assert graph["num_nodes"] == small.num_entities
    assert np.array_equal(graph["edge_index"].T, small.train[:, [0, 2]].numpy())
    assert np.array_equal(graph["edge_reltype"][:, 0], small.train[:, 1].numpy())
    for s in SPLITS:
        d = split[s]
        got = np.stack([d["head"], d["relation"], d["tail"]], axis=1)
        assert np.array_equal(got, small.split(s).numpy())
    for s in ("valid", "test"):
        n = len(small.split(s))
        assert split[s]["head_neg"].shape == (n, 40) == split[s]["tail_neg"].shape
        assert not (split[s]["head_neg"] == split[s]["head"][:, None]).any()
        assert not (split[s]["tail_neg"] == split[s]["tail"][:, None]).any()


def test_load_dataset_round_trip(small, ogb_root, tmp_path):
    before = sorted(str(p) for p in ogb_root.rglob("*"))
    cache = tmp_path / "cache"
    g = load_dataset("ogbl-wikikg2", ogb_root, cache_dir=cache, progress=False)
    assert sorted(str(p) for p in ogb_root.rglob("*")) == before  # data root untouched
    assert (g.num_entities, g.num_relations) == (small.num_entities, small.num_relations)
    assert all(torch.equal(g.split(s), small.split(s)) for s in SPLITS)
    assert g.relation_names == small.relation_names
    _, split = _read_with_ogb(_copy(ogb_root, tmp_path / "c2"))
    for s in ("valid", "test"):
        for k in ("head_neg", "tail_neg"):
            assert torch.equal(g.candidates[s][k], torch.from_numpy(split[s][k]))
    again = load_dataset("ogbl-wikikg2", ogb_root, cache_dir=cache, progress=False)
    assert torch.equal(again.candidates["test"]["tail_neg"], g.candidates["test"]["tail_neg"])
    # Without our cache, ogb's leftover processed file (pickle protocol 4, unreadable
    # with weights_only=True) must not break the load.
    shutil.rmtree(cache / "processed")
    assert list(cache.glob("ogb/*/ogbl_wikikg2/processed/data_processed"))
    third = load_dataset("ogbl-wikikg2", ogb_root, cache_dir=cache, progress=False)
    assert torch.equal(third.valid, g.valid)
    # Rewriting a loaded graph keeps its candidates.
    write_ogb_wikikg2(g, tmp_path / "again")
    h = load_dataset("ogbl-wikikg2", tmp_path / "again", cache_dir=cache, progress=False)
    assert torch.equal(h.candidates["valid"]["head_neg"], g.candidates["valid"]["head_neg"])


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_zip_source(ogb_root, small, tmp_path):
    root = tmp_path / "zroot"
    root.mkdir()
    with zipfile.ZipFile(root / "wikikg-v2.zip", "w") as zf:
        for p in (ogb_root / "ogbl_wikikg2").rglob("*"):
            if p.is_file():
                zf.write(p, "wikikg-v2/" + str(p.relative_to(ogb_root / "ogbl_wikikg2")))
    g = load_dataset("ogbl-wikikg2", root, cache_dir=tmp_path / "c", progress=False)
    assert torch.equal(g.test, small.test)


def test_missing_release_marker_never_prompts(ogb_root, tmp_path):
    root = _copy(ogb_root, tmp_path / "r")
    (root / "ogbl_wikikg2" / "RELEASE_v1.txt").unlink()
    code = (
        "import sys\n"
        "from metasd_pyg.data import load_dataset\n"
        "from metasd_pyg.errors import DataError\n"
        "try:\n"
        f"    load_dataset('ogbl-wikikg2', {str(root)!r}, cache_dir={str(tmp_path / 'c')!r})\n"
        "except DataError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    # stdin is a pipe that stays open: an input() call would block until the timeout.
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 3
    assert "missing RELEASE_v1.txt" in out


def test_missing_dataset_names_what_and_how(tmp_path):
    with pytest.raises(DataError) as exc:
        load_dataset("ogbl-wikikg2", tmp_path, cache_dir=tmp_path / "c")
    msg = str(exc.value)
    assert "\n" not in msg and "ogbl_wikikg2/" in msg and "wikikg-v2.zip" in msg
    assert "METASD_DATA_ROOT" in msg


def test_unsafe_pickle_is_refused(ogb_root, tmp_path):
    import datetime

    root = _copy(ogb_root, tmp_path / "r")
    target = root / "ogbl_wikikg2" / "split" / "time" / "valid.pt"
    torch.save({"head": np.zeros(3, dtype=np.int64), "evil": datetime.date(2020, 1, 1)}, target)
    with pytest.raises(DataError, match=r"valid\.pt: refusing to unpickle 'datetime\.date'"):
        load_dataset("ogbl-wikikg2", root, cache_dir=tmp_path / "c", progress=False)


def test_writer_refuses_to_overwrite(small, ogb_root):
    with pytest.raises(DataError, match="already exists"):
        write_ogb_wikikg2(small, ogb_root)
