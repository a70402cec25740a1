"""Trainer: quiz slice, modes, checkpoints and resume equivalence, errors (small graphs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from metasd_pyg.errors import ConfigError, RunFolderError
from metasd_pyg.models.factory import build_model
from metasd_pyg.training.callbacks import Callback, StepContext
from metasd_pyg.training.config import MetaSDConfig
from metasd_pyg.training.dynamic import DynamicPruning
from metasd_pyg.training.recipes import Built, compose, same_nnz_dim
from metasd_pyg.training.trainer import Trainer

from .helpers import EverySchedule, PrefixPruner, tiny_evaluate, toy_graph


def _cfg(**kw: Any) -> MetaSDConfig:
    base: dict[str, Any] = dict(dim=8, epochs=4, batch_size=16, eval_every=2, progress=False,
                                meta=True, meta_every=2, quiz_fraction=0.1, quiz_batch_size=8,
                                seed=3, device="cpu", sparsity=0.5)
    base.update(kw)
    return MetaSDConfig.flat(**base)


def _trainer(cfg: MetaSDConfig, graph: Any = None, **kw: Any) -> Any:
    return compose(graph or toy_graph(n=120), cfg, Built(evaluator=tiny_evaluate, **kw))


def test_custom_pruner_and_schedule_plug_in() -> None:
    cfg = _cfg(epochs=2)
    tr = compose(toy_graph(n=120), cfg, Built(pruner=PrefixPruner(0.5),
                                              schedule=EverySchedule(0.5),
                                              evaluator=tiny_evaluate))
    res = tr.fit()
    assert tr.masks is not None
    assert all(int(m.sum()) == m.numel() // 2 for m in tr.masks.values())
    assert res.history[-1]["sparsity"] == pytest.approx(0.5)
    assert "mask_churn" in res.history[-1]


class _Recorder(Callback):
    name = "recorder"

    def __init__(self) -> None:
        self.rows: set[tuple[int, int, int]] = set()
        self.meta_steps = 0

    def on_step(self, trainer: Trainer, ctx: StepContext) -> None:
        self.rows.update(map(tuple, ctx.batch.tolist()))

    def on_step_end(self, trainer: Trainer, ctx: StepContext) -> None:
        self.meta_steps += "quiz_loss" in ctx.logs


def test_quiz_slice_is_held_out_of_the_training_stream() -> None:
    graph = toy_graph(n=120)
    rec = _Recorder()
    tr = _trainer(_cfg(), graph, callbacks=[rec])
    R = graph.num_relations
    quiz = {tuple(r) for r in tr.quiz_triples.tolist()}
    train = {tuple(r) for r in graph.train.tolist()}
    train |= {(t, r + R, h) for h, r, t in train}
    other = {tuple(r) for r in torch.cat([graph.valid, graph.test]).tolist()}
    assert quiz and quiz <= train and not quiz & other
    stream = {tuple(r) for r in tr.stream.tolist()}
    assert not quiz & stream and quiz | stream == train
    tr.fit()
    assert rec.rows and not rec.rows & quiz  # no quiz row ever reached a training batch
    assert rec.meta_steps == (tr.global_step + 1) // 2  # meta_every=2


def test_no_quiz_slice_without_meta() -> None:
    graph = toy_graph(n=120)
    tr = _trainer(_cfg(meta=False), graph)
    assert tr.quiz_triples.numel() == 0 and tr.stream.size(0) == 2 * graph.train.size(0)


class _Interrupt(Callback):
    name = "interrupt"

    def __init__(self, at: int) -> None:
        self.at = at

    def on_checkpoint(self, trainer: Trainer, path: str) -> None:
        if trainer.epoch == self.at:
            raise KeyboardInterrupt


def _full_and_resumed(cfg: MetaSDConfig, tmp_path: Path) -> tuple[Any, Any, Any, Any]:
    """``(full, its result, resumed, its result)``: one uninterrupted run, and one cut
    after its epoch-2 checkpoint and resumed."""
    full = _trainer(cfg, checkpoint_dir=tmp_path / "a")
    res_full = full.fit()
    cut = _trainer(cfg, checkpoint_dir=tmp_path / "b", callbacks=[_Interrupt(2)])
    with pytest.raises(KeyboardInterrupt):
        cut.fit()
    resumed = _trainer(cfg, checkpoint_dir=tmp_path / "b")
    return full, res_full, resumed, resumed.fit(resume=True)


@pytest.fixture(params=["memory", "disk"])
def snapshots(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Best-epoch snapshots in memory, or (threshold 0) files in the checkpoint folder."""
    from metasd_pyg.training import selection

    if request.param == "disk":
        monkeypatch.setattr(selection, "DISK_SNAPSHOT_BYTES", 0)
    return str(request.param)


