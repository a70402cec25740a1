"""The configuration tree: every option defined once, parts record what ran, old runs resume."""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.errors import ConfigError
from metasd_pyg.models.config import ModelName
from metasd_pyg.models.factory import MODEL_NAMES, build_model
from metasd_pyg.pruning import Pruner, PruningSchedule
from metasd_pyg.pruning.config import STRATEGIES
from metasd_pyg.runs.config import RunOptions
from metasd_pyg.sections import Section, literal_choices
from metasd_pyg.training import MetaSD, MetaStep, train_metasd
from metasd_pyg.training.config import MetaSDConfig, resumable_keys
from metasd_pyg.training.modes import MODES, ROLES
from metasd_pyg.training.recipes import RECIPES

from .helpers import tiny_evaluate, toy_graph

SECTIONS = [*MetaSDConfig.section_types().values(), RunOptions]


def _train_parser() -> argparse.ArgumentParser:
    from metasd_pyg.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def test_every_train_flag_maps_to_exactly_one_section_field() -> None:
    owners: dict[str, list[str]] = {}
    for section in SECTIONS:
        for opt in section.options():
            owners.setdefault(opt.key, []).append(f"{section.__name__}.{opt.name}")
    assert {k: v for k, v in owners.items() if len(v) > 1} == {}
    flags = {a.dest: a for a in _train_parser()._actions
             if any(s.startswith("--") for s in a.option_strings)}
    cli_only = {"help", "json", "quiet", "verbose", "debug", "config", "overwrite", "resume",
                "print_config", "preset"}
    assert set(flags) - cli_only == set(owners)
    for key, action in flags.items():
        if key in cli_only:
            continue
        assert f"--{key.replace('_', '-')}" in action.option_strings
        assert action.help and "(default" in action.help, key  # help text from the section


def test_every_option_has_help_and_a_literal_value_set_where_it_has_choices() -> None:
    from metasd_pyg.runs.options import docstring_args

    for section in SECTIONS:
        helps = docstring_args(section)
        for opt in section.options():
            assert helps.get(opt.name), f"{section.__name__}.{opt.name} has no help text"
    # the value sets exist once, as Literal types, and the rest of the code derives from them
    assert typing.get_args(ModelName) == MODEL_NAMES
    assert set(STRATEGIES) == set(literal_choices(typing.get_type_hints(
        MetaSDConfig().pruning.__class__)["strategy"]) or ())
    assert set(MODES) == set(ROLES) == set(RECIPES)


def test_sections_validate_their_own_values_with_the_flat_key() -> None:
    with pytest.raises(ConfigError, match=r"meta_every=0: must be >= 1"):
        MetaSDConfig.flat(meta_every=0)
    with pytest.raises(ConfigError, match=r"strategy='nope': expected one of"):
        MetaSDConfig.flat(strategy="nope")
    with pytest.raises(ConfigError, match=r"unknown config option\(s\): sparsty; did you mean"):
        MetaSDConfig.flat(sparsty=0.5)
    # one range per option: the pruner and the configuration agree (they are one section)
    assert Pruner("degree", 0.5, k_min=0).config.k_min == 0
    MetaSDConfig.flat(k_min=0)
    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError, match="sparsity"):
            Pruner("degree", bad)
        with pytest.raises(ConfigError, match="sparsity"):
            MetaSDConfig.flat(sparsity=bad)


@settings(max_examples=40, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "dim": st.integers(1, 512), "sparsity": st.floats(0.0, 0.99),
    "strategy": st.sampled_from(STRATEGIES), "meta": st.booleans(),
    "meta_every": st.integers(1, 9), "mode": st.sampled_from(MODES),
    "eval_batch_size": st.none() | st.integers(1, 4096), "seed": st.integers(0, 10**6),
    "student_regularizer_weight": st.none() | st.floats(0.0, 1.0),
}))
def test_flat_form_round_trips(values: dict[str, Any]) -> None:
    cfg = MetaSDConfig.flat(**values)
    flat = cfg.to_dict()
    assert MetaSDConfig.from_dict(flat) == cfg
    assert {k: flat[k] for k in values} == values
    assert json.loads(json.dumps(flat)) == flat
    assert cfg.replace(epochs=7).trainer.epochs == 7


