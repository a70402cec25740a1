import pytest

from metasd_pyg.errors import RunFolderError
from metasd_pyg.storage import RunFolder


def test_create_writes_marker_and_versions(tmp_path):
    run = RunFolder.create(tmp_path / "a" / "run", command=["train"])
    assert RunFolder.is_run_folder(run.path)
    versions = run.read_versions()
    for key in ("python", "torch", "torch_geometric", "metasd_pyg"):
        assert versions[key]
    assert run.checkpoint_dir.is_dir()
    assert run.marker()["status"] == "running"
    run.mark_complete(wall_time=1.5)
    assert run.marker()["status"] == "complete"


def test_existing_run_not_overwritten_without_flag(tmp_path):
    run = RunFolder.create(tmp_path / "run")
    run.write_config({"x": 1})
    with pytest.raises(RunFolderError, match="--overwrite"):
        RunFolder.create(tmp_path / "run")
    assert run.read_config() == {"x": 1}
    again = RunFolder.create(tmp_path / "run", overwrite=True)
    assert not (again.path / "config.json").exists()


def test_foreign_folder_never_deleted(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    for kwargs in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(RunFolderError):
            RunFolder.create(tmp_path / "mine", **kwargs)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_empty_folder_is_fine_and_file_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    RunFolder.create(tmp_path / "empty")
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunFolderError, match="not a directory"):
        RunFolder.create(tmp_path / "f")


def test_resume_and_flags(tmp_path):
    with pytest.raises(RunFolderError, match="cannot resume"):
        RunFolder.create(tmp_path / "none", resume=True)
    run = RunFolder.create(tmp_path / "run")
    run.append_metrics({"epoch": 1, "mrr": 0.1})
    resumed = RunFolder.create(tmp_path / "run", resume=True)
    assert resumed.read_metrics() == [{"epoch": 1, "mrr": 0.1}]
    assert "resumed" in resumed.marker()
    with pytest.raises(RunFolderError, match="exclude"):
        RunFolder.create(tmp_path / "run", resume=True, overwrite=True)


def test_open_errors(tmp_path):
    with pytest.raises(RunFolderError, match="does not exist"):
        RunFolder.open(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="not a metasd-pyg run folder"):
        RunFolder.open(tmp_path / "bad")
    run = RunFolder.create(tmp_path / "ok")
    with pytest.raises(RunFolderError, match="missing"):
        RunFolder.open(run.path).read_results()


def test_jsonl_logs_truncate_and_torn_line(tmp_path):
    run = RunFolder.create(tmp_path / "run")
    for epoch in range(1, 5):
        run.append_metrics({"epoch": epoch, "mrr": epoch / 10})
        run.append_train_log({"epoch": epoch, "loss": 1.0 / epoch})
    run.truncate_logs(after_epoch=2)
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2]
    assert [r["epoch"] for r in run.read_train_log()] == [1, 2]
    with open(run.path / run.METRICS, "a") as fh:
        fh.write('{"epoch": 3, "mr')  # crash in the middle of a write
    assert [r["epoch"] for r in run.read_metrics()] == [1, 2]
    (run.path / run.METRICS).write_text('{"a": 1}\nbroken\n{"b": 2}\n')
    with pytest.raises(RunFolderError, match=":2:"):
        run.read_metrics()


def test_model_weights_round_trip(tmp_path):
    import torch

    run = RunFolder.create(tmp_path / "run")
    with pytest.raises(RunFolderError, match="--resume"):
        run.read_model()
    params = {"node_emb.weight": torch.randn(5, 3), "rel_emb.weight": torch.randn(4, 3)}
    masks = {"node_emb.weight": torch.rand(5, 3) < 0.5}
    run.write_model(params, masks, {"model": "distmult", "dim": 3},
                    extra={"names": torch.arange(3).to(torch.uint8)})
    p, m, meta, extra = run.read_model()
    assert extra["names"].tolist() == [0, 1, 2]
    assert meta == {"model": "distmult", "dim": 3}
    assert torch.equal(p["rel_emb.weight"], params["rel_emb.weight"])
    assert torch.equal(m["node_emb.weight"], masks["node_emb.weight"]) and len(m) == 1