@pytest.mark.parametrize("optimizer", ["adagrad", "adam"])
def test_resume_continues_the_same_trajectory(tmp_path: Path, optimizer: str,
                                              snapshots: str) -> None:
    cfg = _cfg(optimizer=optimizer, meta_optimizer=optimizer, epochs=5)
    full, res_full, resumed, res = _full_and_resumed(cfg, tmp_path)

    for (n, p), q in zip(full.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), n
    assert full.masks is not None and resumed.masks is not None
    for n, m in full.masks.items():
        assert torch.equal(m, resumed.masks[n])
    assert [h["loss"] for h in res.history] == [h["loss"] for h in res_full.history]
    assert res.best_epoch == res_full.best_epoch
    assert res.student_test.summary["mrr"] == res_full.student_test.summary["mrr"]


def test_checkpoint_is_safe_and_atomic_format(tmp_path: Path) -> None:
    tr = _trainer(_cfg(epochs=2), checkpoint_dir=tmp_path)
    tr.fit()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["checkpoint.json", "ckpt-00002.safetensors"]  # old file removed, no temp
    doc = json.loads((tmp_path / "checkpoint.json").read_text())
    assert doc["state"]["epoch"] == 2 and doc["tensors"] == "ckpt-00002.safetensors"
    (tmp_path / "checkpoint.json").write_text("{broken")
    with pytest.raises(RunFolderError):
        _trainer(_cfg(epochs=3), checkpoint_dir=tmp_path).fit(resume=True)


def test_step_schedule_logs_churn() -> None:
    res = _trainer(_cfg(epochs=2, prune_every_steps=2, strategy="global")).fit()
    assert all(h["mask_recomputes"] >= 1 for h in res.history)
    assert all(0.0 <= h["mask_churn"] <= 1.0 for h in res.history)
    assert res.history[-1]["sparsity"] == pytest.approx(0.5, abs=1e-2)


@pytest.mark.parametrize("mode", ["teacher", "dense_same_nnz", "oneshot"])
def test_baseline_modes_run(mode: str) -> None:
    cfg = _cfg(mode=mode, epochs=2, finetune_epochs=2)
    tr = _trainer(cfg)
    res = tr.fit()
    if mode == "dense_same_nnz":
        assert tr.model.node_emb.weight.size(1) == 4
        assert same_nnz_dim(cfg.model.dim, cfg.pruning.sparsity) == 4
    if mode == "oneshot":
        assert res.student_test is not None and "oneshot_test" in res.extra
        assert [h["phase"] for h in res.history] == ["teacher", "teacher", "finetune", "finetune"]
        sw = tr.student_weights()
        assert sw is not None
        assert all((sw[n][~m] == 0).all() for n, m in tr.masks.items())
    else:
        assert res.student_test is None and tr.masks is None
    assert 0.0 < res.final_test.summary["mrr"] <= 1.0
    json.dumps(res.to_dict())


