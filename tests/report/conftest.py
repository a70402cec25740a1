
import pytest

from tests.paths import DATA_ROOT


@pytest.fixture(scope="session")
def nations_runs(tmp_path_factory):
    """Two finished runs on Nations: MetaSD and the same-non-zeros dense baseline."""
    if not (DATA_ROOT / "nations.tar.gz").is_file():
        pytest.skip(f"nations.tar.gz not found in {DATA_ROOT} (set METASD_DATA_ROOT)")
    from metasd_pyg.runs.config import RunConfig
    from metasd_pyg.runs.pipeline import train_run

    base = tmp_path_factory.mktemp("report")
    paths = []
    for mode in ("metasd", "dense_same_nnz"):
        out = base / mode
        cfg = RunConfig.resolve({"dataset": "nations", "data_root": str(DATA_ROOT), "dim": 16,
                                 "epochs": 2, "eval_every": 1, "batch_size": 1000,
                                 "progress": False, "report": mode == "metasd", "mode": mode,
                                 "out": str(out)})
        train_run(cfg)
        paths.append(out)
    return paths
