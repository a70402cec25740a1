"""The row-wise engine against the dense one, and its guarantees.

With sampled candidates both engines apply (the dense one as the reference): a few steps
of every training objective give the same parameters to float tolerance (Adagrad's sparse
update is the dense update restricted to rows with a gradient). Checked by breaking the
engine once (gathering the tails only): these tests failed.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.errors import ConfigError
from metasd_pyg.models.adapters import ENTITY_TABLES
from metasd_pyg.pruning import NestedMasks
from metasd_pyg.training import Built, MetaSDConfig, compose
from metasd_pyg.training.engine import DenseEngine, RowEngine, engine_for
from metasd_pyg.training.optim import OptimConfig

from .helpers import tiny_evaluate, toy_graph


def _cfg(**kw: Any) -> MetaSDConfig:
    base: dict[str, Any] = dict(dim=8, epochs=2, batch_size=16, eval_every=1, progress=False,
                                meta_every=1, quiz_fraction=0.1, quiz_batch_size=8, seed=5,
                                device="cpu", sparsity=0.6, loss="sampled", num_negatives=12,
                                regularizer_weight=0.02, student_regularizer_weight=0.01)
    return MetaSDConfig.flat(**{**base, **kw})


def _run_steps(cfg: MetaSDConfig, steps: int = 6) -> tuple[Any, dict[str, torch.Tensor]]:
    graph = toy_graph(num_entities=40, num_relations=3, n=200)
    run = compose(graph, cfg, Built(evaluator=tiny_evaluate))
    trainer = getattr(run, "finetune", None) or run
    run.start()
    bs = cfg.trainer.batch_size
    for i in range(steps):
        trainer.train_step(trainer.stream[i * bs:(i + 1) * bs])
    return trainer, {n: p.detach().clone() for n, p in trainer.model.named_parameters()}


@pytest.mark.parametrize("mode,extra", [
    ("teacher", {}),
    ("dense_same_nnz", {}),
    ("metasd", {"meta": False}),
    ("metasd", {"meta": True}),
    ("metasd", {"meta": True, "meta_path": "full", "relation_weight": 0.5}),
    ("metasd", {"meta": True, "strategy": "global"}),
    ("metasd", {"meta": False, "regularizer": "n3", "model": "distmult"}),
    ("metasd", {"meta": True, "model": "rotate", "regularizer": "n3"}),
    ("metasd", {"meta": False, "model": "transe", "regularizer": "n3"}),
])
def test_row_engine_equals_dense_engine_after_steps(mode: str, extra: dict[str, Any]) -> None:
    dense, p_dense = _run_steps(_cfg(mode=mode, engine="dense", **extra))
    rows, p_rows = _run_steps(_cfg(mode=mode, engine="rows", **extra))
    assert isinstance(dense.engine, DenseEngine) and isinstance(rows.engine, RowEngine)
    for n, p in p_dense.items():
        torch.testing.assert_close(p_rows[n], p, rtol=1e-4, atol=1e-5, msg=n)
    start = _cfg(mode=mode, **extra)
    fresh = compose(toy_graph(num_entities=40, num_relations=3, n=200), start,
                    Built(evaluator=tiny_evaluate))
    assert any(not torch.equal(p_dense[n], p.detach())
               for n, p in fresh.model.named_parameters()), "the steps moved nothing"
    if dense.masks is not None:
        for n, m in dense.masks.items():
            assert torch.equal(m, rows.masks[n])


def test_one_shot_fine_tuning_on_rows_equals_dense() -> None:
    kw: dict[str, Any] = dict(mode="oneshot", epochs=1, finetune_epochs=1)
    graph = toy_graph(num_entities=40, num_relations=3, n=200)
    out = []
    for engine in ("dense", "rows"):
        res = compose(graph, _cfg(engine=engine, **kw), Built(evaluator=tiny_evaluate)).fit()
        out.append(res)
    torch.testing.assert_close(out[1].final_valid.summary["mrr"],
                               out[0].final_valid.summary["mrr"], rtol=1e-4, atol=1e-5)


def test_auto_engine_follows_the_loss() -> None:
    assert isinstance(engine_for(_cfg()), RowEngine)
    assert isinstance(engine_for(_cfg(loss="1-n")), DenseEngine)
    assert isinstance(engine_for(_cfg(engine="dense")), DenseEngine)
    with pytest.raises(ConfigError, match="engine=rows needs loss=sampled"):
        engine_for(_cfg(loss="1-n", engine="rows"))


def test_a_row_step_moves_only_the_rows_it_touches() -> None:
    graph = toy_graph(num_entities=40, num_relations=3, n=200)
    run = compose(graph, _cfg(mode="teacher"), Built(evaluator=tiny_evaluate))
    run.start()
    before = run.model.node_emb.weight.detach().clone()
    gen_state = run.generator.get_state()
    batch = run.stream[:4]
    cand, _ = run.objective.candidates(batch, graph.num_entities, run.generator)
    run.generator.set_state(gen_state)
    run.train_step(batch)
    changed = (run.model.node_emb.weight.detach() != before).any(dim=1).nonzero().flatten()
    touched = torch.unique(torch.cat([batch[:, 0], batch[:, 2], cand]))
    assert set(changed.tolist()) <= set(touched.tolist())
    assert len(changed) > 0


def test_adam_on_rows_is_sparse_adam_and_dense_adam_is_refused() -> None:
    opt = OptimConfig(optimizer="adam", lr=0.01)
    params = [torch.nn.Parameter(torch.zeros(3, 2))]
    sparse = opt.build(params, sparse=True)
    assert isinstance(sparse, torch.optim.SparseAdam)
    assert OptimConfig.of(sparse) == opt
    _, p = _run_steps(_cfg(mode="teacher", optimizer="adam", lr=0.01), steps=2)
    assert all(torch.isfinite(t).all() for t in p.values())
    with pytest.raises(ConfigError, match="does not take"):
        RowEngine().check_optimizer(opt.build(params))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_nested_row_masks_equal_rows_of_the_full_masks(data: st.DataObject) -> None:
    d = data.draw(st.integers(1, 9))
    rows_n = data.draw(st.integers(1, 30))
    order = torch.tensor(data.draw(st.permutations(list(range(d)))))
    k_ent = torch.tensor(data.draw(st.lists(st.integers(0, d), min_size=rows_n,
                                            max_size=rows_n)))
    k_rel = torch.tensor(data.draw(st.lists(st.integers(0, d), min_size=4, max_size=4)))
    nested = NestedMasks(order, {"entity": k_ent, "relation": k_rel},
                         {"entity": ENTITY_TABLES, "relation": ("rel_emb.weight",)})
    ids = torch.tensor(sorted(set(data.draw(st.lists(st.integers(0, rows_n - 1), min_size=1)))))
    full = nested.to_masks()
    got = nested.row_masks(ids, ENTITY_TABLES)
    for n in ENTITY_TABLES:
        assert torch.equal(got[n], full[n][ids])
    assert torch.equal(got["rel_emb.weight"], full["rel_emb.weight"])


def test_a_row_step_allocates_nothing_of_table_size() -> None:
    """At 400k entities one sampled step allocates far less than one entity table."""
    from metasd_pyg.data import KnowledgeGraph

    E, dim = 400_000, 8
    gen = torch.Generator().manual_seed(0)
    tri = torch.stack([torch.randint(E, (3000,), generator=gen),
                       torch.randint(3, (3000,), generator=gen),
                       torch.randint(E, (3000,), generator=gen)], 1)
    graph = KnowledgeGraph(name="big", train=tri[:2800], valid=tri[2800:2900],
                           test=tri[2900:], num_entities=E, num_relations=3)
    for mode in ("teacher", "metasd"):
        run = compose(graph, _cfg(mode=mode, dim=dim, batch_size=64, num_negatives=64,
                                  strategy="degree"), Built(evaluator=tiny_evaluate))
        run.start()
        run.train_step(run.stream[:64])  # optimiser state created
        table = E * dim * 4
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                    profile_memory=True) as prof:
            for i in range(1, 3):
                run.train_step(run.stream[i * 64:(i + 1) * 64])
        biggest = max((e.cpu_memory_usage for e in prof.events()), default=0)
        assert biggest < table / 8, (mode, biggest, table)


def test_max_steps_stops_inside_an_epoch_and_skips_the_final_evaluation(tmp_path: Any) -> None:
    graph = toy_graph(num_entities=40, num_relations=3, n=200)
    cfg = _cfg(mode="metasd", max_steps=5, epochs=3)
    run = compose(graph, cfg, Built(evaluator=tiny_evaluate, checkpoint_dir=tmp_path / "ck"))
    res = run.fit()
    assert res.steps == 5 and run.global_step == 5 and not res.evaluated
    assert res.teacher_valid is None and res.student_test is None
    assert res.step_seconds_median is not None and res.step_seconds_median > 0
    assert res.history[-1]["partial"] and res.history[-1]["steps"] == 5
    assert run.epoch == 0 and not (tmp_path / "ck" / "checkpoint.json").exists()
    again = compose(graph, _cfg(mode="metasd", max_steps=5, final_eval=True),
                    Built(evaluator=tiny_evaluate)).fit()
    assert again.evaluated and again.student_test is not None
