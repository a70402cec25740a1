import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.data.statistics import CATEGORY_NAMES
from metasd_pyg.errors import ConfigError
from metasd_pyg.evaluation import evaluate, make_scheme
from metasd_pyg.evaluation.buckets import edges_scheme, log_scheme, quantile_scheme
from metasd_pyg.models import build_model
from tests.evaluation.helpers import random_graph

E, R, D = 40, 5, 6
KS = (1, 3, 10)


@pytest.fixture(scope="module")
def graph():
    # valid/test reach entities beyond the train range: some targets are unseen (degree 0)
    g = random_graph(E, R, n_train=120, seed=7)
    g.train[:, [0, 2]] %= 30
    return g


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("complex", E, R, D)


def groupby_reference(ranks: pd.DataFrame) -> pd.DataFrame:
    df = ranks.assign(rr=1 / ranks["rank"], **{f"h{k}": (ranks["rank"] <= k) * 1.0 for k in KS})
    both = df.assign(side="both")
    agg = pd.concat([df, both]).groupby(["side", "bucket"]).agg(
        num_queries=("rank", "size"), mrr=("rr", "mean"), mr=("rank", "mean"),
        **{f"hits@{k}": (f"h{k}", "mean") for k in KS})
    return agg


@pytest.mark.parametrize("bucket_by,bins", [
    ("target", "log"), ("query", "log:2"), ("relation", "quantile"), ("target", 3),
    ("query", [0, 2, 5, 9]), ("category", "log"), (None, "log")])
def test_bucket_metrics_equal_pandas_groupby(graph, model, bucket_by, bins):
    res = evaluate(model, graph, "test", bucket_by=bucket_by, bins=bins)
    ref = groupby_reference(res.ranks)
    table = res.buckets
    body = table[~table.bucket.isin(["micro", "macro"])]
    nonempty = body[body.num_queries > 0].set_index(["side", "bucket"])
    assert set(nonempty.index) == set(ref.index)
    for col in ["num_queries", "mrr", "mr", *(f"hits@{k}" for k in KS)]:
        np.testing.assert_allclose(nonempty.loc[ref.index, col].to_numpy(dtype=float),
                                   ref[col].to_numpy(dtype=float), rtol=1e-12)
    assert (body[body.num_queries == 0].mrr.isna()).all()
    for side, group in body.groupby("side"):
        n = group.num_queries.sum()
        np.testing.assert_allclose(group.share.sum(), 1.0)
        micro = table[(table.side == side) & (table.bucket == "micro")].iloc[0]
        macro = table[(table.side == side) & (table.bucket == "macro")].iloc[0]
        sel = res.ranks if side == "both" else res.ranks[res.ranks.side == side]
        assert micro.num_queries == n == len(sel)
        np.testing.assert_allclose(micro.mrr, (1 / sel["rank"]).mean())
        np.testing.assert_allclose(macro.mrr, group[group.num_queries > 0].mrr.mean())
    np.testing.assert_allclose(res.summary["mrr"],
                               table[(table.side == "both") & (table.bucket == "micro")].mrr)
    assert set(table.columns) >= {"model", "side", "bucket_by", "bucket", "lower", "upper",
                                  "num_queries", "share", "mrr", "mr", "hits@1", "hits@10"}
    assert res.config["bins"]["scheme"] == {"category": "category", None: "all"}.get(
        bucket_by, {"log": "log", "log:2": "log", "quantile": "quantile", 3: "quantile"}.get(
            bins if not isinstance(bins, list) else None, "edges"))


def test_bucket_values_are_train_degrees(graph, model):
    res = evaluate(model, graph, "test", bucket_by="target")
    deg = graph.stats.degree
    r = res.ranks
    scheme = res.scheme
    for row in r.itertuples():
        d = int(deg[row.target])
        i = scheme.labels.index(row.bucket)
        assert scheme.lowers[i] <= d < scheme.uppers[i]
    assert "0" in set(r.bucket)  # unseen targets have a bucket of their own
    assert (deg[torch.tensor(r[r.bucket == "0"].target.to_numpy())] == 0).all()
    cat = evaluate(model, graph, "test", bucket_by="category").ranks
    codes = graph.stats.relation_category[torch.tensor(cat.relation.to_numpy())]
    assert cat.bucket.tolist() == [CATEGORY_NAMES[c] for c in codes.tolist()]


def test_log_scheme_edges_and_labels():
    s = log_scheme(100)
    assert s.lowers == (0, 1, 4, 16, 64)
    assert s.labels == ("0", "1-3", "4-15", "16-63", "64+")
    assert s.uppers[-1] == math.inf
    assert s.assign(np.array([0, 1, 3, 4, 15, 16, 63, 64, 10**6])).tolist() == \
        [0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert log_scheme(0).labels == ("0", "1+")
    assert log_scheme(1000, base=10).labels == ("0", "1-9", "10-99", "100-999", "1000+")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=200), st.integers(1, 6))
def test_quantile_scheme_covers_values_in_order(values, q):
    v = np.array(values)
    s = quantile_scheme(v, q)
    idx = s.assign(v)
    assert idx.min() >= 0 and idx.max() < len(s.labels) <= q
    assert s.lowers[0] == v.min()
    # monotone: larger values never land in an earlier bucket
    order = np.argsort(v, kind="stable")
    assert (np.diff(idx[order]) >= 0).all()
    # distinct values: equal counts up to rounding
    if len(set(values)) == len(values) and len(values) >= q:
        counts = np.bincount(idx)
        assert counts.max() - counts.min() <= 1


def test_user_edges_and_errors():
    s = edges_scheme([0, 10, 100])
    assert s.labels == ("0-9", "10-99", "100+")
    with pytest.raises(ConfigError, match="below the first bin edge"):
        edges_scheme([5, 10]).assign(np.array([1, 7]))
    with pytest.raises(ConfigError, match="increasing"):
        edges_scheme([3, 1])
    with pytest.raises(ConfigError, match="bins"):
        make_scheme("target", "linear", np.array([1]))
    with pytest.raises(ConfigError, match="bucket_by"):
        evaluate(build_model("distmult", 5, 1, 2), random_graph(5, 1, 10, 2, 2), "test",
                 bucket_by="entity")