@pytest.mark.parametrize("name", ["distmult", "rotate", "transe"])
def test_other_models_train(name: str) -> None:
    reg = "n3" if name in ("rotate", "transe") else "dura"
    res = _trainer(_cfg(model=name, regularizer=reg, epochs=2)).fit()
    assert res.student_test is not None
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in res.history)


def test_sampled_loss_runs_with_meta() -> None:
    res = _trainer(_cfg(loss="sampled", num_negatives=5, epochs=2, meta_every=1)).fit()
    assert any("quiz_loss" in h for h in res.history)


def test_early_stopping_on_student_valid() -> None:
    # The teacher's valid MRR keeps rising, the student's stays flat: only a trainer
    # that selects on the student stops early.
    teacher_calls = [0]

    def scripted(model: Any, graph: Any, split: str = "valid", *, weights: Any = None,
                 **kw: Any) -> Any:
        res = tiny_evaluate(model, graph, split, weights=weights, **kw)
        if weights is None:
            teacher_calls[0] += 1
            res.summary["mrr"] = 0.01 * teacher_calls[0]
        else:
            res.summary["mrr"] = 0.5
        return res

    cfg = _cfg(epochs=30, eval_every=1, patience=2)
    res = compose(toy_graph(n=120), cfg, Built(evaluator=scripted)).fit()
    assert res.stopped_early and len(res.history) < 30


def test_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="sparsity"):
        MetaSDConfig.flat(sparsity=1.5)
    with pytest.raises(ConfigError, match="mode"):
        MetaSDConfig.flat(mode="nope")
    with pytest.raises(ConfigError, match="unknown config"):
        MetaSDConfig.from_dict({"epochz": 3})
    graph = toy_graph()
    with pytest.raises(ConfigError, match="reciprocal"):
        compose(graph, _cfg(), Built(model=build_model(
            "complex", graph.num_entities, graph.num_relations, 4, reciprocal=False),
            evaluator=tiny_evaluate))


def test_keyword_api() -> None:
    from metasd_pyg.pruning import Pruner
    from metasd_pyg.training import MetaSD, MetaStep, train_metasd

    graph = toy_graph(n=120)
    model = build_model("complex", graph.num_entities, graph.num_relations, 8)
    trainer = MetaSD(model, graph, pruner=Pruner("aligned", 0.5),
                     meta=MetaStep(every=2, path="full", quiz_batch_size=4), epochs=2,
                     batch_size=16, quiz_fraction=0.1, progress=False, evaluator=tiny_evaluate)
    assert trainer.part(MetaStep) is not None and trainer.part(MetaStep).path == "full"
    res = trainer.fit()
    assert res.student_test is not None and trainer.student_weights() is not None
    res2 = train_metasd(graph, model="distmult", dim=8, sparsity=0.5, epochs=1, batch_size=16,
                        quiz_fraction=0.1, meta=False, progress=False)
    assert res2.config.model.name == "distmult" and res2.student_test is not None


def test_pruner_options_reach_the_pruner() -> None:
    trainer = _trainer(_cfg(strategy="degree", k_max=3, relation_rule="full",
                            importance="product", sparsity=0.6, k_max_factor=1.5))
    pruner = trainer.part(DynamicPruning).pruner
    assert pruner is not None
    assert (pruner.k_max, pruner.relation_rule, pruner.importance) == (3, "full", "product")
    assert pruner.k_max_factor == 1.5
    assert MetaSDConfig().pruning.k_max_factor == 3.2
    assert MetaSDConfig.flat(k_max_factor=None).pruning.k_max is None
    with pytest.raises(ConfigError, match="k_max_factor"):
        MetaSDConfig.flat(k_max_factor=0.9)
    with pytest.raises(ConfigError, match="k_max"):
        MetaSDConfig.flat(k_min=4, k_max=2)
    with pytest.raises(ConfigError, match="relation_rule"):
        MetaSDConfig.flat(relation_rule="min")


