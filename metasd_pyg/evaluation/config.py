"""The evaluation section of a training run: how often and how much to validate."""

from __future__ import annotations

from dataclasses import dataclass

from metasd_pyg.sections import Section, check, option


@dataclass(frozen=True)
class EvalConfig(Section):
    """Validation during training (model selection on valid MRR).

    Args:
        every: Validate every this many epochs (and after the last one).
        max_queries: Cap on validation queries during training (a fixed seeded
            subset; None = all). The final results always use every query.
        batch_size: Batch size of the evaluator (None = its default).
    """

    every: int = option(5, key="eval_every")
    max_queries: int | None = option(None, key="valid_max_queries")
    batch_size: int | None = option(None, key="eval_batch_size", resumable=True)

    def validate(self) -> None:
        check(self.every >= 1, f"eval_every={self.every}: must be >= 1")
        check(self.max_queries is None or self.max_queries >= 1,
              f"valid_max_queries={self.max_queries}: must be >= 1 or None")
        check(self.batch_size is None or self.batch_size >= 1,
              f"eval_batch_size={self.batch_size}: must be >= 1 or None")
