import argparse
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metasd_pyg.errors import ConfigError
from metasd_pyg.runs.config import QUICKSTART, RunConfig, parse_bins
from metasd_pyg.runs.options import (
    add_dataclass_flags,
    build_dataclass,
    coerce,
    docstring_args,
    read_config_file,
)
from metasd_pyg.runs.pipeline import check_resume, default_run_dir
from metasd_pyg.training.config import MetaSDConfig


@dataclass
class Toy:
    """A toy.

    Args:
        count: How many
            (continued line).
        rate: A ``float`` rate.
        name: Name.
        flag: Switch.
        limit: Optional cap.
    """

    count: int = 1
    rate: float = 0.5
    name: str = "x"
    flag: bool = True
    limit: int | None = None


def test_docstring_args_and_flags():
    helps = docstring_args(Toy)
    assert helps["count"] == "How many (continued line)."
    assert helps["rate"] == "A float rate."
    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, Toy)
    ns = parser.parse_args(["--count", "3", "--no-flag", "--limit", "none"])
    assert vars(ns) == {"count": "3", "flag": False, "limit": "none"}  # only given flags
    assert build_dataclass(Toy, vars(ns), "flags") == Toy(count=3, flag=False, limit=None)


@pytest.mark.parametrize(("value", "tp", "expected"), [
    ("3", int, 3), (3.0, int, 3), ("1_000", int, 1000), ("0.25", float, 0.25), (2, float, 2.0),
    ("yes", bool, True), ("off", bool, False), (True, bool, True), ("none", int | None, None),
    (None, float | None, None), ("7", int | None, 7), ("a,b", tuple[str, ...], ("a", "b")),
    ([1, 2], list[int], [1, 2]), (5, str, "5"),
])
def test_coerce(value, tp, expected):
    assert coerce(value, tp, "here") == expected


@pytest.mark.parametrize(("value", "tp"), [
    ("abc", int), (1.5, int), (True, int), ("x", float), ("inf", float), ("maybe", bool),
    (None, int), ({"a": 1}, str), (True, float),
])
def test_coerce_errors_name_the_value(value, tp):
    with pytest.raises(ConfigError, match=r"^here: "):
        coerce(value, tp, "here")


@given(st.integers(-10**9, 10**9))
def test_coerce_int_round_trip(n):
    assert coerce(str(n), int, "x") == n


def test_config_file_sections_are_checked(tmp_path):
    from metasd_pyg.errors import ConfigError

    sections = RunConfig.file_sections()
    good = tmp_path / "good.toml"
    good.write_text('dataset = "umls"\n[meta]\nevery = 2\nlr = 0.01\n'
                    '[optim]\nlr = 0.3\n[train]\nepochs = 4\n')
    # a key without its section's prefix: `lr` in [meta] is the meta step's meta_lr
    assert read_config_file(good, sections) == {"dataset": "umls", "meta_every": 2,
                                                "meta_lr": 0.01, "lr": 0.3, "epochs": 4}
    bad = {
        "twice.toml": ('lr = 0.1\n[optim]\nlr = 0.2\n', "option 'lr' is given twice"),
        "twice.yaml": ("optim:\n  lr: 0.1\ntrain:\n  lr: 0.2\n", "option 'lr' is given twice"),
        "unknown.toml": ('[trainig]\nepochs = 3\n',
                         r"option 'epochs' is in an unknown section \[trainig\] "
                         r"\(did you mean \[train\]\?\)"),
        "misplaced.yaml": ("meta:\n  sparsity: 0.8\n",
                           r"section \[meta\] has no option 'sparsity'; it belongs in "
                           r"\[pruning\]"),
    }
    for name, (text, message) in bad.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=message):
            read_config_file(tmp_path / name, sections)
    # without the sections (a generic reader) any grouping flattens
    assert read_config_file(tmp_path / "unknown.toml") == {"epochs": 3}


def test_read_config_files(tmp_path):
    (tmp_path / "a.yaml").write_text("epochs: 3\ntrain:\n  batch-size: 10\n")
    (tmp_path / "a.toml").write_text("epochs = 3\n[train]\nbatch_size = 10\n")
    (tmp_path / "a.json").write_text('{"epochs": 3, "batch_size": 10}')
    for name in ("a.yaml", "a.toml", "a.json"):
        assert read_config_file(tmp_path / name) == {"epochs": 3, "batch_size": 10}
    (tmp_path / "empty.yaml").write_text("")
    assert read_config_file(tmp_path / "empty.yaml") == {}
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "bad.json").write_text('{"a": 1,\n}')
    (tmp_path / "bad.toml").write_text("a = \n")
    (tmp_path / "latin.yaml").write_bytes(b"name: caf\xe9\n")
    cases = {"list.yaml": "mapping", "bad.json": "bad.json:2", "bad.toml": "bad.toml",
             "latin.yaml": "not UTF-8", "nope.yaml": "does not exist", "x.cfg": "unknown format"}
    (tmp_path / "x.cfg").write_text("")
    for name, needle in cases.items():
        with pytest.raises(ConfigError, match=needle):
            read_config_file(tmp_path / name)


