import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.errors import ConfigError
from metasd_pyg.evaluation import TIE_POLICIES, candidate_ranks, ranks_from_scores
from tests.evaluation.helpers import brute_rank


@st.composite
def score_problems(draw):
    """Small score matrices with many ties, targets and unique filter pairs."""
    G = draw(st.integers(1, 5))
    N = draw(st.integers(1, 9))
    values = st.sampled_from([0.0, 1.0, 2.0, 2.5, -1.0, -math.inf, math.inf, math.nan])
    scores = torch.tensor(draw(st.lists(st.lists(values, min_size=N, max_size=N),
                                        min_size=G, max_size=G)), dtype=torch.float32)
    grouped = draw(st.booleans())
    B = draw(st.integers(1, 8)) if grouped else G
    group = torch.tensor(draw(st.lists(st.integers(0, G - 1), min_size=B, max_size=B))) \
        if grouped else None
    target = torch.tensor(draw(st.lists(st.integers(0, N - 1), min_size=B, max_size=B)))
    pairs = draw(st.sets(st.tuples(st.integers(0, G - 1), st.integers(0, N - 1)), max_size=G * N))
    pairs = sorted(pairs)
    rows = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    cols = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    return scores, group, target, rows, cols


@settings(max_examples=150, deadline=None)
@given(score_problems(), st.sampled_from(TIE_POLICIES), st.booleans(), st.booleans())
def test_ranks_equal_brute_force(problem, tie, filtered, inplace):
    scores, group, target, rows, cols = problem
    ref = []
    for i in range(target.numel()):
        row = i if group is None else int(group[i])
        excluded = {int(c) for r, c in zip(rows, cols) if int(r) == row} if filtered else set()
        ref.append(brute_rank(scores[row], int(target[i]), excluded, tie))
    nan_check = bool(torch.isnan(scores).any()) or inplace  # False only for NaN-free scores
    got = ranks_from_scores(scores.clone(), target, group=group,
                            filter_rows=rows if filtered else None,
                            filter_cols=cols if filtered else None, tie=tie, inplace=inplace,
                            nan_check=nan_check)
    assert got.dtype == torch.float64
    assert got.tolist() == ref


@pytest.mark.parametrize("tie", TIE_POLICIES)
def test_nan_scores(tie):
    scores = torch.tensor([[1.0, float("nan"), 2.0, 0.0],
                           [float("nan"), 1.0, 2.0, 3.0]])
    target = torch.tensor([0, 0])
    got = ranks_from_scores(scores, target, tie=tie)
    # NaN candidate counts below; NaN target gets the worst rank (4 candidates).
    assert got.tolist() == [2.0, 4.0]
    got = ranks_from_scores(scores, target, tie=tie, filter_rows=torch.tensor([1]),
                            filter_cols=torch.tensor([3]))
    assert got.tolist() == [2.0, 3.0]


def test_not_inplace_keeps_scores():
    scores = torch.randn(3, 5)
    before = scores.clone()
    for tie in TIE_POLICIES:
        ranks_from_scores(scores, torch.tensor([0, 1, 2]), tie=tie)
    assert torch.equal(scores, before)


def test_unknown_tie_is_config_error():
    with pytest.raises(ConfigError, match="tie"):
        ranks_from_scores(torch.zeros(1, 2), torch.tensor([0]), tie="average")


def test_candidate_ranks_counts_negatives_only():
    pos = torch.tensor([1.0, 1.0, 5.0])
    neg = torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    assert candidate_ranks(pos, neg, tie="optimistic").tolist() == [2, 1, 1]
    assert candidate_ranks(pos, neg, tie="pessimistic").tolist() == [3, 4, 1]
    assert candidate_ranks(pos, neg).tolist() == [2.5, 2.5, 1]