def test_custom_loop_drives_train_step() -> None:
    """start() + train_step() is the public loop a distributed sampler can slot into."""
    tr = _trainer(_cfg(meta_every=2))
    assert tr.masks is None
    tr.start()
    assert tr.masks is not None and tr.part(DynamicPruning) is not None
    assert tr.stream.size(0) >= 40
    logs = [tr.train_step(tr.stream[i:i + 10]) for i in range(0, 40, 10)]
    assert tr.global_step == 4
    assert all(torch.isfinite(torch.tensor(entry["loss"])) for entry in logs)
    assert ["quiz_loss" in entry for entry in logs] == [True, False, True, False]
    with pytest.raises(ValueError, match="non-empty"):
        tr.train_step(tr.stream[:0])


def test_teacher_distill_warmup_ramps_the_teacher_kl_from_zero() -> None:
    warm = _trainer(_cfg(teacher_distill=2.0, teacher_distill_warmup_epochs=0.5, meta=False))
    off = _trainer(_cfg(teacher_distill=0.0, meta=False))
    half = warm.steps_per_epoch * 0.5
    for tr in (warm, off):
        tr.start()
    assert warm.objective.teacher_scale(0, warm.steps_per_epoch) == 0.0
    batch = warm.stream[:10]
    warm.train_step(batch)
    off.train_step(batch)
    # first step: the warm-up's scale is 0, so the step equals the one without teacher KL
    for (name, a), b in zip(warm.model.named_parameters(), off.model.parameters()):
        assert torch.allclose(a, b, atol=1e-7), name
    warm.global_step = int(half // 2)
    scale = warm.objective.teacher_scale
    expected = 2.0 * int(half // 2) / half
    assert scale(warm.global_step, warm.steps_per_epoch) == pytest.approx(expected)
    warm.global_step = int(half) + 1
    assert scale(warm.global_step, warm.steps_per_epoch) == 2.0
    with pytest.raises(ConfigError, match="warmup"):
        MetaSDConfig.flat(teacher_distill_warmup_epochs=-1)


def test_default_degree_masks_move_only_with_the_sparsity() -> None:
    """importance='index' (default): no re-ranking, so churn only comes from a ramp."""
    steady = _trainer(_cfg(epochs=3, meta=False)).fit()
    assert [h["mask_churn"] for h in steady.history[1:]] == [0.0, 0.0]
    ramp = _trainer(_cfg(epochs=3, meta=False, ramp_epochs=2)).fit()
    assert ramp.history[1]["mask_churn"] > 0
    ranked = _trainer(_cfg(epochs=3, meta=False, importance="magnitude")).fit()
    assert any(h["mask_churn"] > 0 for h in ranked.history[1:])


def test_resume_refuses_a_changed_option_and_reads_older_checkpoints(tmp_path: Path) -> None:
    cfg = _cfg(epochs=2)
    _trainer(cfg, checkpoint_dir=tmp_path).fit()
    with pytest.raises(ConfigError, match=r"cannot change sparsity .*saved 0\.5, given 0\.7"):
        _trainer(cfg.replace(sparsity=0.7, epochs=3), checkpoint_dir=tmp_path).fit(resume=True)
    # a checkpoint written before k_max_factor existed ran uncapped: resuming it with the
    # newer default would change its masks, so only the old value is accepted
    doc_path = tmp_path / "checkpoint.json"
    doc = json.loads(doc_path.read_text())
    del doc["state"]["config"]["k_max_factor"]
    doc_path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"cannot change k_max_factor .*saved None, given 3\.2"):
        _trainer(cfg.replace(epochs=3), checkpoint_dir=tmp_path).fit(resume=True)
    res = _trainer(cfg.replace(epochs=3, k_max_factor=None), checkpoint_dir=tmp_path).fit(
        resume=True)
    assert res.history[-1]["epoch"] == 3


def test_resume_keeps_the_hysteresis_order(tmp_path: Path) -> None:
    cfg = _cfg(epochs=5, meta=False, importance="magnitude", hysteresis=1e6, lr=0.5)
    full, res_full, resumed, res = _full_and_resumed(cfg, tmp_path)
    assert [h["loss"] for h in res.history] == [h["loss"] for h in res_full.history]
    for n, m in full.masks.items():
        assert torch.equal(m, resumed.masks[n])


def test_oneshot_resumes_inside_fine_tuning(tmp_path: Path, snapshots: str) -> None:
    """A checkpoint of the fine-tuning phase resumes there (not in the teacher phase)."""
    cfg = _cfg(mode="oneshot", strategy="global", epochs=2, finetune_epochs=3, eval_every=1)
    res_full = _trainer(cfg, checkpoint_dir=tmp_path / "a").fit()
    cut = _trainer(cfg, checkpoint_dir=tmp_path / "b", callbacks=[_Interrupt(3)])
    with pytest.raises(KeyboardInterrupt):
        cut.fit()
    res = _trainer(cfg, checkpoint_dir=tmp_path / "b").fit(resume=True)
    assert [h["phase"] for h in res.history] == ["teacher"] * 2 + ["finetune"] * 3
    assert [h["loss"] for h in res.history] == [h["loss"] for h in res_full.history]
    assert res.student_test.summary["mrr"] == res_full.student_test.summary["mrr"]


def test_a_large_best_snapshot_lives_in_the_checkpoint_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On disk: the same result as in memory, one snapshot file, named by the checkpoint
    (embedded nowhere); a missing snapshot file is a clear error on resume."""
    import json

    from metasd_pyg.errors import RunFolderError
    from metasd_pyg.training import selection
    from metasd_pyg.training.checkpoint import TrainingState

    cfg = _cfg(epochs=4)
    mem = _trainer(cfg, checkpoint_dir=tmp_path / "m").fit()
    monkeypatch.setattr(selection, "DISK_SNAPSHOT_BYTES", 0)
    run = _trainer(cfg, checkpoint_dir=tmp_path / "d")
    disk = run.fit()
    assert disk.best_epoch == mem.best_epoch
    assert disk.student_test.summary["mrr"] == mem.student_test.summary["mrr"]
    files = sorted(p.name for p in (tmp_path / "d").glob("best-*.safetensors"))
    doc = json.loads((tmp_path / "d" / "checkpoint.json").read_text())
    assert files == [doc["state"]["best_file"]] == [f"best-metasd-{mem.best_epoch:05d}.safetensors"]
    state = TrainingState.read(tmp_path / "d")
    assert isinstance(state.best, selection.DiskSnapshot)
    assert not any(k.startswith("best/") for k in state.model)
    (tmp_path / "d" / files[0]).unlink()
    with pytest.raises(RunFolderError, match="best-epoch snapshot"):
        TrainingState.read(tmp_path / "d")


def test_release_optimizer_state_frees_every_optimizer_before_the_final_evaluation() -> None:
    from metasd_pyg.training import Built, MetaSDConfig, compose
    from metasd_pyg.training.callbacks import Callback, ReleaseOptimizerState
    from metasd_pyg.training.meta import MetaStep

    from .helpers import tiny_evaluate, toy_graph

    seen: dict[str, int] = {}

    class Spy(Callback):
        def on_fit_end(self, trainer) -> None:  # runs after the release part
            meta = trainer.part(MetaStep)
            seen["main"] = len(trainer.optimizer.state)
            seen["meta"] = len(meta.optimizer.state)

    cfg = MetaSDConfig.flat(dim=8, epochs=2, batch_size=32, progress=False, meta=True,
                            meta_every=1, quiz_fraction=0.1, quiz_batch_size=8, seed=0,
                            device="cpu", sparsity=0.6, loss="sampled", num_negatives=12)
    graph = toy_graph(num_entities=40, num_relations=3, n=200)
    kept = compose(graph, cfg, Built(evaluator=tiny_evaluate, callbacks=[Spy()]))
    kept.fit()
    assert seen["main"] > 0 and seen["meta"] > 0  # without the part: state kept
    run = compose(graph, cfg, Built(evaluator=tiny_evaluate,
                                    callbacks=[ReleaseOptimizerState(), Spy()]))
    result = run.fit()
    assert seen == {"main": 0, "meta": 0} and result.evaluated


def test_a_diverging_learning_rate_stops_with_the_step_term_and_cause(tmp_path) -> None:
    """lr 1e30: the first step's update overflows; the next step's loss is not finite.
    Checked by removing the loss check once: the run went on with NaN weights."""
    from metasd_pyg.errors import TrainingDiverged
    from metasd_pyg.training import Built, MetaSDConfig, compose

    from .helpers import tiny_evaluate, toy_graph

    graph = toy_graph(num_entities=40, num_relations=3, n=200)
    for loss in ("1-n", "sampled"):
        cfg = MetaSDConfig.flat(dim=8, epochs=3, batch_size=32, progress=False, lr=1e30,
                                seed=0, device="cpu", loss=loss, num_negatives=12,
                                mode="metasd", sparsity=0.6)
        run = compose(graph, cfg, Built(evaluator=tiny_evaluate))
        with pytest.raises(TrainingDiverged, match=r"training diverged at step \d+ \(epoch 1\)"
                           r": .*not finite.*learning rate too high.*lr=1e\+30.*"
                           r"no checkpoint yet"):
            run.fit()


def test_weights_that_go_non_finite_keep_the_last_good_checkpoint(tmp_path) -> None:
    from metasd_pyg.errors import TrainingDiverged
    from metasd_pyg.training import Built, MetaSDConfig, compose
    from metasd_pyg.training.callbacks import Callback
    from metasd_pyg.training.checkpoint import TrainingState

    from .helpers import tiny_evaluate, toy_graph

    class Poison(Callback):  # a weight turns to inf during epoch 3
        def on_epoch_start(self, trainer, epoch) -> None:
            if epoch == 2:
                with torch.no_grad():
                    trainer.model.node_emb.weight[3, 0] = float("inf")

    graph = toy_graph(num_entities=40, num_relations=3, n=200)
    cfg = MetaSDConfig.flat(dim=8, epochs=5, batch_size=32, progress=False, seed=0,
                            device="cpu", loss="sampled", num_negatives=12, mode="teacher")
    run = compose(graph, cfg, Built(evaluator=tiny_evaluate, callbacks=[Poison()],
                                    checkpoint_dir=tmp_path / "ck"))
    with pytest.raises(TrainingDiverged, match=r"epoch 3\).*last good checkpoint \(the end "
                                               r"of epoch 2\) is kept in .*ck"):
        run.fit()
    state = TrainingState.read(tmp_path / "ck")
    assert state.epoch == 2
    assert all(bool(torch.isfinite(t).all()) for t in state.model.values())


def test_a_diverging_meta_step_is_named() -> None:
    """The meta step's own learning rate diverges (1e30), the main one is fine: the
    meta-gradient update (or the loss it poisons next) stops the run, naming both rates."""
    from metasd_pyg.errors import TrainingDiverged
    from metasd_pyg.training import Built, MetaSDConfig, compose

    from .helpers import tiny_evaluate, toy_graph

    graph = toy_graph(num_entities=40, num_relations=3, n=200)
    cfg = MetaSDConfig.flat(dim=8, epochs=3, batch_size=32, progress=False, seed=0,
                            device="cpu", loss="sampled", num_negatives=12, mode="metasd",
                            sparsity=0.6, meta=True, meta_every=1, meta_lr=1e30,
                            quiz_fraction=0.1, quiz_batch_size=8)
    run = compose(graph, cfg, Built(evaluator=tiny_evaluate))
    with pytest.raises(TrainingDiverged, match=r"training diverged at step \d+ .*lr=0\.1, "
                                               r"meta lr=1e\+30"):
        run.fit()
