"""The result of an evaluation: summary, bucket table, per-query ranks, configuration."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metasd_pyg.evaluation.buckets import BinScheme

#: Columns of :attr:`EvaluationResult.ranks`.
RANK_COLUMNS: tuple[str, ...] = ("side", "triple", "query", "target", "relation", "rank",
                                 "bucket")


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer | np.bool_):
        return x.item()
    if isinstance(x, float | np.floating):
        f = float(x)
        return None if (math.isnan(f) or math.isinf(f)) else f
    return x


@dataclass
class EvaluationResult:
    """Metrics of one model on one split (MetaSD, https://aclanthology.org/2022.findings-emnlp.149/).

    Args:
        label: Model label (the ``model`` column of :attr:`buckets`).
        summary: ``{"mrr", "mr", "hits@k"..., "num_queries", "tie", "filtered",
            "protocol", "tail": {...}, "head": {...}}``; the top-level metrics
            are micro averages over the queries of both sides.
        buckets: Tidy table, one row per model x side x bucket, with ``micro``
            and ``macro`` rows per side (see :func:`~.buckets.bucket_table`).
        ranks: Per-query ranks: ``side`` (``"tail"``/``"head"``), ``triple``
            (row in the split), ``query`` (given entity), ``target`` (entity to
            predict), ``relation``, ``rank`` and ``bucket`` (label).
        config: How the result was computed: split, dataset, tie, filtered,
            protocol, ks, bucket_by, bins (the recorded scheme)...
    """

    label: str
    summary: dict[str, Any]
    buckets: pd.DataFrame
    ranks: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str:
        """Alias of :attr:`label`."""
        return self.label

    @property
    def scheme(self) -> BinScheme:
        """The bin scheme the buckets were built with."""
        return BinScheme.from_dict(self.config["bins"])

    @property
    def mrr(self) -> float:
        """Overall (micro) MRR."""
        return float(self.summary["mrr"])

    def to_dict(self, *, include_ranks: bool = False) -> dict[str, Any]:
        """JSON-serialisable form (NaN and infinities become ``None``).

        Args:
            include_ranks: Also store the per-query ranks (column lists), so
                :meth:`from_dict` can restore a result usable by
                :func:`~metasd_pyg.evaluation.compare`.
        """
        out: dict[str, Any] = {
            "label": self.label,
            "summary": _jsonable(self.summary),
            "config": _jsonable(self.config),
            "buckets": _jsonable(self.buckets.to_dict(orient="records")),
        }
        if include_ranks:
            out["ranks"] = {c: _jsonable(self.ranks[c].tolist()) for c in self.ranks.columns}
        return out

    @staticmethod
    def from_dict(data: dict[str, Any], ranks: pd.DataFrame | None = None) -> EvaluationResult:
        """Rebuild a result from :meth:`to_dict` output.

        Args:
            data: The dictionary (e.g. loaded from JSON).
            ranks: Per-query ranks stored elsewhere (a run folder's
                ``ranks.safetensors``); default: ``data["ranks"]``, or none.
        """
        buckets = pd.DataFrame.from_records(data["buckets"])
        for col in ("lower", "upper"):
            if col in buckets:
                buckets[col] = buckets[col].astype("float64")
        bins = data.get("config", {}).get("bins")
        if bins and len(buckets) and "bucket" in buckets:  # JSON has no inf: restore bounds
            scheme = BinScheme.from_dict(bins)
            lowers = dict(zip(scheme.labels, scheme.lowers))
            uppers = dict(zip(scheme.labels, scheme.uppers))
            known = buckets["bucket"].isin(list(scheme.labels))
            buckets.loc[known, "lower"] = buckets.loc[known, "bucket"].map(lowers)
            buckets.loc[known, "upper"] = buckets.loc[known, "bucket"].map(uppers)
        if ranks is None:
            ranks = pd.DataFrame(data.get("ranks", {c: [] for c in RANK_COLUMNS}))
        return EvaluationResult(
            label=data["label"],
            summary=dict(data["summary"]),
            buckets=buckets,
            ranks=ranks,
            config=dict(data.get("config", {})),
        )

    def __repr__(self) -> str:
        s = self.summary
        hits = ", ".join(f"{k}={s[k]:.4f}" for k in s if k.startswith("hits@"))
        return (
            f"EvaluationResult({self.label!r}, {self.config.get('split', '?')}, "
            f"mrr={s['mrr']:.4f}, mr={s['mr']:.1f}, {hits}, n={s['num_queries']}, "
            f"tie={s['tie']}, protocol={s['protocol']})"
        )