def test_built_parts_and_models_are_recorded_as_they_ran() -> None:
    graph = toy_graph(n=120)
    model = build_model("distmult", graph.num_entities, graph.num_relations, 16)
    run = MetaSD(model, graph, pruner=Pruner("aligned", 0.8, k_min=2), epochs=1,
                 batch_size=16, quiz_fraction=0.1, progress=False, evaluator=tiny_evaluate,
                 meta=MetaStep(every=3, path="full", quiz_batch_size=4))
    cfg = run.config
    assert (cfg.model.name, cfg.model.dim, cfg.model.init_scale) == ("distmult", 16, None)
    assert (cfg.pruning.strategy, cfg.pruning.sparsity, cfg.pruning.k_min) == ("aligned", 0.8, 2)
    assert (cfg.meta.enabled, cfg.meta.every, cfg.meta.path, cfg.meta.quiz_batch_size) == \
        (True, 3, "full", 4)
    # the schedule targets the pruner's sparsity, and the result records the same config
    res = run.fit()
    assert res.config == cfg and res.history[-1]["sparsity"] == pytest.approx(0.8, abs=0.02)
    flat = res.to_dict()["config"]
    assert (flat["model"], flat["dim"], flat["strategy"], flat["meta_every"]) == \
        ("distmult", 16, "aligned", 3)
    # the no-meta ablation and a schedule of one's own
    off = MetaSD(None, graph, meta=False, dim=8, epochs=1, progress=False,
                 schedule=PruningSchedule(0.5, every_epochs=2), sparsity=0.5,
                 evaluator=tiny_evaluate)
    assert off.config.meta.enabled is False and off.config.schedule.every_epochs == 2
    dense = train_metasd(graph, dim=8, mode="dense_same_nnz", epochs=1, progress=False)
    assert dense.config.model.dim == 8  # the mode names the comparison; its width is derived


def test_the_trainer_has_no_mode_branches() -> None:
    """Modes are compositions (training.recipes); the loop and the step never read one."""
    import metasd_pyg.training.trainer as trainer_module

    tree = ast.parse(Path(trainer_module.__file__).read_text(encoding="utf-8"))
    names = set(MODES) | {"finetune"}
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                and isinstance(n.value, str)}
    assert not literals & names
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert "mode" not in attrs and "recipe" not in attrs


def test_resumable_options_are_marked_in_their_sections() -> None:
    assert resumable_keys() == {"epochs", "finetune_epochs", "patience", "progress", "threads",
                                "device", "eval_batch_size", "max_steps", "final_eval",
                                "dist_backend", "dist_timeout", "dist_check_every", "huge_pages"}


FIXTURE = Path(__file__).parent.parent / "fixtures" / "run_before_sections"


def test_a_run_folder_written_before_the_sections_resumes(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    """A checkpointed run of the flat-config release (written by commit 4d269cd: no meta
    step, a 2-epoch sparsity ramp, 2 of its epochs) resumes to the fourth epoch with the
    result that release gives (0.20467804826221583). Its config predates ``ramp``."""
    from metasd_pyg.cli.main import main

    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    assert "ramp" not in json.loads((run / "config.json").read_text())
    code = main(["train", "--out", str(run), "--resume", "--epochs", "4", "--json", "-q"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["training"]["epochs"] == 4
    assert out["models"]["student"]["test"]["mrr"] == 0.20467804826221583
    saved = json.loads((run / "config.json").read_text())
    assert saved["epochs"] == 4 and saved["ramp_epochs"] == 2 and saved["ramp"] == "cubic"


def test_section_subclasses_are_frozen_values() -> None:
    for section in MetaSDConfig.section_types().values():
        inst = section()
        assert isinstance(inst, Section)
        with pytest.raises(AttributeError):
            inst.__setattr__(section.options()[0].name, None)


def test_presets_resolve_below_the_file_and_the_flags() -> None:
    from metasd_pyg.runs.config import RunConfig

    cfg = MetaSDConfig.from_preset("paper", epochs=5)
    assert (cfg.pruning.strategy, cfg.meta.every, cfg.distill.student_weight) == ("global", 1, 1.0)
    assert cfg.loss.student_regularizer_weight is None and cfg.trainer.epochs == 5
    run = RunConfig.resolve({"dataset": "umls", "meta_every": 3}, {"lr": "0.2"}, preset="paper")
    assert (run.train.meta.every, run.train.optim.lr, run.train.pruning.strategy) == \
        (3, 0.2, "global")
    with pytest.raises(ConfigError, match="unknown preset 'papr'"):
        MetaSDConfig.from_preset("papr")
