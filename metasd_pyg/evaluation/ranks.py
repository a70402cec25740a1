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

Implementation: no loop over queries and no sort of score rows. The realistic
rank is one pass over the scores: with :math:`\sigma_c = \mathrm{sign}(s_c -
s^*)` over all columns and :math:`n = |C|` (the target included),
:math:`\sum_c \sigma_c = \mathrm{gt} - \mathrm{lt}` and
:math:`\mathrm{gt} + \mathrm{lt} + \mathrm{eq} + 1 = n`, so
:math:`\mathrm{rank}_{\mathrm{real}} = (\sum_c \sigma_c + n + 1) / 2`. The
optimistic and pessimistic ranks count ``s > s*`` and ``s >= s*``.

Filtering never writes into the matrix: the contributions of the filtered
entries are subtracted. Queries sharing their (entity, relation) share one
score row and one filter set (the head side of FB15k-237's test set has 9,113
distinct queries for 20,466 triples, and N-to-1 relations give single queries
thousands of filtered answers), so filtered entries are stored once per row;
each query's count of filtered entries above its own target comes from one
stable sort of the filtered scores together with the targets' scores, grouped
by row. This is exact, far cheaper than masking a copy per query, and also
correct for ``-inf`` target scores.

A NaN score of a candidate counts as below the target; a NaN target score
gets the worst rank ``n``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from metasd_pyg.errors import ConfigError
from metasd_pyg.evaluation.sorting import search_sorted, sort_values, unique_inverse

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


def _row_stat(rows: Tensor, t: Tensor, mode: str, acc: torch.dtype, inplace: bool) -> Tensor:
    """Per row: sum of sign(s - t) ("sign"), count of s > t ("gt") or of s >= t ("ge")."""
    t_col = t.unsqueeze(1)
    if mode == "sign":
        diff = rows.sub_(t_col) if inplace else rows - t_col
        sign = diff.sign_()
        total = sign.sum(1, dtype=acc)
        bad = torch.isnan(total)
        if bool(bad.any()):  # inf - inf: equal infinite scores are ties
            total[bad] = torch.nan_to_num(sign[bad], nan=0.0).sum(1, dtype=acc)
        return total.to(torch.float64)
    op = torch.gt if mode == "gt" else torch.ge
    # Compare into a float buffer: float row sums vectorise better than bool ones.
    buf = rows if inplace else torch.empty_like(rows)
    return op(rows, t_col, out=buf).sum(1, dtype=acc).to(torch.float64)


def _query_stat(
    scores: Tensor, group: Tensor | None, t: Tensor, mode: str, acc: torch.dtype, inplace: bool
) -> Tensor:
    """:func:`_row_stat` of every query against its own row ``scores[group[i]]``.

    Each row is used in place by one query of its group (when allowed); the
    other queries of the group work on copies made first.
    """
    if group is None:
        return _row_stat(scores, t, mode, acc, inplace)
    G, B = scores.size(0), group.numel()
    ar = torch.arange(B, device=group.device)
    rep = torch.full((G,), B, dtype=torch.long, device=group.device)
    rep.scatter_reduce_(0, group, ar, reduce="amin")  # one query per row (the first)
    out = torch.empty(B, dtype=torch.float64, device=scores.device)
    is_rep = torch.zeros(B + 1, dtype=torch.bool, device=group.device)
    is_rep[rep] = True
    is_rep = is_rep[:B]
    others = (~is_rep).nonzero().squeeze(1)
    if others.numel():
        copies = scores.index_select(0, group[others])
        out[others] = _row_stat(copies, t[others], mode, acc, True)
    used = rep < B
    if bool(used.all()):
        out[rep] = _row_stat(scores, t[rep], mode, acc, inplace)
    else:  # rows no query points to
        rep = rep[used]
        out[rep] = _row_stat(scores[used], t[rep], mode, acc, True)
    return out


def _filtered_above(
    f_rows: Tensor, f_vals: Tensor, rows_of: Tensor, t: Tensor
) -> tuple[Tensor, Tensor]:
    """Per query, filtered entries of its row with score ``> t`` and with score ``>= t``.

    Scores are replaced by their dense rank among all filtered and target
    scores (exact, any dtype), so that ``(row, descending rank)`` is one int64
    key; the filtered keys are sorted once and each query's two counts are
    two binary searches.
    """
    F = f_vals.numel()
    _, dense = unique_inverse(torch.cat([f_vals, t]))
    dense = dense.to(t.device)
    U = int(dense.max()) + 1 if dense.numel() else 1
    desc = (U - 1) - dense  # larger score -> smaller key
    f_keys = sort_values(f_rows * U + desc[:F])
    q_keys = rows_of * U + desc[F:]
    start = search_sorted(f_keys, rows_of * U)
    gt = search_sorted(f_keys, q_keys) - start
    ge = search_sorted(f_keys, q_keys, right=True) - start
    return gt.to(torch.float64), ge.to(torch.float64)


