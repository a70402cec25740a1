"""Query chunk sizes from a memory budget."""

from __future__ import annotations

from metasd_pyg.errors import ConfigError

#: Default memory budget of one chunk of score matrices, in MiB.
DEFAULT_MEMORY_BUDGET_MB = 256.0

#: Working copies of a score row per query (the scores, one temporary, and the
#: distance models' intermediate).
_FULL_FACTOR = 2
#: OGB protocol: gathered candidate rows, sub-table copy and scores.
_OGB_FACTOR = 3


def full_query_bytes(num_entities: int, element_size: int = 4) -> int:
    """Bytes one query costs when scored against all ``num_entities`` entities.

    Args:
        num_entities: Number of candidates per query.
        element_size: Bytes per score (4 for float32).
    """
    return _FULL_FACTOR * num_entities * element_size


def candidate_query_bytes(num_candidates: int, width: int, element_size: int = 4) -> int:
    """Bytes one query costs in the OGB protocol (``num_candidates`` rows of ``width``).

    Args:
        num_candidates: Candidates per query (the positive included).
        width: Candidate representation width (sum of the entity table widths).
        element_size: Bytes per value.
    """
    return _OGB_FACTOR * num_candidates * (width + 1) * element_size


def chunk_size(
    query_bytes: int, memory_budget_mb: float, batch_size: int | None = None
) -> int:
    """Number of queries per chunk: ``batch_size`` if given, else what fits the budget.

    Args:
        query_bytes: Memory one query needs.
        memory_budget_mb: Budget in MiB (at least one query is always processed).
        batch_size: Explicit chunk size (overrides the budget).
    """
    if batch_size is not None:
        if int(batch_size) != batch_size or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        return int(batch_size)
    if not memory_budget_mb > 0:
        raise ConfigError(f"memory_budget_mb must be positive, got {memory_budget_mb!r}")
    return max(1, int(memory_budget_mb * 2**20) // max(1, query_bytes))
