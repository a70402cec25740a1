"""Data-parallel training (training.distributed): 2 gloo ranks against one process.

Each case runs a few steps on the same global batches: the ranks must end with
identical parameters, equal to one process's to float tolerance, on the dense
1-N path and the row-wise sampled path, with and without a student and the meta
step. Checked by breaking the reduction once (no gradient sum; no loss share):
these tests failed.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from metasd_pyg.training import Built, MetaSDConfig, compose
from metasd_pyg.training.distributed import DistributedConfig, World

from .helpers import tiny_evaluate, toy_graph

CASES: dict[str, dict[str, Any]] = {
    "teacher-1n": {"mode": "teacher", "loss": "1-n"},
    "metasd-1n": {"mode": "metasd", "loss": "1-n", "meta": False},
    "teacher-rows": {"mode": "teacher", "loss": "sampled"},
    "metasd-rows": {"mode": "metasd", "loss": "sampled", "meta": False},
    "metasd-rows-meta": {"mode": "metasd", "loss": "sampled", "meta": True},
    "dense-same-nnz-rows": {"mode": "dense_same_nnz", "loss": "sampled"},
}
STEPS = 5


def _cfg(**kw: Any) -> MetaSDConfig:
    base: dict[str, Any] = dict(dim=8, epochs=2, batch_size=25, eval_every=1, progress=False,
                                meta_every=1, quiz_fraction=0.1, quiz_batch_size=8, seed=3,
                                device="cpu", sparsity=0.6, num_negatives=12,
                                regularizer_weight=0.02, student_regularizer_weight=0.01)
    return MetaSDConfig.flat(**{**base, **kw})


def _steps(cfg: MetaSDConfig, world: World) -> dict[str, torch.Tensor]:
    graph = toy_graph(num_entities=40, num_relations=3, n=200)
    trainer = compose(graph, cfg, Built(evaluator=tiny_evaluate, world=world))
    trainer.start()
    bs = cfg.trainer.batch_size
    for i in range(STEPS):  # the same global batches on every rank
        trainer.train_step(trainer.stream[i * bs:(i + 1) * bs])
    out = {f"param/{n}": p.detach().clone() for n, p in trainer.model.named_parameters()}
    out.update({f"mask/{n}": m.to(torch.uint8) for n, m in (trainer.masks or {}).items()})
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _gloo(rank: int, size: int, port: int) -> Iterator[World]:
    """This spawned process as rank ``rank`` of a gloo group (one thread)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        yield World(rank, size)
    finally:
        dist.destroy_process_group()


def _worker(rank: int, size: int, port: int, out: str) -> None:
    with _gloo(rank, size, port) as world:
        for name, kw in CASES.items():
            before = dict(world.traffic)
            params = _steps(_cfg(**kw), world)
            params["traffic"] = torch.tensor([world.traffic[k] - before[k]
                                              for k in ("all_reduce", "all_gather")])
            save_file(params, f"{out}/{name}-{rank}.safetensors")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_equal_one_process(two_ranks: Path, case: str) -> None:
    one = _steps(_cfg(**CASES[case]), World.single())
    r0 = load_file(str(two_ranks / f"{case}-0.safetensors"))
    r1 = load_file(str(two_ranks / f"{case}-1.safetensors"))
    assert set(r0) - {"traffic"} == set(one)
    for name, ref in one.items():
        assert torch.equal(r0[name], r1[name]), f"{name}: the ranks differ"
        # float32 sums in another order (the all-reduce) differ by up to ~1e-5 after a few
        # steps on parameters of size ~0.3; a rank that missed a reduction is off by ~1e-2
        torch.testing.assert_close(r0[name], ref, rtol=1e-4, atol=2e-5, msg=name)
    fresh = compose(toy_graph(num_entities=40, num_relations=3, n=200),
                    _cfg(**CASES[case]), Built(evaluator=tiny_evaluate))
    assert any(not torch.equal(one[f"param/{n}"], p.detach())
               for n, p in fresh.model.named_parameters()), "the steps moved nothing"


def test_shards_cover_a_batch_once() -> None:
    for size in (1, 2, 3, 7):
        for n in (0, 1, 5, 25, 1000):
            rows = [r for k in range(size) for r in range(n)[World(k, size).shard(n)]]
            assert rows == list(range(n))


def test_one_process_world_without_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    world = World.from_env(DistributedConfig())
    assert (world.rank, world.size, world.is_main, world.distributed) == (0, 1, True, False)
    with pytest.raises(ValueError, match="outside"):
        World(2, 2)