def test_resolve_precedence_and_round_trip():
    cfg = RunConfig.resolve()
    assert cfg.run.dataset == "synthetic"
    assert {k: cfg.train.to_dict()[k] for k in QUICKSTART} == QUICKSTART
    assert (RunConfig.resolve({"dataset": "umls"}).train.trainer.epochs
            == MetaSDConfig().trainer.epochs)
    cfg = RunConfig.resolve({"epochs": 5, "lr": 0.2}, {"epochs": "6"})
    assert (cfg.train.trainer.epochs, cfg.train.optim.lr) == (6, 0.2)
    again = RunConfig.from_dict(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict()
    with pytest.raises(ConfigError, match=r"run\.yaml: unknown option 'lrr'; did you mean 'lr'"):
        RunConfig.resolve({"lrr": 1}, file_name="run.yaml")
    with pytest.raises(ConfigError, match="--epochs"):
        RunConfig.resolve({}, {"epochs": "x"})
    with pytest.raises(ConfigError, match="bucket_by"):
        RunConfig.resolve({"bucket_by": "size"})


def test_check_resume_and_defaults(tmp_path):
    saved = RunConfig.resolve({"dataset": "umls", "epochs": 5})
    check_resume(saved, RunConfig.resolve({"dataset": "umls", "epochs": 9, "threads": 1}),
                 tmp_path)
    with pytest.raises(ConfigError, match="cannot change dim"):
        check_resume(saved, RunConfig.resolve({"dataset": "umls", "epochs": 5, "dim": 8}),
                     tmp_path)
    path = default_run_dir(RunConfig.resolve({"dataset": "synthetic:entities=50"}))
    assert path.parent.name == "runs" and path.name.startswith("synthetic-metasd-")
    assert parse_bins("log:2") == "log:2" and parse_bins("1, 4,16") == [1.0, 4.0, 16.0]
    with pytest.raises(ConfigError):
        parse_bins("1,a")


def test_saved_configs_predating_an_option_keep_the_value_they_ran_with(tmp_path):
    from metasd_pyg.training.config import added_later, saved_config_values

    old = RunConfig.resolve({"dataset": "umls"}).to_dict()
    for key in added_later():
        del old[key]
    saved = RunConfig.from_dict(saved_config_values(old))
    assert saved.train.pruning.k_max_factor is None
    assert saved.train.distill.teacher_distill_warmup_epochs == 0
    assert saved.train.distill.student_logit_scale == 1.0
    with pytest.raises(ConfigError, match=r"cannot change (k_max_factor|student_logit_scale)"):
        check_resume(saved, RunConfig.resolve({"dataset": "umls"}), tmp_path)
    with pytest.raises(ConfigError, match="cannot change student_logit_scale"):
        check_resume(saved, RunConfig.resolve({"dataset": "umls", "k_max_factor": None}),
                     tmp_path)
    check_resume(saved, RunConfig.resolve({"dataset": "umls", "k_max_factor": None,
                                           "student_logit_scale": 1.0}), tmp_path)


def test_the_memory_plan_counts_the_final_phase() -> None:
    """results.json's per-query ranks are planned: per test query, direction and model."""
    from metasd_pyg.data import generate_synthetic
    from metasd_pyg.runs.pipeline import (
        FINAL_RESULTS_ITEM,
        RESULTS_BYTES_PER_QUERY,
        _check_memory,
        final_results_bytes,
    )

    graph = generate_synthetic(300, 6, 4000, seed=1)
    queries = 2 * int(graph.test.size(0))
    metasd = RunConfig.resolve({"dataset": "umls", "mode": "metasd", "progress": False})
    teacher = RunConfig.resolve({"dataset": "umls", "mode": "teacher", "progress": False})
    assert final_results_bytes(graph, metasd) == 2 * queries * RESULTS_BYTES_PER_QUERY
    assert final_results_bytes(graph, teacher) == queries * RESULTS_BYTES_PER_QUERY
    smoke = RunConfig.resolve({"dataset": "umls", "max_steps": 3})
    assert final_results_bytes(graph, smoke) == 0  # no final evaluation
    final_eval = RunConfig.resolve({"dataset": "umls", "max_steps": 3, "final_eval": True})
    assert final_results_bytes(graph, final_eval) > 0
    plan = _check_memory(graph, metasd)
    assert plan.transient[FINAL_RESULTS_ITEM] == final_results_bytes(graph, metasd)


def test_the_memory_plan_counts_every_rank_on_the_machine() -> None:
    from metasd_pyg.data import generate_synthetic
    from metasd_pyg.errors import ConfigError
    from metasd_pyg.runs.pipeline import _check_memory

    graph = generate_synthetic(300, 6, 4000, seed=1)
    one = _check_memory(graph, RunConfig.resolve({"dataset": "umls", "progress": False}))
    limit_gb = 1.5 * one.peak_bytes / 1e9  # one rank fits, two do not
    cfg = RunConfig.resolve({"dataset": "umls", "progress": False, "memory_limit": limit_gb})
    assert _check_memory(graph, cfg).peak_bytes == one.peak_bytes
    with pytest.raises(ConfigError, match=r"2 ranks on this machine, .* GB each, together"):
        _check_memory(graph, cfg, ranks_here=2)
