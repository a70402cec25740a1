r"""Peak memory of a training run, estimated before anything large is allocated.

A run's memory is planned, not discovered: :func:`estimate_memory` adds up,
from the graph's sizes and the configuration, every large buffer the run
holds at once (float32 tables, optimiser state, the meta step's optimiser,
the student's masks, the best epoch's snapshot unless it lives in the
checkpoint folder, the training stream) plus the
largest transient one (a training step's workspace or a validation chunk with
the student's masked tables), and :meth:`MemoryEstimate.check` refuses a run
whose estimate passes a limit, with the itemised figures in the message.

Sizes at ogbl-wikikg2 scale (2,500,604 entities, ComplEx dim 100, so two
entity tables of 2.5M x 100 float32): one table 1.0 GB, the model 2.0 GB,
Adagrad's state 2.0 GB, the meta step's Adagrad 2.0 GB, the masks 0.5 GB,
the best snapshot 2.5 GB (in the checkpoint folder when the run has one); the
estimate is compared with the measured peak in
``benchmarks/results/scale.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from metasd_pyg.errors import ConfigError
from metasd_pyg.models.adapters import adapter_for
from metasd_pyg.system import physical_memory_bytes
from metasd_pyg.training.huge_pages import MIN_BYTES as HUGE_PAGE_MIN_BYTES

if TYPE_CHECKING:
    from metasd_pyg.data.graph import KnowledgeGraph
    from metasd_pyg.training.config import MetaSDConfig

#: Resident memory of the interpreter with torch, PyG and the library imported.
BASELINE_BYTES = 500 * 2**20
#: Floats per (query, candidate) a training step keeps for backward: the logits,
#: their gradient (the fused losses write it in the forward pass, in place of
#: the softmax) and one workspace (one model: 3; teacher and student: 6).
#: Measured on 1-N MetaSD steps at 150k entities: 1.3x the peak with the meta
#: step off, 1.08x with it on (``tests/training/test_memory.py``).
_STEP_FLOATS_PER_SCORE = 3
#: Floats per (query, candidate) of the meta step's twice-differentiable
#: forwards (virtual step and quiz; measured on 1-N steps at 150k entities).
_META_FLOATS_PER_SCORE = 12


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


@dataclass(frozen=True)
class MemoryEstimate:
    """Itemised peak-memory estimate of a run.

    Attributes:
        held: Buffers held for the whole run, name -> bytes.
        transient: The largest buffers that exist for a moment (a step's
            workspace, a validation chunk), name -> bytes; only the largest
            counts toward the peak.
    """

    held: dict[str, int] = field(default_factory=dict)
    transient: dict[str, int] = field(default_factory=dict)

    @property
    def peak_bytes(self) -> int:
        """Held buffers plus the largest transient one."""
        return sum(self.held.values()) + max(self.transient.values(), default=0)

    def describe(self) -> str:
        """One line: the total and its largest items."""
        items = sorted(self.held.items(), key=lambda kv: -kv[1])[:5]
        peak_t = max(self.transient.items(), key=lambda kv: kv[1], default=None)
        parts = [f"{k} {_gb(v)}" for k, v in items]
        if peak_t is not None:
            parts.append(f"at most {_gb(peak_t[1])} for {peak_t[0]}")
        return f"estimated peak memory {_gb(self.peak_bytes)} (" + ", ".join(parts) + ")"

    def check(self, limit_bytes: int | None, where: str = "memory limit") -> None:
        """Refuse a run whose estimate passes ``limit_bytes`` (``None``: no limit).

        Args:
            limit_bytes: The limit.
            where: Names the limit in the message (e.g. the flag that sets it).

        Raises:
            ConfigError: The estimate is above the limit.
        """
        if limit_bytes is not None and self.peak_bytes > limit_bytes:
            raise ConfigError(
                f"{self.describe()} exceeds the {where} of {_gb(limit_bytes)}; lower dim, use "
                "loss=sampled (row-wise steps), a smaller eval_batch_size, or raise the limit")

    def to_dict(self) -> dict[str, object]:
        """JSON form: ``estimated_bytes`` and the items."""
        return {"estimated_bytes": self.peak_bytes, "held": dict(self.held),
                "transient": dict(self.transient)}


def estimate_memory(config: MetaSDConfig, graph: KnowledgeGraph, *,
                    checkpoints: bool = False) -> MemoryEstimate:
    """Estimate the peak memory of training ``config`` on ``graph`` (module docstring).

    Args:
        config: The run's configuration.
        graph: The graph (its tensors are already in memory and counted).
        checkpoints: The run has a checkpoint folder (large best-epoch
            snapshots then live there, ``selection.DISK_SNAPSHOT_BYTES``).
    """
    from metasd_pyg.training.modes import has_student, runs_meta
    from metasd_pyg.training.selection import DISK_SNAPSHOT_BYTES

    E, R = graph.num_entities, graph.num_relations
    adapter = adapter_for(config.model.name)
    dim = config.model.dim
    mode = config.recipe.mode
    if mode == "dense_same_nnz":
        from metasd_pyg.training.recipes import same_nnz_dim

        dim = same_nnz_dim(dim, config.pruning.sparsity)
    n_ent, n_rel = len(adapter.entity_tables), len(adapter.relation_tables)
    ent_floats = E * dim * n_ent
    params = 4 * (ent_floats + 2 * R * dim * n_rel)
    held: dict[str, int] = {"baseline (python, torch)": BASELINE_BYTES}
    data = sum(t.numel() * t.element_size() for t in (graph.train, graph.valid, graph.test))
    data += sum(t.numel() * t.element_size() for c in graph.candidates.values()
                for t in c.values())
    held["graph"] = data
    n_train = int(graph.train.size(0))
    held["training stream (reciprocal) and shuffle"] = 2 * n_train * 3 * 8 + 2 * n_train * 8
    held["model (float32)"] = params
    per_param = 2 if config.optim.optimizer == "adam" else 1
    held[f"optimizer state ({config.optim.optimizer})"] = per_param * params
    student = has_student(mode)
    if student:
        held["student masks (bool)"] = ent_floats + 2 * R * dim * n_rel
        if runs_meta(mode) and config.meta.enabled:
            meta_per = 2 if config.meta.optimizer == "adam" else 1
            held[f"meta optimizer state ({config.meta.optimizer})"] = meta_per * params
    snap = params + held.get("student masks (bool)", 0)
    if not (checkpoints and snap >= DISK_SNAPSHOT_BYTES):
        held["best epoch's snapshot"] = snap
    B = config.trainer.batch_size
    transient: dict[str, int] = {}
    views = 2 if student else 1
    scores = _STEP_FLOATS_PER_SCORE * views * B
    if student and runs_meta(mode) and config.meta.enabled:
        scores += _META_FLOATS_PER_SCORE * min(config.meta.batch_size, B)
    if config.loss.loss == "sampled" and config.trainer.engine != "dense":
        C = B + config.loss.num_negatives
        transient["a training step (gathered rows)"] = 4 * (scores * C + 6 * C * dim * n_ent)
        if config.runtime.huge_pages and 4 * E * dim >= HUGE_PAGE_MIN_BYTES:
            transient["a table's copy onto huge pages (start-up)"] = 4 * E * dim
    else:
        transient["a training step (whole tables)"] = 4 * scores * E + 2 * params
    budget = 256 * 2**20
    if config.eval.batch_size is not None:
        from metasd_pyg.evaluation.chunking import candidate_query_bytes, full_query_bytes

        width = dim * n_ent
        per_query = (candidate_query_bytes(501, width) if graph.has_candidates
                     else full_query_bytes(E))
        budget = config.eval.batch_size * per_query
    view = 0
    if student:  # the student's masked tables, narrowed to its columns (selection.py)
        view = int(1.25 * params * _compact_share(config, dim))
    transient["validation (a chunk, the student's masked tables)"] = budget + view
    if not graph.has_candidates:
        n_all = n_train + int(graph.valid.size(0)) + int(graph.test.size(0))
        held["filter index (filtered ranking)"] = 2 * 3 * n_all * 8
    return MemoryEstimate(held, transient)


def _compact_share(config: MetaSDConfig, dim: int) -> float:
    """Share of the columns the student's entity scores use (views.compact_view)."""
    pr = config.pruning
    if not config.trainer.compact_student or not adapter_for(config.model.name).bilinear:
        return 1.0
    keep = 1.0 - pr.sparsity
    if pr.strategy == "aligned":
        return keep
    if pr.strategy == "degree":
        if pr.k_max is not None:
            return min(1.0, pr.k_max / dim)
        if pr.k_max_factor is not None:
            return min(1.0, (math.ceil(pr.k_max_factor * keep * dim) + 1) / dim)
    return 1.0


def check_memory(config: MetaSDConfig, graph: KnowledgeGraph, limit_bytes: int | None, *,
                 checkpoints: bool = False) -> MemoryEstimate:
    """:func:`estimate_memory` and :meth:`MemoryEstimate.check` in one call.

    Args:
        config: The run's configuration.
        graph: The graph.
        limit_bytes: The limit (``None``: only estimate).
        checkpoints: The run has a checkpoint folder.
    """
    est = estimate_memory(config, graph, checkpoints=checkpoints)
    est.check(limit_bytes)
    return est


__all__ = ["BASELINE_BYTES", "MemoryEstimate", "check_memory", "estimate_memory",
           "physical_memory_bytes"]