def _fit_worker(rank: int, size: int, port: int, out: str) -> None:
    from metasd_pyg.training.distributed import RankLost

    with _gloo(rank, size, port) as world:
        cfg = _cfg(mode="metasd", loss="sampled", meta=False, dist_check_every=1, patience=1)
        graph = toy_graph(num_entities=40, num_relations=3, n=200)
        run = compose(graph, cfg, Built(evaluator=tiny_evaluate, world=world))
        result = run.fit()  # the parameter check runs after every epoch
        if rank == 1:  # a rank that drifted is caught, by name, on every rank
            with torch.no_grad():
                run.model.rel_emb.weight[0, 0] += 1e-3
        try:
            world.check_identical({n: p.detach() for n, p in run.model.named_parameters()},
                                  "in the test")
            caught = ""
        except RankLost as exc:
            caught = str(exc)
        save_file({"param/" + n: p.detach().clone() for n, p in run.model.named_parameters()},
                  f"{out}/fit-{rank}.safetensors",
                  metadata={"caught": caught, "epochs": str(len(result.history)),
                            "evaluated": str(result.evaluated)})


def test_fit_on_two_ranks_checks_parameters_and_evaluates_on_rank_0(tmp_path: Path) -> None:
    from safetensors import safe_open

    mp.spawn(_fit_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    meta = []
    for rank in (0, 1):
        with safe_open(str(tmp_path / f"fit-{rank}.safetensors"), "pt") as fh:
            meta.append(fh.metadata())
    for m in meta:
        assert "parameters differ between ranks in the test: rel_emb.weight" in m["caught"]
        assert m["epochs"] == meta[0]["epochs"]  # early stopping decided alike
    assert (meta[0]["evaluated"], meta[1]["evaluated"]) == ("True", "False")


def _reduce_worker(rank: int, size: int, port: int, out: str) -> None:
    with _gloo(rank, size, port) as world:
        gen = torch.Generator().manual_seed(rank)
        dense, same, other, none = (torch.nn.Parameter(torch.zeros(6, 3)) for _ in range(4))
        dense.grad = torch.randn(6, 3, generator=gen)
        same.grad = torch.sparse_coo_tensor(torch.tensor([[1, 4]]),
                                            torch.randn(2, 3, generator=gen), (6, 3))
        rows = [[0, 2], [2, 3, 5]][rank]  # different rows on each rank: gathered
        other.grad = torch.sparse_coo_tensor(torch.tensor([rows]),
                                             torch.randn(len(rows), 3, generator=gen), (6, 3))
        local = {"dense": dense.grad.clone(), "same": same.grad.to_dense(),
                 "other": other.grad.to_dense()}
        world.reduce_gradients([dense, same, other, none])
        assert none.grad is None and same.grad.is_sparse and other.grad.is_sparse
        assert same.grad.indices().tolist() == [[1, 4]]
        save_file({**{f"local/{k}": v for k, v in local.items()},
                   "sum/dense": dense.grad, "sum/same": same.grad.to_dense(),
                   "sum/other": other.grad.to_dense(),
                   "traffic": torch.tensor([world.traffic["all_reduce"],
                                            world.traffic["all_gather"]])},
                  f"{out}/reduce-{rank}.safetensors")


def test_gradient_sum_dense_same_rows_and_different_rows(tmp_path: Path) -> None:
    mp.spawn(_reduce_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r = [load_file(str(tmp_path / f"reduce-{k}.safetensors")) for k in (0, 1)]
    for name in ("dense", "same", "other"):
        want = r[0][f"local/{name}"] + r[1][f"local/{name}"]
        for k in (0, 1):
            torch.testing.assert_close(r[k][f"sum/{name}"], want, msg=name)
    # one all-reduce of the dense gradient and the shared rows' values; the rest gathered
    assert r[0]["traffic"].tolist() == [(18 + 6) * 4, 3 * 8 + 3 * 3 * 4]


def test_a_row_wise_step_needs_no_gather(two_ranks: Path) -> None:
    # the trainer's row-wise views hold the rows of the whole batch on every rank
    cfg = _cfg(**CASES["metasd-rows"])
    assert cfg.loss.loss == "sampled"
    # measured in the spawned runs of the fixture: see _worker
    traffic = load_file(str(two_ranks / "metasd-rows-0.safetensors"))["traffic"]
    assert traffic[0] > 0 and traffic[1] == 0
