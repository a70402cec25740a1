import json

import numpy as np
import pytest
import torch

from metasd_pyg.errors import ConfigError
from metasd_pyg.evaluation import RankingEvaluator, evaluate
from metasd_pyg.models import MODEL_NAMES, build_model, score_tails
from tests.evaluation.helpers import brute_rank, known_triples, masked_twin, random_graph

E, R, D = 30, 4, 6


@pytest.fixture(scope="module")
def graph():
    return random_graph(E, R)


def reference_ranks(model, graph, split, *, reciprocal, filtered, tie):
    """Ranks with Python loops over queries and candidates, scored by model(h, r, t)."""
    known = known_triples(graph)
    out = {"tail": [], "head": []}
    all_e = torch.arange(graph.num_entities)
    with torch.no_grad():
        for h, r, t in graph.split(split).tolist():
            tail_scores = model(torch.full_like(all_e, h), torch.full_like(all_e, r), all_e)
            if reciprocal:
                head_scores = model(torch.full_like(all_e, t), torch.full_like(all_e, r + R),
                                    all_e)
            else:
                head_scores = model(all_e, torch.full_like(all_e, r), torch.full_like(all_e, t))
            ex_t = {e for e in range(E) if (h, r, e) in known} if filtered else set()
            ex_h = {e for e in range(E) if (e, r, t) in known} if filtered else set()
            out["tail"].append(brute_rank(tail_scores, t, ex_t, tie))
            out["head"].append(brute_rank(head_scores, h, ex_h, tie))
    return out


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("reciprocal", [True, False])
def test_all_models_match_loop_reference(graph, name, reciprocal):
    torch.manual_seed(1)
    model = build_model(name, E, R, D, reciprocal=reciprocal)
    for filtered, tie in ((True, "realistic"), (False, "pessimistic")):
        res = evaluate(model, graph, "test", reciprocal=reciprocal, filtered=filtered, tie=tie)
        ref = reference_ranks(model, graph, "test", reciprocal=reciprocal, filtered=filtered,
                              tie=tie)
        ranks = res.ranks
        for side in ("tail", "head"):
            got = ranks.loc[ranks.side == side, "rank"].to_numpy()
            np.testing.assert_allclose(got, ref[side], atol=1e-12)
        assert res.summary["filtered"] is filtered and res.summary["tie"] == tie
        assert res.summary["num_queries"] == 2 * len(graph.test)
        np.testing.assert_allclose(res.summary["mrr"], np.mean(1 / ranks["rank"]))


def test_ties_from_a_degenerate_model(graph):
    model = build_model("distmult", E, R, D)
    with torch.no_grad():
        model.node_emb.weight[::2] = 0.0  # half the entities score exactly 0: many ties
    by_tie = {tie: evaluate(model, graph, "test", tie=tie).ranks["rank"].to_numpy()
              for tie in ("optimistic", "pessimistic", "realistic")}
    assert (by_tie["optimistic"] < by_tie["pessimistic"]).any()
    np.testing.assert_allclose(by_tie["realistic"],
                               (by_tie["optimistic"] + by_tie["pessimistic"]) / 2)
    ref = reference_ranks(model, graph, "test", reciprocal=True, filtered=True, tie="optimistic")
    np.testing.assert_allclose(by_tie["optimistic"], ref["tail"] + ref["head"])


@pytest.mark.parametrize("name", ["complex", "transe"])
def test_chunk_size_invariance(graph, name):
    torch.manual_seed(2)
    model = build_model(name, E, R, D)
    base = evaluate(model, graph, "test")
    for kwargs in ({"batch_size": 1}, {"batch_size": 7}, {"batch_size": 1000},
                   {"memory_budget_mb": 1e-4}):
        other = evaluate(model, graph, "test", **kwargs)
        assert other.ranks.equals(base.ranks)
        assert other.summary == base.summary
    assert evaluate(model, graph, "test", memory_budget_mb=1e-4).config["chunk_size"] == 1


def test_reciprocal_and_direct_agree_for_conjugate_inverse_rows(graph):
    """ComplEx: (t, conj(r), h) scores like (h, r, t), so both head modes must agree."""
    torch.manual_seed(3)
    model = build_model("complex", E, R, D, reciprocal=True)
    with torch.no_grad():
        model.rel_emb.weight[R:] = model.rel_emb.weight[:R]
        model.rel_emb_im.weight[R:] = -model.rel_emb_im.weight[:R]
    rec = evaluate(model, graph, "test", reciprocal=True, sides="head")
    direct = evaluate(model, graph, "test", reciprocal=False, sides="head")
    np.testing.assert_array_equal(rec.ranks["rank"], direct.ranks["rank"])
    assert rec.summary["head"] == direct.summary["head"]
    # ...and they differ once the inverse rows are independent.
    with torch.no_grad():
        model.rel_emb.weight[R:] = torch.randn(R, D)
    assert not np.array_equal(evaluate(model, graph, "test", sides="head").ranks["rank"],
                              direct.ranks["rank"])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_masked_weights_evaluate_the_masked_model(graph, name):
    torch.manual_seed(4)
    model = build_model(name, E, R, D)
    masked, copy_model = masked_twin(model, seed=0, drop=0.5)
    got = evaluate(model, graph, "test", weights=masked)
    ref = evaluate(copy_model, graph, "test")
    assert got.ranks.equals(ref.ranks)
    assert got.config["masked"] and not ref.config["masked"]
    assert not evaluate(model, graph, "test").ranks.equals(ref.ranks)
    # the entity table alone masked changes the candidates of both sides
    only_entities = {"node_emb.weight": masked["node_emb.weight"]}
    a = evaluate(model, graph, "test", weights=only_entities)
    assert not a.ranks.equals(evaluate(model, graph, "test").ranks)


