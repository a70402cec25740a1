"""A streaming ranking evaluator for training loops: update with batches, then compute."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from metasd_pyg.errors import ConfigError
from metasd_pyg.evaluation.buckets import (
    SIDES,
    Bins,
    BinScheme,
    bucket_table,
    bucket_values,
    make_scheme,
)
from metasd_pyg.evaluation.metrics import DEFAULT_KS, check_ks, rank_metrics
from metasd_pyg.evaluation.ranks import candidate_ranks, check_tie, ranks_from_scores
from metasd_pyg.evaluation.result import EvaluationResult

if TYPE_CHECKING:
    from metasd_pyg.data.graph import KnowledgeGraph

#: Protocols: ranking against all entities, or against given candidates (OGB).
PROTOCOLS: tuple[str, ...] = ("full", "ogb")


def _side_code(side: str) -> int:
    if side not in SIDES:
        raise ConfigError(f"unknown side {side!r}; expected 'tail' or 'head'")
    return SIDES.index(side)


class RankingEvaluator:
    r"""Accumulates per-query ranks batch by batch; :meth:`compute` gives the result.

    A query is one side of a test triple :math:`(h, r, t)`: ``"tail"``
    predicts :math:`t` from :math:`(h, r)`, ``"head"`` predicts :math:`h`
    from :math:`(r, t)`. Feed score matrices (:meth:`update`), OGB-style
    positive/negative scores (:meth:`update_candidates`) or ready ranks
    (:meth:`update_ranks`); nothing but the ranks is kept, so memory grows by
    a few numbers per query. Metrics as in MetaSD (Li et al. 2022,
    https://aclanthology.org/2022.findings-emnlp.149/).

    Example::

        ev = RankingEvaluator(graph)
        for batch in graph.valid.split(1024):
            ev.update(score_tails(model, batch[:, 0], batch[:, 1]), batch, side="tail")
        print(ev.compute().summary["mrr"])

    Args:
        graph: The graph (filter index for the filtered setting, train
            statistics for buckets). ``None`` allows only raw ranking without
            degree buckets.
        filtered: Remove the other known true triples (train + valid + test)
            from the candidates of :meth:`update`.
        tie: Tie policy (``"realistic"``, ``"optimistic"``, ``"pessimistic"``).
        ks: Hits@k cut-offs.
        label: Model label of the result.
        protocol: ``"full"`` (all entities) or ``"ogb"`` (given candidates);
            recorded in the result.
        split: Split name, recorded in the result.
    """

    def __init__(
        self,
        graph: KnowledgeGraph | None = None,
        *,
        filtered: bool = True,
        tie: str = "realistic",
        ks: Sequence[int] = DEFAULT_KS,
        label: str = "model",
        protocol: str = "full",
        split: str | None = None,
    ) -> None:
        if filtered and graph is None and protocol == "full":
            raise ConfigError("filtered ranking needs the graph (its known true triples)")
        if protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {protocol!r}; expected 'full' or 'ogb'")
        self.graph = graph
        self.filtered = bool(filtered) and protocol == "full"
        self.tie = check_tie(tie)
        self.ks = check_ks(ks)
        self.label = label
        self.protocol = protocol
        self.split = split
        self.reset()

    def reset(self) -> None:
        """Forget all queries seen so far."""
        self._parts: list[tuple[int, Tensor, Tensor, Tensor, Tensor, Tensor]] = []
        self._seen = [0, 0]

    @property
    def num_queries(self) -> int:
        """Number of queries accumulated."""
        return sum(int(p[5].numel()) for p in self._parts)

    def _unpack(self, triples: Tensor, side: str) -> tuple[int, Tensor, Tensor, Tensor]:
        code = _side_code(side)
        if triples.dim() != 2 or triples.size(1) != 3:
            raise ValueError(f"triples must be [B, 3], got {tuple(triples.shape)}")
        h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
        return (code, h, r, t) if code == 0 else (code, t, r, h)

    def update_ranks(
        self, ranks: Tensor, triples: Tensor, *, side: str = "tail",
        triple_index: Tensor | None = None,
    ) -> None:
        """Add precomputed ranks of ``triples`` on ``side``.

        Args:
            ranks: ``[B]`` ranks (1 is best).
            triples: ``[B, 3]`` the evaluated triples (head, relation, tail).
            side: ``"tail"`` or ``"head"``.
            triple_index: ``[B]`` row of each triple in its split; by default a
                running count per side.
        """
        code, query, rel, target = self._unpack(triples, side)
        b = triples.size(0)
        if ranks.numel() != b:
            raise ValueError(f"got {ranks.numel()} ranks for {b} triples")
        if triple_index is None:
            triple_index = torch.arange(self._seen[code], self._seen[code] + b)
        self._seen[code] += b
        self._parts.append((
            code,
            triple_index.detach().cpu().long(),
            query.detach().cpu(),
            target.detach().cpu(),
            rel.detach().cpu(),
            ranks.detach().cpu().double(),
        ))

    def update(
        self, scores: Tensor, triples: Tensor, *, side: str = "tail",
        group: Tensor | None = None, triple_index: Tensor | None = None,
        inplace: bool = False, nan_check: bool = True,
    ) -> Tensor:
        """Rank the targets of ``triples`` in a score matrix and keep the ranks.

        Args:
            scores: ``[B, E]`` scores of each query against every entity, or
                ``[G, E]`` scores of the distinct queries with ``group``.
            triples: ``[B, 3]`` the evaluated triples (head, relation, tail).
            side: ``"tail"`` (scores over tails of ``(h, r)``) or ``"head"``.
            group: ``[B]`` row of ``scores`` of each triple; triples sharing a
                row must share the query entity and relation, and every row
                must be used. Scoring distinct queries once saves time.
            triple_index: ``[B]`` row of each triple in its split (optional).
            inplace: Allow overwriting ``scores``.
            nan_check: Look for NaN scores (see
                :func:`~metasd_pyg.evaluation.ranks.ranks_from_scores`).

        Returns:
            ``[B]`` the ranks.
        """
        code, query, rel, target = self._unpack(triples, side)
        f_rows = f_cols = None
        if self.filtered:
            assert self.graph is not None
            index = self.graph.filter_index
            dev = index.tail_keys.device
            q, r = query.to(dev), rel.to(dev)
            if group is not None:  # one representative triple per score row
                g = group.to(dev)
                rep = torch.full((scores.size(0),), len(g), dtype=torch.long, device=dev)
                rep.scatter_reduce_(0, g, torch.arange(len(g), device=dev), reduce="amin")
                if bool((rep == len(g)).any()):
                    raise ValueError("every score row must be used by a triple (see group)")
                q, r = q[rep], r[rep]
            f_rows, f_cols = index.tails(q, r) if code == 0 else index.heads(r, q)
        ranks = ranks_from_scores(scores, target.to(scores.device), group=group,
                                  filter_rows=f_rows, filter_cols=f_cols, tie=self.tie,
                                  inplace=inplace, nan_check=nan_check)
        self.update_ranks(ranks, triples, side=side, triple_index=triple_index)
        return ranks

    def update_candidates(
        self, positive: Tensor, negative: Tensor, triples: Tensor, *, side: str = "tail",
        triple_index: Tensor | None = None,
    ) -> Tensor:
        """Rank positive scores among given negatives (OGB protocol) and keep the ranks.

        Args:
            positive: ``[B]`` scores of ``triples``.
            negative: ``[B, C]`` scores of each triple's candidates on ``side``.
            triples: ``[B, 3]`` the evaluated triples.
            side: ``"tail"`` or ``"head"``.
            triple_index: ``[B]`` row of each triple in its split (optional).

        Returns:
            ``[B]`` the ranks.
        """
        ranks = candidate_ranks(positive, negative, tie=self.tie)
        self.update_ranks(ranks, triples, side=side, triple_index=triple_index)
        return ranks

    def rank_frame(self) -> pd.DataFrame:
        """Per-query ranks so far (without the bucket column)."""
        cols: dict[str, Any]
        if not self._parts:
            cols = {c: np.empty(0, dtype=np.int64) for c in ("triple", "query", "target",
                                                             "relation")}
            cols["rank"] = np.empty(0)
            return pd.DataFrame({"side": np.empty(0, dtype=object), **cols})
        codes = np.concatenate([np.full(p[5].numel(), p[0]) for p in self._parts])
        columns = list(zip(*self._parts, strict=True))[1:]  # triple, query, target, relation, rank
        cat = [torch.cat(list(c)).numpy() for c in columns]
        return pd.DataFrame({
            "side": np.asarray(SIDES, dtype=object)[codes],
            "triple": cat[0], "query": cat[1], "target": cat[2], "relation": cat[3],
            "rank": cat[4],
        })

    def compute(self, *, bucket_by: str | None = "target", bins: Bins = "log") -> EvaluationResult:
        """Summary, bucket table and per-query ranks of everything seen so far.

        Args:
            bucket_by: ``"target"``, ``"query"``, ``"relation"``, ``"category"``
                or ``None`` (see :mod:`~metasd_pyg.evaluation.buckets`).
            bins: Bin scheme (``"log"``, ``"quantile"``, an int, or edges).
        """
        frame = self.rank_frame()
        return build_result(
            frame, self.graph, label=self.label, ks=self.ks, tie=self.tie,
            filtered=self.filtered, protocol=self.protocol, bucket_by=bucket_by, bins=bins,
            extra_config={"split": self.split,
                          "dataset": self.graph.name if self.graph is not None else None},
        )


def build_result(
    frame: pd.DataFrame,
    graph: KnowledgeGraph | None,
    *,
    label: str,
    ks: Sequence[int],
    tie: str,
    filtered: bool,
    protocol: str,
    bucket_by: str | None,
    bins: Bins,
    extra_config: dict[str, Any] | None = None,
) -> EvaluationResult:
    """Assemble an :class:`EvaluationResult` from per-query ranks.

    See :meth:`RankingEvaluator.compute`.

    Args:
        frame: Per-query ranks with columns side, triple, query, target, relation, rank.
        graph: Graph whose train statistics define the buckets (required unless
            ``bucket_by`` is ``None``).
        label: Model label.
        ks: Hits@k cut-offs.
        tie: Tie policy the ranks were computed with.
        filtered: Whether the ranks are filtered.
        protocol: ``"full"`` or ``"ogb"``.
        bucket_by: What to bucket by.
        bins: Bin scheme.
        extra_config: More entries for ``config``.
    """
    ks = check_ks(ks)
    ranks = frame["rank"].to_numpy(dtype=np.float64)
    side_codes = (frame["side"].to_numpy() == "head").astype(np.int64)
    if bucket_by is not None and graph is None:
        raise ConfigError(f"bucket_by={bucket_by!r} needs the graph's train statistics")
    if bucket_by is None:
        values = np.zeros(len(frame), dtype=np.int64)
    else:
        assert graph is not None
        values = bucket_values(graph.stats, bucket_by, frame["query"].to_numpy(),
                               frame["target"].to_numpy(), frame["relation"].to_numpy())
    scheme: BinScheme = make_scheme(bucket_by, bins, values)
    bucket = scheme.assign(values)
    frame = frame.copy()
    frame["bucket"] = np.asarray(scheme.labels, dtype=object)[bucket] if len(frame) else \
        np.empty(0, dtype=object)
    summary: dict[str, Any] = rank_metrics(ranks, ks)
    summary.update({"tie": tie, "filtered": filtered, "protocol": protocol})
    for code, name in enumerate(SIDES):
        sel = side_codes == code
        if sel.any():
            summary[name] = rank_metrics(ranks[sel], ks)
    table = bucket_table(side_codes, bucket, ranks, scheme, ks, label=label, bucket_by=bucket_by)
    config: dict[str, Any] = {
        "tie": tie, "filtered": filtered, "protocol": protocol, "ks": list(ks),
        "bucket_by": bucket_by, "bins": scheme.to_dict(),
    }
    config.update(extra_config or {})
    return EvaluationResult(label=label, summary=summary, buckets=table, ranks=frame,
                            config=config)
