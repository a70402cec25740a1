r"""Ranks of target entities from score matrices, filtered or raw, with a tie policy.

Link prediction (Bordes et al. 2013, https://papers.nips.cc/paper/5071) ranks
the target of every query among all candidates. For a query with target score
:math:`s^*` and candidate set :math:`C` (all entities, or a given candidate
list; in the *filtered* setting every other known true answer is removed from
:math:`C`):

.. math::
    \mathrm{gt} = |\{c \in C \setminus \{t\} : s_c > s^*\}|, \qquad
    \mathrm{eq} = |\{c \in C \setminus \{t\} : s_c = s^*\}|

    \mathrm{rank}_{\mathrm{opt}} = 1 + \mathrm{gt}, \quad
    \mathrm{rank}_{\mathrm{pess}} = 1 + \mathrm{gt} + \mathrm{eq}, \quad
    \mathrm{rank}_{\mathrm{real}} = \tfrac12(\mathrm{rank}_{\mathrm{opt}}
    + \mathrm{rank}_{\mathrm{pess}}) = 1 + \mathrm{gt} + \tfrac{\mathrm{eq}}{2}

(the "realistic" rank is the mean of the two, as in Ali et al. 2021,
https://arxiv.org/abs/2006.13365, and in OGB's ``ogbl-wikikg2`` evaluator).

Implementation: no sort and no loop over queries. The realistic rank is one
pass over the score matrix: with :math:`\sigma_c = \mathrm{sign}(s_c - s^*)`
and :math:`n = |C|` (the target included),
:math:`\sum_c \sigma_c = \mathrm{gt} - \mathrm{lt}` and
:math:`\mathrm{gt} + \mathrm{lt} + \mathrm{eq} + 1 = n`, so
:math:`\mathrm{rank}_{\mathrm{real}} = (\sum_c \sigma_c + n + 1) / 2`.
The optimistic and pessimistic ranks count ``s > s*`` and ``s >= s*``.
Filtering does not write into the matrix: the contributions of the filtered
entries (a few per query) are gathered and subtracted, which is exact, cheaper
than masking, and also correct when the target score is ``-inf``.

A NaN score of a candidate counts as below the target; a NaN target score
gets the worst rank ``n``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from metasd_pyg.errors import ConfigError

#: Tie policies accepted everywhere (``"realistic"`` is the default).
TIE_POLICIES: tuple[str, ...] = ("realistic", "optimistic", "pessimistic")

#: Largest candidate count whose sign sums stay exact in float32.
_FLOAT32_EXACT = 1 << 24


def check_tie(tie: str) -> str:
    """Validate a tie policy name and return it.

    Args:
        tie: One of :data:`TIE_POLICIES`.
    """
    if tie not in TIE_POLICIES:
        raise ConfigError(f"unknown tie policy {tie!r}; expected one of {', '.join(TIE_POLICIES)}")
    return tie


def _count(
    scores: Tensor, t: Tensor, f_rows: Tensor | None, f_vals: Tensor | None, strict: bool,
    acc: torch.dtype, inplace: bool,
) -> Tensor:
    """Per row, candidates with score ``> t`` (strict) or ``>= t``, filtered ones removed.

    NaN scores compare false, so they never count.
    """
    op = torch.gt if strict else torch.ge
    # Compare into a float buffer: float row sums vectorise better than bool ones.
    buf = scores if inplace else torch.empty_like(scores)
    count = op(scores, t.unsqueeze(1), out=buf).sum(1, dtype=acc).to(torch.float64)
    if f_rows is not None and f_vals is not None:
        hit = op(f_vals, t[f_rows]).to(torch.float64)
        count -= torch.bincount(f_rows, weights=hit, minlength=scores.size(0))
    return count


def ranks_from_scores(
    scores: Tensor,
    target: Tensor,
    *,
    filter_rows: Tensor | None = None,
    filter_cols: Tensor | None = None,
    tie: str = "realistic",
    inplace: bool = False,
    nan_check: bool = True,
) -> Tensor:
    r"""Rank of each query's target among its candidates (see the module docstring).

    Args:
        scores: ``[B, N]`` scores of ``B`` queries against ``N`` candidates
            (higher is better).
        target: ``[B]`` column of each query's target in ``scores``.
        filter_rows: Filtered setting: row ``filter_rows[i]`` must not count
            column ``filter_cols[i]`` (a known true answer). Pairs must be
            unique; a pair naming the query's own target is ignored. ``None``
            for the raw setting.
        filter_cols: Columns matching ``filter_rows``.
        tie: ``"realistic"`` (mean of the two), ``"optimistic"`` or
            ``"pessimistic"``.
        inplace: Allow overwriting ``scores`` (saves one matrix allocation;
            the evaluator passes score matrices it owns).
        nan_check: Look for NaN candidate scores (one extra pass over the
            matrix with the realistic policy). Pass ``False`` only for scores
            known to be NaN-free, e.g. from finite parameters; NaN candidates
            would then count as ties under the realistic policy.

    Returns:
        ``[B]`` float64 ranks, 1 is best (realistic ranks may end in ``.5``).
    """
    check_tie(tie)
    if scores.dim() != 2 or target.dim() != 1 or target.numel() != scores.size(0):
        raise ValueError(
            f"expected scores [B, N] and target [B], got {tuple(scores.shape)} "
            f"and {tuple(target.shape)}"
        )
    B, N = scores.shape
    device = scores.device
    target = target.to(device)
    t = scores[torch.arange(B, device=device), target]  # a copy: safe against in-place ops
    acc = torch.float32 if N < _FLOAT32_EXACT else torch.float64
    n = torch.full((B,), float(N), dtype=torch.float64, device=device)

    f_rows = f_vals = None
    if filter_rows is not None and filter_rows.numel():
        if filter_cols is None:
            raise ValueError("filter_cols is required with filter_rows")
        filter_rows = filter_rows.to(device)
        filter_cols = filter_cols.to(device)
        keep = filter_cols != target[filter_rows]
        f_rows = filter_rows[keep]
        f_vals = scores[f_rows, filter_cols[keep]]  # gathered before any in-place op
        n -= torch.bincount(f_rows, minlength=B).to(torch.float64)

    if tie == "realistic" and nan_check and bool(torch.isnan(scores).any()):
        # Rare path: count both ways; NaN candidates compare false (below the target).
        gt = _count(scores, t, f_rows, f_vals, True, acc, False)
        ge = _count(scores, t, f_rows, f_vals, False, acc, inplace)
        rank = (gt + 1.0 + ge) / 2.0
    elif tie == "realistic":
        diff = scores.sub_(t.unsqueeze(1)) if inplace else scores - t.unsqueeze(1)
        sign = diff.sign_()
        total = sign.sum(1, dtype=acc)
        bad = torch.isnan(total)
        if bool(bad.any()):  # inf - inf: equal infinite scores are ties
            total[bad] = torch.nan_to_num(sign[bad], nan=0.0).sum(1, dtype=acc)
        total = total.to(torch.float64)
        if f_rows is not None and f_vals is not None:
            f_sign = torch.nan_to_num((f_vals - t[f_rows]).sign(), nan=0.0)
            total -= torch.bincount(f_rows, weights=f_sign.to(torch.float64), minlength=B)
        rank = (total + n + 1.0) / 2.0
    elif tie == "optimistic":
        rank = _count(scores, t, f_rows, f_vals, True, acc, inplace) + 1.0
    else:  # ``>=`` counts the target itself (s* >= s*)
        rank = _count(scores, t, f_rows, f_vals, False, acc, inplace)
    nan_target = torch.isnan(t)
    if bool(nan_target.any()):
        rank = torch.where(nan_target, n, rank)
    return rank


def candidate_ranks(positive: Tensor, negative: Tensor, *, tie: str = "realistic") -> Tensor:
    r"""Rank of each positive score among its own negative candidates (OGB protocol).

    With :math:`s^+_i` the positive and :math:`s^-_{ij}` its ``C`` negatives,
    :math:`\mathrm{rank}_{\mathrm{opt}} = 1 + |\{j: s^-_{ij} > s^+_i\}|` and
    :math:`\mathrm{rank}_{\mathrm{pess}} = 1 + |\{j: s^-_{ij} \ge s^+_i\}|`;
    the realistic rank is their mean, exactly as
    ``ogb.linkproppred.Evaluator('ogbl-wikikg2')`` computes it
    (https://ogb.stanford.edu/docs/linkprop/#ogbl-wikikg2), except that a NaN
    positive gets the worst rank ``C + 1`` here (OGB would rank it first).

    Args:
        positive: ``[B]`` scores of the true triples.
        negative: ``[B, C]`` scores of their candidates.
        tie: Tie policy, see :data:`TIE_POLICIES`.

    Returns:
        ``[B]`` float64 ranks in ``[1, C + 1]``.
    """
    scores = torch.cat([positive.reshape(-1, 1).to(negative.dtype), negative], dim=1)
    target = torch.zeros(scores.size(0), dtype=torch.long, device=scores.device)
    return ranks_from_scores(scores, target, tie=tie, inplace=True)