def test_max_queries_is_a_fixed_subset(graph):
    model = build_model("distmult", E, R, D)
    a = evaluate(model, graph, "test", max_queries=10)
    b = evaluate(model, graph, "test", max_queries=10)
    full = evaluate(model, graph, "test")
    assert a.summary["num_queries"] == 20 and a.ranks.equals(b.ranks)
    idx = a.ranks.loc[a.ranks.side == "tail", "triple"].to_numpy()
    assert len(set(idx)) == 10 and (np.diff(idx) > 0).all()
    merged = a.ranks.merge(full.ranks, on=["side", "triple"], suffixes=("", "_full"))
    np.testing.assert_array_equal(merged["rank"], merged["rank_full"])


def test_streaming_evaluator_matches_evaluate(graph):
    torch.manual_seed(5)
    model = build_model("complex", E, R, D)
    test = graph.test
    ev = RankingEvaluator(graph, label="complex", split="test")
    with torch.no_grad():
        for part in test.split(4):
            ev.update(score_tails(model, part[:, 0], part[:, 1]), part, side="tail")
        for part in test.split(9):
            ev.update(score_tails(model, part[:, 2], part[:, 1] + R), part, side="head")
    assert ev.num_queries == 2 * len(test)
    res = ev.compute()
    ref = evaluate(model, graph, "test")
    assert res.summary == ref.summary
    assert res.buckets.equals(ref.buckets)
    ev.reset()
    assert ev.num_queries == 0


def test_result_is_json_serialisable_and_round_trips(graph):
    model = build_model("rotate", E, R, D)
    res = evaluate(model, graph, "valid", ks=(1, 5))
    assert {"mrr", "mr", "hits@1", "hits@5", "num_queries", "tie", "filtered", "protocol",
            "tail", "head"} <= set(res.summary)
    assert set(res.summary["tail"]) == {"mrr", "mr", "hits@1", "hits@5", "num_queries"}
    text = json.dumps(res.to_dict(include_ranks=True), allow_nan=False)
    from metasd_pyg.evaluation import EvaluationResult

    back = EvaluationResult.from_dict(json.loads(text))
    assert back.summary == res.summary and back.label == "rotate"
    np.testing.assert_array_equal(back.ranks["rank"], res.ranks["rank"])
    assert back.scheme == res.scheme
    pd_cols = ["side", "bucket", "lower", "upper", "num_queries"]
    assert back.buckets[pd_cols].equals(res.buckets[pd_cols])
    np.testing.assert_allclose(back.buckets["mrr"].to_numpy(dtype=float),
                               res.buckets["mrr"].to_numpy(dtype=float))


def test_user_errors_are_config_errors(graph):
    direct = build_model("distmult", E, R, D, reciprocal=False)
    with pytest.raises(ConfigError, match="reciprocal=False"):
        evaluate(direct, graph, "test")
    with pytest.raises(ConfigError, match="entities"):
        evaluate(build_model("distmult", E + 1, R, D), graph, "test")
    with pytest.raises(ConfigError, match="sides"):
        evaluate(direct, graph, "test", reciprocal=False, sides="left")
    with pytest.raises(ConfigError, match="protocol 'ogb'"):
        evaluate(direct, graph, "test", reciprocal=False, protocol="ogb")
    with pytest.raises(ConfigError, match="bins"):
        evaluate(direct, graph, "test", reciprocal=False, bins="linear")


def test_streaming_with_grouped_rows_and_ready_ranks(graph):
    torch.manual_seed(6)
    model = build_model("distmult", E, R, D)
    test = graph.test
    ref = evaluate(model, graph, "test", sides="tail", bucket_by=None)
    key, group = torch.unique(test[:, 0] * R + test[:, 1], return_inverse=True)
    ev = RankingEvaluator(graph, split="test", label="distmult")
    with torch.no_grad():
        ranks = ev.update(score_tails(model, key // R, key % R), test, side="tail", group=group)
    np.testing.assert_array_equal(ranks.numpy(), ref.ranks["rank"].to_numpy())
    with pytest.raises(ValueError, match="every score row"):
        ev.update(torch.zeros(len(key) + 1, E), test, side="tail", group=group)
    ev2 = RankingEvaluator(graph, split="test", label="distmult")
    ev2.update_ranks(ranks, test, side="tail")
    assert ev2.compute(bucket_by=None).summary == ev.compute(bucket_by=None).summary
    with pytest.raises(ConfigError, match="filtered ranking needs the graph"):
        RankingEvaluator(None)
    raw = RankingEvaluator(None, filtered=False)
    raw.update_ranks(ranks, test)
    assert raw.compute(bucket_by=None).summary["num_queries"] == len(test)
    with pytest.raises(ConfigError, match="train statistics"):
        raw.compute()


def test_progress_bar_and_forced_full_protocol(graph, capsys):
    model = build_model("transe", E, R, D)
    res = evaluate(model, graph, "valid", progress=True, protocol="full", tie="optimistic")
    assert res.summary["protocol"] == "full" and res.config["split"] == "valid"
    assert "eval valid" in capsys.readouterr().err
