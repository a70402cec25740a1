"""Protocol guards: each test fails if one rule of the MetaSD protocol is broken.

Each was checked by breaking the rule on purpose (selecting on test, skipping the meta
update, drawing the quiz from valid, dropping the student's distillation term, ignoring
patience for a dense run): the test failed, then passed again once restored.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from metasd_pyg.training import Built, Callback, MetaSDConfig, MetaStep, compose
from metasd_pyg.training.losses import (
    KLWeights,
    distillation_loss,
    entity_cross_entropy,
    tail_logits,
)
from metasd_pyg.training.losses import regularizer as reg_fn
from metasd_pyg.training.objective import MutualObjective
from metasd_pyg.training.views import student_weights

from .helpers import tiny_evaluate, toy_graph


def _cfg(**kw: Any) -> MetaSDConfig:
    base: dict[str, Any] = dict(dim=8, epochs=3, batch_size=16, eval_every=1, progress=False,
                                meta=True, meta_every=1, quiz_fraction=0.1, quiz_batch_size=8,
                                seed=3, device="cpu", sparsity=0.5)
    return MetaSDConfig.flat(**{**base, **kw})


def test_the_model_is_selected_on_valid_never_on_test() -> None:
    """Valid MRR peaks at epoch 2, test MRR at the last epoch: the run must pick epoch 2."""
    calls: list[str] = []
    valid_curve = {1: 0.3, 2: 0.6, 3: 0.2, 4: 0.1}
    test_curve = {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.9}
    holder: dict[str, Any] = {}

    def scripted(model: Any, graph: Any, split: str = "valid", **kw: Any) -> Any:
        calls.append(split)
        res = tiny_evaluate(model, graph, split, **kw)
        epoch = holder["run"].epoch if "run" in holder else 0
        res.summary["mrr"] = (valid_curve if split == "valid" else test_curve).get(epoch, 0.0)
        return res

    for mode in ("metasd", "teacher"):
        calls.clear()
        run = compose(toy_graph(n=120), _cfg(mode=mode, epochs=4), Built(evaluator=scripted))
        holder["run"] = run
        res = run.fit()
        assert res.best_epoch == 2, mode
        per_epoch = 2 if mode == "metasd" else 1  # teacher (+ student) validation
        assert calls[: 4 * per_epoch] == ["valid"] * (4 * per_epoch)  # training looks at valid only


class _HoldOut(Callback):
    """Holds out the meta step's quiz slice without running the meta step."""

    name = "hold_out"

    def __init__(self, meta: MetaStep) -> None:
        self.meta = meta

    def held_out(self, train: torch.Tensor, seed: int) -> torch.Tensor:
        return self.meta.held_out(train, seed)


def _params(run: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in run.model.named_parameters()}


@pytest.mark.parametrize("loss", ["1-n", "sampled"])
def test_meta_lr_zero_is_no_meta_and_the_meta_update_is_applied(loss: str) -> None:
    graph = toy_graph(n=120)
    kw = dict(loss=loss, num_negatives=6, epochs=2)
    zero = compose(graph, _cfg(meta_lr=0.0, **kw), Built(evaluator=tiny_evaluate))
    res_zero = zero.fit()
    no_meta = compose(graph, _cfg(meta=False, **kw),
                      Built(evaluator=tiny_evaluate,
                            callbacks=[_HoldOut(MetaStep(quiz_fraction=0.1))]))
    res_no = no_meta.fit()
    assert any("quiz_loss" in h for h in res_zero.history)  # the meta step ran ...
    for n, p in _params(zero).items():  # ... and changed nothing
        assert torch.equal(p, _params(no_meta)[n]), n
    assert [h["loss"] for h in res_zero.history] == [h["loss"] for h in res_no.history]
    meta = compose(graph, _cfg(meta_lr=0.05, **kw), Built(evaluator=tiny_evaluate))
    meta.fit()
    moved = sum(float((p - _params(zero)[n]).abs().sum()) for n, p in _params(meta).items())
    assert moved > 1e-3  # a meta step that is applied moves the teacher