def ranks_from_scores(
    scores: Tensor,
    target: Tensor,
    *,
    group: Tensor | None = None,
    filter_rows: Tensor | None = None,
    filter_cols: Tensor | None = None,
    tie: str = "realistic",
    inplace: bool = False,
    nan_check: bool = True,
) -> Tensor:
    r"""Rank of each query's target among its candidates (see the module docstring).

    Args:
        scores: ``[G, N]`` score rows against ``N`` candidates (higher is
            better); one row per query, or one per distinct query with
            ``group``.
        target: ``[B]`` column of each query's target.
        group: ``[B]`` row of ``scores`` of each query (queries with the same
            entity and relation share a row); ``None`` means row ``i`` is
            query ``i``.
        filter_rows: Filtered setting: row ``filter_rows[i]`` of ``scores``
            must not count column ``filter_cols[i]`` (a known true answer) for
            any query of that row, except as the query's own target. Pairs
            must be unique. ``None`` for the raw setting.
        filter_cols: Columns matching ``filter_rows``.
        tie: ``"realistic"`` (mean of the two), ``"optimistic"`` or
            ``"pessimistic"``.
        inplace: Allow overwriting ``scores`` (saves a matrix allocation; the
            evaluator passes score matrices it owns).
        nan_check: Look for NaN candidate scores (one extra pass over the
            matrix with the realistic policy). Pass ``False`` only for scores
            known to be NaN-free, e.g. from finite parameters; NaN candidates
            would then count as ties under the realistic policy.

    Returns:
        ``[B]`` float64 ranks, 1 is best (realistic ranks may end in ``.5``).
    """
    check_tie(tie)
    if scores.dim() != 2 or target.dim() != 1:
        raise ValueError(f"expected scores [G, N] and target [B], got {tuple(scores.shape)} "
                         f"and {tuple(target.shape)}")
    G, N = scores.shape
    device = scores.device
    target = target.to(device)
    B = target.numel()
    if group is None:
        if B != G:
            raise ValueError(f"{B} targets for {G} score rows (pass group=)")
        rows_of = torch.arange(B, device=device)
    else:
        group = group.to(device)
        if group.numel() != B:
            raise ValueError(f"group has {group.numel()} entries for {B} targets")
        rows_of = group
    t = scores[rows_of, target]  # a copy: safe against in-place ops
    acc = torch.float32 if N < _FLOAT32_EXACT else torch.float64
    n = torch.full((B,), float(N), dtype=torch.float64, device=device)

    filtered = filter_rows is not None and filter_rows.numel() > 0
    f_rows = f_vals = in_f = m = None
    if filtered:
        if filter_cols is None:
            raise ValueError("filter_cols is required with filter_rows")
        f_rows = filter_rows.to(device)  # type: ignore[union-attr]
        f_cols = filter_cols.to(device)
        f_vals = scores[f_rows, f_cols]  # gathered before any in-place op
        # Is each query's own target among its row's filtered entries?
        keys = sort_values(f_rows * N + f_cols)
        q_keys = rows_of * N + target
        pos = search_sorted(keys, q_keys).clamp(max=keys.numel() - 1)
        in_f = (keys[pos] == q_keys).to(torch.float64)
        n -= torch.bincount(f_rows, minlength=G).to(torch.float64)[rows_of] - in_f
        ok = ~torch.isnan(f_vals)  # NaN filtered scores never count
        if not bool(ok.all()):
            f_rows, f_vals = f_rows[ok], f_vals[ok]
            in_f = in_f * (~torch.isnan(t)).to(torch.float64)
        m = torch.bincount(f_rows, minlength=G).to(torch.float64)[rows_of] - in_f

    def above() -> tuple[Tensor, Tensor]:
        # filtered entries other than the target with score > t and >= t
        assert f_rows is not None and f_vals is not None and in_f is not None
        gt_f, ge_f = _filtered_above(f_rows, f_vals, rows_of, t)
        return gt_f, ge_f - in_f

    grp = None if group is None else group
    if tie == "realistic" and nan_check and bool(torch.isnan(scores).any()):
        # Rare path: count both ways; NaN candidates compare false (below the target).
        gt = _query_stat(scores, grp, t, "gt", acc, False)
        ge = _query_stat(scores, grp, t, "ge", acc, inplace)
        if filtered:
            gt_f, ge_f = above()
            gt, ge = gt - gt_f, ge - ge_f
        rank = (gt + 1.0 + ge) / 2.0
    elif tie == "realistic":
        total = _query_stat(scores, grp, t, "sign", acc, inplace)
        if filtered:
            assert m is not None
            gt_f, ge_f = above()
            total -= gt_f - (m - ge_f)  # filtered: (#above) - (#below)
        rank = (total + n + 1.0) / 2.0
    elif tie == "optimistic":
        rank = _query_stat(scores, grp, t, "gt", acc, inplace) + 1.0
        if filtered:
            rank -= above()[0]
    else:  # ``>=`` counts the target itself (s* >= s*)
        rank = _query_stat(scores, grp, t, "ge", acc, inplace)
        if filtered:
            rank -= above()[1]
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
