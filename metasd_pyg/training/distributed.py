r"""Data-parallel training on ``torch.distributed``, launched with ``torchrun``.

Every process (*rank*) holds the whole model and optimiser state and walks the
same shuffled stream: the permutation, the shared negatives and the meta
step's quiz come from the run's seeded generator, which every rank advances
identically. A step's global batch of :math:`B` rows is split into contiguous
shards, one per rank (:meth:`World.shard`); rank :math:`r` scores its
:math:`n_r` rows against the candidates of the *global* batch (the same
softmax as one process), scales its loss by :math:`n_r / B`, and the ranks sum
their gradients (:meth:`World.reduce_gradients`):

.. math::
    \nabla L = \sum_r \frac{n_r}{B} \nabla L_r
             = \frac{1}{B} \sum_{i=1}^{B} \nabla \ell_i,

the gradient one process computes on the whole batch (every loss term is a
mean over the batch's rows; a term that is not, such as a whole-table
penalty, is counted once since the weights :math:`n_r/B` sum to one). Each
rank then applies the same optimiser step to the same parameters, so the
parameters stay identical (checked every ``dist_check_every`` epochs).

* **Dense gradients** (1-N loss, whole tables) are summed with one
  ``all_reduce`` over a flat buffer.
* **Row-wise gradients** (``loss=sampled``): every rank gathers the rows of
  the *whole* global batch (its heads and tails, and the shared candidates),
  not only its shard's, so every rank's sparse gradient has the same rows: the
  values of those rows join the dense gradients in the one ``all_reduce``
  (:math:`U \times d` floats per table, :math:`U` the batch's distinct rows,
  whatever the number of entities). This works on every backend: NCCL has no
  sparse ``all_reduce``, and none is needed. Sparse gradients whose rows differ
  between ranks (checked every step by a signature of their rows) are
  ``all_gather``-ed instead, row ids and rows, and summed alike on every rank.
* **The meta step** runs on every rank on the whole global batch and the same
  quiz (drawn from the same generator), without communication: its
  meta-gradient is a second-order function of the batch, which sharding would
  change, and identical work keeps the ranks exact.
* **Masks** are recomputed on every rank by the same code from the same
  weights (no communication).
* **Validation** runs on rank 0 while the others wait; rank 0 then sends the
  epoch's validation record and the early-stopping count to every rank.
  Only rank 0 writes (run folder, checkpoints, logs, progress bars); every
  rank reads the checkpoint it resumes from, so a resumed run may use
  another number of ranks (the checkpoint holds no per-rank state).

A rank that dies closes its connections: the others fail at their next
collective (``RuntimeError`` from gloo or NCCL, within seconds; under
``torchrun`` the launcher also stops them) and report it in one line
(:class:`RankLost`). A rank that hangs is detected by the collective timeout
(``dist_timeout``). The last complete checkpoint stays valid
(checkpoints are written atomically by rank 0 between epochs).

There is no global state: a :class:`World` is built once
(:meth:`World.from_env`) and handed to the trainer; :meth:`World.single` is
the one-process world every trainer uses by default.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor

from metasd_pyg.errors import MetaSDError
from metasd_pyg.sections import Section, check, option

__all__ = ["DistributedConfig", "RankLost", "World", "launched_by_torchrun"]

T = TypeVar("T")

#: Environment variables ``torchrun`` sets for every worker.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class RankLost(MetaSDError):
    """Another rank of a distributed run stopped (died, or did not answer in time)."""


def launched_by_torchrun() -> bool:
    """Whether this process is a worker of ``torchrun`` (its environment variables are set)."""
    return all(k in os.environ for k in TORCHRUN_ENV)


@dataclass(frozen=True)
class DistributedConfig(Section):
    """Data-parallel training with torch.distributed (used when launched with torchrun).

    Args:
        backend: Process-group backend: auto (nccl on CUDA devices, else gloo),
            gloo or nccl.
        timeout: Seconds a rank waits in a collective before the run stops with
            an error (a rank that hangs; a rank that dies is noticed within
            seconds). Must exceed rank 0's validation time.
        check_every: Debug: every this many epochs check that all ranks hold
            identical parameters, and stop with an error if not (0 = never).
    """

    backend: Literal["auto", "gloo", "nccl"] = option("auto", key="dist_backend",
                                                      resumable=True)
    timeout: float = option(1800.0, key="dist_timeout", resumable=True)
    check_every: int = option(0, key="dist_check_every", resumable=True)

    def validate(self) -> None:
        check(self.timeout > 0, f"dist_timeout={self.timeout}: must be > 0 seconds")
        check(self.check_every >= 0, f"dist_check_every={self.check_every}: must be >= 0")


class World:
    """The processes of a run and the collectives the trainer needs (module docstring).

    Args:
        rank: This process's rank.
        size: Number of processes.
        group: The process group (``None``: the default group; unused when ``size == 1``).
        timeout: The collectives' timeout in seconds (for messages).
    """

    def __init__(self, rank: int = 0, size: int = 1, group: Any = None,
                 timeout: float | None = None, local_rank: int | None = None) -> None:
        if not 0 <= rank < size:
            raise ValueError(f"rank {rank} outside a world of {size}")
        self.rank, self.size, self.group, self.timeout = rank, size, group, timeout
        #: Rank on this machine (``LOCAL_RANK``; the rank itself when unknown).
        self.local_rank = rank if local_rank is None else local_rank
        #: Payload bytes this rank has handed to the gradient collectives, by kind
        #: (``all_reduce``: the summed buffer; ``all_gather``: this rank's padded
        #: contribution). What crosses the network follows from the algorithm: a
        #: ring all-reduce sends ``2 (n-1)/n`` times its buffer per rank, a ring
        #: all-gather ``n-1`` times the contribution.
        self.traffic: dict[str, int] = {"all_reduce": 0, "all_gather": 0}
        #: Whether this world created the process group (and destroys it in :meth:`close`).
        self.owns_group = False

    @classmethod
    def single(cls) -> World:
        """The one-process world (no communication)."""
        return cls()

    @classmethod
    def from_env(cls, config: DistributedConfig | None = None,
                 device: torch.device | None = None) -> World:
        """The world ``torchrun`` started this process in (one process when not launched by it).

        Joins the default process group (initialising it from the ``torchrun``
        environment if needed).

        Args:
            config: The ``distributed`` section (backend, timeout).
            device: The training device (picks the backend for ``auto``).
        """
        import torch.distributed as dist

        cfg = config or DistributedConfig()
        if not dist.is_initialized():
            if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
                return cls.single()
            backend = cfg.backend
            if backend == "auto":
                backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
            if backend == "nccl" and device is not None and device.type == "cuda":
                torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=cfg.timeout))
            world = cls(dist.get_rank(), dist.get_world_size(), None, cfg.timeout,
                        int(os.environ["LOCAL_RANK"]))
            world.owns_group = True
            return world
        local = os.environ.get("LOCAL_RANK")
        return cls(dist.get_rank(), dist.get_world_size(), None, cfg.timeout,
                   None if local is None else int(local))

    # ------------------------------------------------------------ properties
    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that writes, logs and validates)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there is more than one rank."""
        return self.size > 1

    def describe(self) -> str:
        """``"rank r of n"``."""
        return f"rank {self.rank} of {self.size}"

    def close(self) -> None:
        """Leave the process group if this world created it."""
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False

    # ------------------------------------------------------------ sharding
    def shard(self, n: int) -> slice:
        """This rank's contiguous rows of a global batch of ``n`` rows.

        The first ``n % size`` ranks take one row more; a rank may get none
        when ``n < size``.

        Args:
            n: Rows of the global batch.
        """
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))

    # ------------------------------------------------------------ collectives
    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Turn a failed collective (a lost rank) into a one-line :class:`RankLost`."""
        try:
            yield
        except RuntimeError as exc:  # gloo / NCCL: closed connection, timeout, abort
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RankLost(
                f"{self.describe()}: another rank stopped during {what} ({first[:200]}); the "
                "last complete checkpoint is intact: rerun the same command with --resume "
                "(any number of ranks)") from exc

    def reduce_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Sum the gradients of ``params`` over the ranks (dense and sparse COO).

        One ``all_reduce`` over a flat buffer sums the dense gradients and the
        values of sparse gradients whose rows are the same on every rank (the
        trainer's row-wise views hold the rows of the whole global batch, so
        theirs are); sparse gradients with different rows are gathered
        (:meth:`_reduce_sparse`). A parameter without a gradient on some rank
        counts as zero there; its gradient stays ``None`` only if it has none on
        every rank.

        Args:
            params: The parameters, in the same order on every rank.
        """
        if not self.distributed:
            return
        import torch.distributed as dist

        params = list(params)
        # per parameter: kind (0 none, 1 dense, 2 sparse) and the sparse rows' signature
        # (count, sum, sum of squares); max and -min over the ranks in one all_reduce
        sig = torch.zeros(len(params), 4, dtype=torch.int64)
        for i, p in enumerate(params):
            g = p.grad
            if g is None:
                continue
            if not g.is_sparse:
                sig[i, 0] = 1
                continue
            g = p.grad = g.coalesce()
            idx = g.indices()[0].to("cpu", torch.int64)
            sig[i] = torch.stack([torch.tensor(2), torch.tensor(idx.numel()), idx.sum(),
                                  (idx * idx).sum()])
        both = torch.cat([sig, -sig])
        with self._guard("the gradient reduction"):
            dist.all_reduce(both, op=dist.ReduceOp.MAX, group=self.group)
        hi, lo = both[:len(params)], -both[len(params):]
        flat_parts: list[Tensor] = []
        dense: list[torch.nn.Parameter] = []
        same: list[torch.nn.Parameter] = []
        other: list[torch.nn.Parameter] = []
        for i, p in enumerate(params):
            kind = int(hi[i, 0])
            if kind == 1:
                dense.append(p)
                flat_parts.append((p.grad if p.grad is not None
                                   else torch.zeros_like(p)).reshape(-1))
            elif kind == 2 and int(lo[i, 0]) == 2 and bool((hi[i, 1:] == lo[i, 1:]).all()):
                assert p.grad is not None
                same.append(p)
                flat_parts.append(p.grad.values().reshape(-1))
            elif kind == 2:
                other.append(p)
        if flat_parts:
            flat = torch.cat(flat_parts)
            self.traffic["all_reduce"] += flat.numel() * flat.element_size()
            with self._guard("the gradient reduction"):
                dist.all_reduce(flat, group=self.group)
            offset = 0
            for p in dense:
                n = p.numel()
                p.grad = flat[offset:offset + n].view_as(p)  # a view: no copy
                offset += n
            for p in same:
                g = p.grad
                assert g is not None
                n = g.values().numel()
                values = flat[offset:offset + n].view_as(g.values())
                p.grad = torch.sparse_coo_tensor(g.indices(), values, g.shape,
                                                 is_coalesced=True, check_invariants=False)
                offset += n
        if other:
            self._reduce_sparse(other)

    def _reduce_sparse(self, params: Sequence[torch.nn.Parameter]) -> None:
        """All-gather the row ids and rows of sparse gradients; each rank sums them alike."""
        import torch.distributed as dist

        device = params[0].device
        local: list[tuple[Tensor, Tensor]] = []
        for p in params:
            g = p.grad
            if g is None:
                idx = torch.empty(0, dtype=torch.int64, device=device)
                val = torch.empty((0, *p.shape[1:]), dtype=p.dtype, device=device)
            else:
                g = g.coalesce()
                idx, val = g.indices()[0], g.values()
            local.append((idx, val))
        counts = torch.tensor([len(i) for i, _ in local], dtype=torch.int64, device=device)
        gathered_counts = [torch.empty_like(counts) for _ in range(self.size)]
        with self._guard("the gradient reduction"):
            dist.all_gather(gathered_counts, counts, group=self.group)
        per_rank = torch.stack(gathered_counts).tolist()  # [size][param]
        for j, (p, (idx, val)) in enumerate(zip(params, local)):
            longest = max(row[j] for row in per_rank)
            if longest == 0:
                p.grad = None
                continue
            pad = longest - len(idx)
            idx_p = torch.cat([idx, idx.new_zeros(pad)])
            val_p = torch.cat([val, val.new_zeros((pad, *val.shape[1:]))])
            self.traffic["all_gather"] += (idx_p.numel() * idx_p.element_size()
                                           + val_p.numel() * val_p.element_size())
            all_idx = [torch.empty_like(idx_p) for _ in range(self.size)]
            all_val = [torch.empty_like(val_p) for _ in range(self.size)]
            with self._guard("the gradient reduction"):
                dist.all_gather(all_idx, idx_p, group=self.group)
                dist.all_gather(all_val, val_p, group=self.group)
            ids = torch.cat([a[:per_rank[r][j]] for r, a in enumerate(all_idx)])
            vals = torch.cat([a[:per_rank[r][j]] for r, a in enumerate(all_val)])
            p.grad = torch.sparse_coo_tensor(ids.unsqueeze(0), vals, p.shape).coalesce()

    def sum_floats(self, values: Sequence[float]) -> list[float]:
        """Sum a few numbers over the ranks (e.g. an epoch's loss sums)."""
        if not self.distributed or not values:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(list(values), dtype=torch.float64)
        with self._guard("the epoch's log reduction"):
            dist.all_reduce(t, group=self.group)
        return [float(v) for v in t.tolist()]

    def broadcast_object(self, obj: Any, what: str = "a broadcast") -> Any:
        """Rank 0's ``obj`` on every rank (pickled; for small records only).

        Args:
            obj: The object (read on rank 0, ignored elsewhere).
            what: Names the exchange in error messages.
        """
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        with self._guard(what):
            dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def broadcast_tensors(self, tensors: Iterable[Tensor], what: str = "a broadcast") -> None:
        """Overwrite ``tensors`` with rank 0's values, in place, on every rank.

        Args:
            tensors: The tensors, in the same order and shapes on every rank.
            what: Names the exchange in error messages.
        """
        if not self.distributed:
            return
        import torch.distributed as dist

        with self._guard(what), torch.no_grad():
            for t in tensors:
                dist.broadcast(t.data, src=0, group=self.group)

    def local_first(self, fn: Callable[[], T], what: str = "loading the data") -> T:
        """``fn()`` on every rank, on each machine's local rank 0 before the others.

        Loading a dataset may build a cache on the machine (ogb's processed files,
        the library's safetensors cache); the first rank of each machine builds it
        while the others wait, then they read it.

        Args:
            fn: The work (e.g. loading the graph).
            what: Names the wait in error messages.
        """
        if not self.distributed:
            return fn()
        first = self.local_rank == 0
        result = fn() if first else None
        self.barrier(what)
        if not first:
            result = fn()
        return result  # type: ignore[return-value]

    def barrier(self, what: str = "a barrier") -> None:
        """Wait for every rank."""
        if not self.distributed:
            return
        import torch.distributed as dist

        with self._guard(what):
            dist.barrier(group=self.group)

    def check_identical(self, tensors: dict[str, Tensor], where: str) -> None:
        """Stop with an error if any rank's ``tensors`` differ from rank 0's.

        Args:
            tensors: Name -> tensor (same names and shapes on every rank).
            where: Names the moment in the message (e.g. ``"after epoch 3"``).
        """
        if not self.distributed:
            return
        import torch.distributed as dist

        diffs = []
        with self._guard("the parameter check"), torch.no_grad():
            for t in tensors.values():
                ref = t.detach().clone()
                dist.broadcast(ref, src=0, group=self.group)
                d = (t.detach() - ref).abs().max() if t.numel() else t.new_zeros(())
                diffs.append(float(d))
            worst = torch.tensor(diffs, dtype=torch.float64)
            dist.all_reduce(worst, op=dist.ReduceOp.MAX, group=self.group)
        bad = [(n, d) for n, d in zip(tensors, worst.tolist()) if d != 0.0]
        if bad:
            desc = ", ".join(f"{n} (max |diff| {d:.3g})" for n, d in bad)
            raise RankLost(f"{self.describe()}: parameters differ between ranks {where}: {desc}")