def test_the_quiz_comes_from_the_held_out_train_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    import metasd_pyg.training.meta as meta_module

    seen: list[torch.Tensor] = []
    real = meta_module.meta_gradient

    def spy(model: Any, batch: Any, quiz_batch: torch.Tensor, *a: Any, **kw: Any) -> Any:
        seen.append(quiz_batch.clone())
        return real(model, batch, quiz_batch, *a, **kw)

    monkeypatch.setattr(meta_module, "meta_gradient", spy)
    graph = toy_graph(n=120)
    run = compose(graph, _cfg(epochs=2), Built(evaluator=tiny_evaluate))
    run.fit()
    assert seen
    R = graph.num_relations

    def rows(t: torch.Tensor, reciprocal: bool = False) -> set[tuple[int, ...]]:
        if reciprocal:
            t = torch.cat([t, torch.stack([t[:, 2], t[:, 1] + R, t[:, 0]], 1)])
        return {tuple(r) for r in t.tolist()}

    quiz_rows = set().union(*(rows(q) for q in seen))
    assert quiz_rows <= rows(run.quiz_triples)
    assert quiz_rows <= rows(graph.train, reciprocal=True)
    assert not quiz_rows & rows(torch.cat([graph.valid, graph.test]), reciprocal=True)
    assert not quiz_rows & rows(run.stream)


@pytest.mark.parametrize(("student_distill", "scale"), [(0.0, 1.0), (0.7, 1.0), (0.7, 2.5)])
def test_the_students_real_loss_is_the_shared_student_loss(student_distill: float,
                                                           scale: float) -> None:
    """The mutual step's loss is the teacher's loss plus ``StudentLoss.value`` (the function
    the meta step's virtual step differentiates) at the logits ``StudentLoss.logits``,
    ``student_logit_scale`` times the masked model's scores (the step's student output,
    which the fused loss scales itself); its gradient w.r.t. those scores is that of
    ``StudentLoss.value`` alone."""
    torch.manual_seed(0)
    cfg = _cfg(student_distill=student_distill, student_weight=2.5, teacher_distill=0.6,
               student_regularizer_weight=0.03, regularizer_weight=0.02,
               student_logit_scale=scale)
    run = compose(toy_graph(n=120), cfg, Built(evaluator=tiny_evaluate))
    run.start()
    with torch.no_grad():  # away from the near-zero init, so teacher and student disagree
        for p in run.model.parameters():
            p.normal_(0.0, 0.7)
    obj = run.objective
    assert isinstance(obj, MutualObjective)
    batch = run.stream[:12]
    target = batch[:, 2]
    out = obj(run, run.engine.view(run, [batch], [None], [target])[0])
    model, masks = run.model, run.masks
    view = student_weights(dict(model.named_parameters()), masks)
    z_t, f_s = out.teacher_logits, out.student_logits
    assert f_s is not None
    torch.testing.assert_close(f_s, tail_logits(model, batch, view))
    z_s = scale * f_s  # the student's logits in its loss
    torch.testing.assert_close(z_s, obj.student_loss().logits(model, batch, view, None))
    # independent reference: the teacher's terms, then the student's with its own weights
    teacher = (entity_cross_entropy(z_t, target) + 0.6 * distillation_loss(
        z_t, z_s.detach(), 3.0, KLWeights(3.0, 1.0)) + reg_fn("dura", model, batch, 0.02))
    student = 2.5 * (entity_cross_entropy(z_s, target) + student_distill * distillation_loss(
        z_s, z_t.detach(), 3.0, KLWeights(3.0, 1.0)) + reg_fn("dura", model, batch, 0.03, view))
    shared = obj.student_loss().value(model, batch, view, z_s, z_t.detach(), target)
    assert shared.item() == pytest.approx(student.item(), rel=1e-6)
    assert out.loss.item() == pytest.approx((teacher + student).item(), rel=1e-5)
    (g_real,) = torch.autograd.grad(out.loss, f_s, retain_graph=True)
    (g_ref,) = torch.autograd.grad(student, f_s, retain_graph=True)
    g_virtual = scale * obj.student_loss().logit_grad(z_t, z_s, target)  # d/d f = gamma d/d z
    torch.testing.assert_close(g_real, g_ref, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(g_virtual, g_ref, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("mode", ["teacher", "dense_same_nnz", "metasd"])
def test_patience_stops_every_mode(mode: str) -> None:
    def flat(model: Any, graph: Any, split: str = "valid", **kw: Any) -> Any:
        res = tiny_evaluate(model, graph, split, **kw)
        res.summary["mrr"] = 0.5
        return res

    res = compose(toy_graph(n=120), _cfg(mode=mode, epochs=20, patience=2),
                  Built(evaluator=flat)).fit()
    assert res.stopped_early and len(res.history) == 3  # best at 1, two validations without gain
