import numpy as np
import pytest
import torch
from ogb.linkproppred import Evaluator

from metasd_pyg.data import KnowledgeGraph
from metasd_pyg.evaluation import RankingEvaluator, candidate_ranks, evaluate, rank_metrics
from metasd_pyg.models import MODEL_NAMES, build_model
from tests.evaluation.helpers import masked_twin, random_graph

E, R, D, C = 60, 5, 8, 12


@pytest.fixture(scope="module")
def ogb_evaluator():
    return Evaluator("ogbl-wikikg2")


def ogb_metrics(ogb_evaluator, pos, neg):
    out = ogb_evaluator.eval({"y_pred_pos": pos, "y_pred_neg": neg})  # torch path
    return {k.removesuffix("_list"): v for k, v in out.items()}


@pytest.mark.parametrize("seed", range(5))
def test_random_scores_with_ties_equal_ogb(ogb_evaluator, seed):
    g = torch.Generator().manual_seed(seed)
    n = 300
    pos = torch.randint(0, 6, (n,), generator=g).float()  # coarse: many ties
    neg = torch.randint(0, 6, (n, C), generator=g).float()
    if seed % 2:
        pos, neg = torch.rand(n, generator=g), torch.rand(n, C, generator=g)
    ranks = candidate_ranks(pos, neg)
    ref = ogb_metrics(ogb_evaluator, pos, neg)
    torch.testing.assert_close((1 / ranks).float(), ref["mrr"])
    ours = rank_metrics(ranks)
    for key in ("mrr", "hits@1", "hits@3", "hits@10"):
        assert ours[key] == pytest.approx(float(ref[key].mean()), rel=1e-6)


def graph_with_candidates(seed=0):
    base = random_graph(E, R, n_train=300, n_valid=15, n_test=40, seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    cands = {s: {"head_neg": torch.randint(0, E, (len(base.split(s)), C), generator=g),
                 "tail_neg": torch.randint(0, E, (len(base.split(s)), C), generator=g)}
             for s in ("valid", "test")}
    return KnowledgeGraph("toy-ogb", base.train, base.valid, base.test, E, R, candidates=cands)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("reciprocal", [True, False])
def test_ogb_protocol_equals_ogb_evaluator(ogb_evaluator, name, reciprocal):
    graph = graph_with_candidates()
    torch.manual_seed(0)
    model = build_model(name, E, R, D, reciprocal=reciprocal)
    res = evaluate(model, graph, "test", reciprocal=reciprocal, batch_size=7)
    assert res.summary["protocol"] == "ogb" and res.summary["filtered"] is False
    test = graph.test
    h, r, t = test[:, 0], test[:, 1], test[:, 2]
    with torch.no_grad():
        tn, hn = graph.tail_neg("test"), graph.head_neg("test")
        ex = lambda x: x[:, None].expand(-1, C)  # noqa: E731
        tail_pos = model(h, r, t)
        tail_neg = model(ex(h).reshape(-1), ex(r).reshape(-1), tn.reshape(-1)).view(-1, C)
        if reciprocal:
            head_pos = model(t, r + R, h)
            head_neg = model(ex(t).reshape(-1), ex(r + R).reshape(-1), hn.reshape(-1)).view(-1, C)
        else:
            head_pos = tail_pos
            head_neg = model(hn.reshape(-1), ex(r).reshape(-1), ex(t).reshape(-1)).view(-1, C)
    for side, pos, neg in (("tail", tail_pos, tail_neg), ("head", head_pos, head_neg)):
        ref = ogb_metrics(ogb_evaluator, pos, neg)
        got = res.ranks.loc[res.ranks.side == side, "rank"].to_numpy()
        np.testing.assert_allclose(1 / got, ref["mrr"].numpy(), rtol=1e-6)
        for key in ("mrr", "hits@1", "hits@3", "hits@10"):
            assert res.summary[side][key] == pytest.approx(float(ref[key].mean()), rel=1e-6)
    # buckets work in this protocol too
    table = res.buckets
    body = table[(table.side == "both") & ~table.bucket.isin(["micro", "macro"])]
    assert body.num_queries.sum() == 2 * len(test)


def test_ogb_chunk_size_invariance_and_streaming():
    graph = graph_with_candidates(seed=3)
    torch.manual_seed(1)
    model = build_model("complex", E, R, D)
    a = evaluate(model, graph, "test", batch_size=1)
    b = evaluate(model, graph, "test", memory_budget_mb=1000)
    assert a.ranks.equals(b.ranks) and a.summary == b.summary
    # the streaming evaluator fed with OGB-style scores gives the same result
    ev = RankingEvaluator(graph, protocol="ogb", label="complex", split="test")
    test = graph.test
    with torch.no_grad():
        for side in ("tail", "head"):
            q, tgt = (test[:, 0], test[:, 2]) if side == "tail" else (test[:, 2], test[:, 0])
            rel = test[:, 1] if side == "tail" else test[:, 1] + R
            neg = graph.candidates["test"][f"{side}_neg"]
            pos_s = model(q, rel, tgt)
            neg_s = model(q[:, None].expand(-1, C).reshape(-1), rel[:, None].expand(-1, C)
                          .reshape(-1), neg.reshape(-1)).view(-1, C)
            ev.update_candidates(pos_s, neg_s, test, side=side)
    res = ev.compute()
    np.testing.assert_allclose(res.ranks["rank"], a.ranks["rank"])
    assert res.summary["protocol"] == "ogb"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_ogb_masked_weights_score_queries_and_candidates(name):
    graph = graph_with_candidates(seed=5)
    torch.manual_seed(2)
    model = build_model(name, E, R, D)
    masked, twin = masked_twin(model, seed=1, drop=0.4)
    got = evaluate(model, graph, "test", weights=masked, batch_size=5)
    ref = evaluate(twin, graph, "test", batch_size=5)
    np.testing.assert_allclose(got.ranks["rank"], ref.ranks["rank"])
    assert not np.allclose(evaluate(model, graph, "test").ranks["rank"], ref.ranks["rank"])
