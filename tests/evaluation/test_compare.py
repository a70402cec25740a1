import numpy as np
import pytest
import torch

from metasd_pyg.errors import ConfigError
from metasd_pyg.evaluation import bootstrap_mean_ci, compare, evaluate
from metasd_pyg.models import build_model
from tests.evaluation.helpers import random_graph

E, R, D = 40, 4, 6


@pytest.fixture(scope="module")
def results():
    graph = random_graph(E, R, n_train=200, n_test=60, seed=11)
    torch.manual_seed(0)
    a = evaluate(build_model("complex", E, R, D), graph, "test", label="a")
    b = evaluate(build_model("distmult", E, R, D), graph, "test", label="b")
    sub = evaluate(build_model("distmult", E, R, D), graph, "test", max_queries=20)
    quant = evaluate(build_model("distmult", E, R, D), graph, "test", bins="quantile")
    return graph, a, b, sub, quant


def test_bootstrap_equals_naive_loop():
    values = np.random.default_rng(5).normal(size=37)
    lo, hi = bootstrap_mean_ci(values, 500, np.random.default_rng(1))
    rng = np.random.default_rng(1)
    means = [values[rng.integers(0, 37, size=37)].mean() for _ in range(500)]
    ref_lo, ref_hi = np.quantile(means, [0.025, 0.975])
    assert (lo, hi) == pytest.approx((ref_lo, ref_hi), rel=1e-12)


def test_compare_table(results):
    _, a, b, _, _ = results
    table = compare(a, b, n_boot=300, seed=3)
    assert set(table.side) == {"tail", "head", "both"}
    micro = table[(table.side == "both") & (table.bucket == "micro")].iloc[0]
    assert micro.mrr_a == pytest.approx(a.summary["mrr"])
    assert micro.mrr_b == pytest.approx(b.summary["mrr"])
    assert micro.mrr_diff == pytest.approx(a.summary["mrr"] - b.summary["mrr"])
    assert micro.ci_low <= micro.mrr_diff <= micro.ci_high
    assert micro.num_queries == len(a.ranks)
    body = table[(table.side == "tail") & (table.bucket != "micro")]
    assert body.num_queries.sum() == (a.ranks.side == "tail").sum()
    pd_same = compare(a, b, n_boot=300, seed=3)
    assert table.equals(pd_same)
    assert not table.equals(compare(a, b, n_boot=300, seed=4))


def test_identical_results_have_zero_difference(results):
    _, a, _, _, _ = results
    table = compare(a, a, n_boot=50)
    nonempty = table[table.num_queries > 0]
    assert (nonempty.mrr_diff == 0).all() and (nonempty.ci_low == 0).all()
    assert not nonempty.significant.any()


def test_large_difference_is_significant(results):
    _, a, _, _, _ = results
    worse = a.__class__(label="worse", summary=a.summary, buckets=a.buckets,
                        ranks=a.ranks.assign(rank=a.ranks["rank"] * 10), config=a.config)
    table = compare(a, worse, n_boot=200)
    micro = table[(table.side == "both") & (table.bucket == "micro")].iloc[0]
    assert micro.significant and micro.ci_low > 0


def test_different_queries_are_rejected(results):
    _, a, _, sub, quant = results
    with pytest.raises(ConfigError, match="queries"):
        compare(a, sub)
    with pytest.raises(ConfigError, match="different buckets"):
        compare(a, quant)
    with pytest.raises(ConfigError, match="n_boot"):
        compare(a, a, n_boot=0)
