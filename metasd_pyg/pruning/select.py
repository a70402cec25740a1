r"""Exact top-:math:`n` selection across several tables, in bounded memory.

The global magnitude threshold (and the random component) must keep exactly
:math:`n` of the :math:`N` entries of all pruned tables. Concatenating the
tables and calling :func:`torch.topk` / :func:`torch.kthvalue` would copy all
of them (4 GB of float32 for ComplEx on ogbl-wikikg2, 2.5M x 200 x 2 reals) and
sort 10^9 values. Instead we use a **radix select** on the IEEE-754 bit
patterns of the non-negative float32 scores, which are ordered like the
scores themselves:

1. a histogram of the top 16 bits (32,768 bins) finds the bin holding the
   :math:`n`-th largest score;
2. a histogram of the low 16 bits of the entries in that bin gives the exact
   threshold value :math:`\tau`;
3. a last pass keeps every score :math:`> \tau` and the first
   :math:`n - |\{s > \tau\}|` entries equal to :math:`\tau`, in table order
   then row-major order (ties broken deterministically, so the count is exact).

Each pass streams the tables in chunks of :data:`CHUNK_ELEMENTS` entries, so
the extra memory is a few chunk-sized buffers (about 100 MB) plus the bool
output masks, whatever the table size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

#: Entries per streamed chunk (4M: 16 MB of float32 scores).
CHUNK_ELEMENTS = 1 << 22

#: ``score(table_index, start, flat_chunk) -> float32 scores`` of one chunk. Scores must
#: be non-negative with a clear sign bit (``abs`` gives that; ``-0.0`` would rank first).
ScoreFn = Callable[[int, int, Tensor], Tensor]


def magnitude_score(table_index: int, start: int, chunk: Tensor) -> Tensor:
    """Absolute value in float32 (the magnitude-pruning score)."""
    return chunk.detach().abs().to(torch.float32)


def _chunks(tables: Sequence[Tensor], chunk: int) -> Iterator[tuple[int, int, Tensor]]:
    for i, t in enumerate(tables):
        flat = t.reshape(-1)
        for start in range(0, flat.numel(), chunk):
            yield i, start, flat[start : start + chunk]


def _bits(score: Tensor) -> Tensor:
    # Non-negative float32 -> int32 with the same order.
    return score.to(torch.float32).contiguous().view(torch.int32)


def _last_bin_with(hist: Tensor, need: int) -> tuple[int, int]:
    """Largest bin ``b`` with ``#(entries in bins >= b) >= need``; count strictly above it."""
    ge = hist.flip(0).cumsum(0).flip(0)  # ge[b] = entries in bins >= b
    b = int((ge >= need).nonzero().max())
    above = int(ge[b + 1]) if b + 1 < ge.numel() else 0
    return b, above


def select_top(
    tables: Sequence[Tensor],
    n: int,
    score: ScoreFn = magnitude_score,
    *,
    chunk: int = CHUNK_ELEMENTS,
) -> list[Tensor]:
    """Bool masks keeping exactly the ``n`` entries with the largest ``score``.

    Ties are broken by table order, then by row-major position.

    Args:
        tables: Tensors (any shapes, one device); each yields a mask of its shape.
        n: Number of entries to keep over all tables (clipped to ``[0, total]``).
        score: Score of a chunk (see :data:`ScoreFn`), non-negative float32;
            called three times per chunk, so it must be deterministic.
        chunk: Entries per streamed chunk.
    """
    total = sum(t.numel() for t in tables)
    if n <= 0 or n >= total:
        return [torch.full(t.shape, n > 0, dtype=torch.bool, device=t.device) for t in tables]
    device = tables[0].device
    hi_hist = torch.zeros(1 << 15, dtype=torch.long, device=device)
    for i, start, c in _chunks(tables, chunk):
        hi_hist += torch.bincount(_bits(score(i, start, c)) >> 16, minlength=1 << 15)
    hi, above = _last_bin_with(hi_hist, n)
    lo_hist = torch.zeros(1 << 16, dtype=torch.long, device=device)
    for i, start, c in _chunks(tables, chunk):
        b = _bits(score(i, start, c))
        lo_hist += torch.bincount(b[(b >> 16) == hi] & 0xFFFF, minlength=1 << 16)
    lo, above_lo = _last_bin_with(lo_hist, n - above)
    tau = (hi << 16) | lo
    ties_to_keep = n - above - above_lo
    all_ties = ties_to_keep == int(lo_hist[lo])
    flat_masks = [torch.empty(t.numel(), dtype=torch.bool, device=device) for t in tables]
    seen_ties = 0
    for i, start, c in _chunks(tables, chunk):
        b = _bits(score(i, start, c))
        out = flat_masks[i][start : start + c.numel()]
        if all_ties:  # common case: no tie is cut, keep everything >= tau
            torch.ge(b, tau, out=out)
            continue
        torch.gt(b, tau, out=out)
        if seen_ties < ties_to_keep:
            eq = b == tau
            rank = eq.cumsum(0) + seen_ties  # 1-based rank of each tie
            seen_ties = int(rank[-1])
            out |= eq & (rank <= ties_to_keep)
    return [m.view(t.shape) for m, t in zip(flat_masks, tables)]


def random_score(seed: int, exclude: Sequence[Tensor]) -> ScoreFn:
    """Seeded uniform scores in ``(0, 1]``, 0 on excluded entries.

    The score of an entry is a fixed function of ``(seed, table, position)``
    (one generator per chunk, seeded from them), so repeated calls and the
    three passes of :func:`select_top` see the same values on any device.

    Args:
        seed: Random seed.
        exclude: Bool tensors (shapes of the tables); ``True`` entries get score 0.
    """

    def score(table_index: int, start: int, c: Tensor) -> Tensor:
        gen = torch.Generator(device=c.device)
        gen.manual_seed((seed * 0x9E3779B1 + table_index * 0x85EBCA6B + start) % (1 << 63))
        r = 1.0 - torch.rand(c.numel(), generator=gen, device=c.device, dtype=torch.float32)
        ex = exclude[table_index].reshape(-1)[start : start + c.numel()]
        return r.masked_fill_(ex, 0.0)

    return score
