"""Model adapters against PyG's own ``model(h, r, t)`` and naive per-coordinate references."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn.kge import ComplEx

from metasd_pyg.errors import ConfigError
from metasd_pyg.models import MODEL_NAMES, build_model, model_weights
from metasd_pyg.models.adapters import (
    ADAPTERS,
    ModelAdapter,
    adapter_for,
    adapter_of,
)

E, R, D, N = 11, 3, 5, 24


@pytest.fixture(params=MODEL_NAMES)
def model(request: pytest.FixtureRequest) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(request.param, E, R, D, margin=2.5).double()


def _graph(seed: int = 1) -> torch.Tensor:
    """``[N, 3]`` random triples over ``E`` entities and the ``2 R`` relation rows."""
    g = torch.Generator().manual_seed(seed)
    cols = [torch.randint(k, (N,), generator=g) for k in (E, 2 * R, E)]
    return torch.stack(cols, 1)


def _masked(model: torch.nn.Module, seed: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: p * (torch.rand(p.shape, generator=g) > 0.5) for n, p in model.named_parameters()}


def _forward(model: torch.nn.Module, weights: dict[str, torch.Tensor] | None,
             h: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """PyG's own scores, under ``weights`` through ``functional_call``."""
    if weights is None:
        out: torch.Tensor = model(h, r, t)
        return out
    out = torch.func.functional_call(model, {**model_weights(model), **weights}, (h, r, t))
    return out


def test_registry_names_classes_and_lookups() -> None:
    assert tuple(a.name for a in ADAPTERS) == MODEL_NAMES
    for adapter in ADAPTERS:
        assert isinstance(adapter, ModelAdapter)
        assert adapter_for(adapter.name) is adapter
        assert adapter_for(adapter.name.upper()) is adapter
        built = adapter.build(E, 2 * R, D)
        assert type(built) is adapter.model_class
        assert adapter_of(built) is adapter
        assert adapter_of(build_model(adapter.name, E, R, D)) is adapter
    assert [a.name for a in ADAPTERS if a.bilinear] == ["complex", "distmult"]
    assert [a.name for a in ADAPTERS if a.supports_dura] == ["complex", "distmult"]
    assert adapter_for("rotate").pruned_relation_tables == ()
    assert adapter_for("complex").pruned_relation_tables == ("rel_emb.weight",
                                                             "rel_emb_im.weight")


@pytest.mark.parametrize("weighted", [False, True])
def test_triple_scores_agree_with_pyg_forward(model: torch.nn.Module, weighted: bool) -> None:
    adapter = adapter_of(model)
    weights = _masked(model) if weighted else None
    triples = _graph()
    h, r, t = triples[:, 0], triples[:, 1], triples[:, 2]
    ref = _forward(model, weights, h, r, t)
    cand = adapter.entity_matrix(model, weights)
    assert cand.shape == (E, adapter.entity_width(model, weights))
    rows = torch.arange(N)
    tails = adapter.score(model, adapter.tail_query(model, h, r, weights), cand)
    heads = adapter.score(model, adapter.head_query(model, r, t, weights), cand)
    rels = adapter.score_relations(model, h, t, weights)
    assert rels.shape == (N, 2 * R)
    torch.testing.assert_close(tails[rows, t], ref)
    torch.testing.assert_close(heads[rows, h], ref)
    torch.testing.assert_close(rels[rows, r], ref)
    # per-query candidate blocks (the OGB protocol), the true answer in column 0
    g = torch.Generator().manual_seed(3)
    per = torch.cat([t[:, None], torch.randint(E, (N, 4), generator=g)], dim=1)
    got = adapter.candidate_scores(model, adapter.tail_query(model, h, r, weights), per, weights)
    torch.testing.assert_close(got[:, 0], ref)
    per = torch.cat([h[:, None], per[:, 1:]], dim=1)
    got = adapter.candidate_scores(model, adapter.head_query(model, r, t, weights), per, weights)
    torch.testing.assert_close(got[:, 0], ref)


def test_head_and_tail_modes_agree_with_triple_scores(model: torch.nn.Module) -> None:
    adapter = adapter_of(model)
    triples = _graph(seed=4)[:6]
    all_e = torch.arange(E)
    cand = adapter.entity_matrix(model)
    shared = torch.tensor([9, 0, 4])
    for h, r, t in triples.tolist():
        hh, rr, tt = torch.tensor([h]), torch.tensor([r]), torch.tensor([t])
        tail_q = adapter.tail_query(model, hh, rr)
        head_q = adapter.head_query(model, rr, tt)
        ref_t = model(hh.repeat(E), rr.repeat(E), all_e)
        ref_h = model(all_e, rr.repeat(E), tt.repeat(E))
        torch.testing.assert_close(adapter.score(model, tail_q, cand)[0], ref_t)
        torch.testing.assert_close(adapter.score(model, head_q, cand)[0], ref_h)
        torch.testing.assert_close(adapter.twice_differentiable_score(model, tail_q, cand)[0],
                                   ref_t)
        sub = adapter.entity_matrix(model, None, shared)
        torch.testing.assert_close(adapter.score(model, tail_q, sub)[0], ref_t[shared])
        per = adapter.entity_matrix(model, None, shared[None])
        torch.testing.assert_close(adapter.score(model, head_q, per)[0], ref_h[shared])
        torch.testing.assert_close(adapter.candidate_scores(model, head_q, shared[None])[0],
                                   ref_h[shared])


def test_squared_moduli_match_a_per_coordinate_reference(model: torch.nn.Module) -> None:
    adapter = adapter_of(model)
    weights = _masked(model, seed=5)
    batch = _graph(seed=6)[:7]
    with torch.no_grad():
        h2, r2, t2 = adapter.squared_moduli(model, batch, weights)
    complex_ent = "node_emb_im.weight" in adapter.entity_tables
    ent = weights["node_emb.weight"].tolist()
    ent_im = weights["node_emb_im.weight"].tolist() if complex_ent else None
    rel = weights["rel_emb.weight"].tolist()
    rel_im = weights["rel_emb_im.weight"].tolist() if "rel_emb_im.weight" in weights else None

    def entity(i: int, k: int) -> float:
        if ent_im is None:
            return ent[i][k] ** 2
        return abs(complex(ent[i][k], ent_im[i][k])) ** 2

    def relation(i: int, k: int) -> float:
        if rel_im is None:
            return rel[i][k] ** 2
        return abs(complex(rel[i][k], rel_im[i][k])) ** 2

    for b, (h, r, t) in enumerate(batch.tolist()):
        for k in range(D):
            assert float(h2[b, k]) == pytest.approx(entity(h, k), rel=1e-12, abs=1e-15)
            assert float(t2[b, k]) == pytest.approx(entity(t, k), rel=1e-12, abs=1e-15)
            if r2 is not None:
                assert float(r2[b, k]) == pytest.approx(relation(r, k), rel=1e-12, abs=1e-15)
    # RotatE's relations are unit-modulus rotations: nothing to penalise
    assert (r2 is None) == (adapter.name == "rotate")
    assert complex_ent == (adapter.name in ("complex", "rotate"))


def test_construction_metadata_and_restore() -> None:
    for name in MODEL_NAMES:
        adapter = adapter_for(name)
        model = adapter.build(E, 2 * R, D, margin=2.5)
        hyper = adapter.hyperparameters(model)
        assert set(hyper) == {"margin", "p_norm"}
        assert hyper["margin"] == (2.5 if name in ("rotate", "transe") else 1.0)
    transe = adapter_for("transe")
    model = transe.build(E, 2 * R, D)
    transe.restore(model, {"p_norm": 2})
    assert model.p_norm == 2.0 and transe.hyperparameters(model)["p_norm"] == 2.0
    assert transe.distance_p(model) == 2.0


def test_unsupported_classes_raise_config_error_naming_them() -> None:
    class MyComplEx(ComplEx):
        pass

    with pytest.raises(ConfigError, match="MyComplEx"):
        adapter_of(MyComplEx(E, R, D))  # exact classes only
    with pytest.raises(ConfigError, match="Linear"):
        adapter_of(torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="unknown model 'tucker'"):
        adapter_for("tucker")


def _complex_query_loop(ent: tuple[torch.Tensor, torch.Tensor], rel: tuple[torch.Tensor, ...],
                        x_ids: torch.Tensor, r_ids: torch.Tensor, conj: bool) -> torch.Tensor:
    """``[re, im]`` of x * r (x * conj(r) if ``conj``), one complex coordinate at a time."""
    rows = []
    for x, r in zip(x_ids.tolist(), r_ids.tolist()):
        re, im = [], []
        for k in range(ent[0].size(1)):
            a, b, c, d = ent[0][x, k], ent[1][x, k], rel[0][r, k], rel[1][r, k]
            if conj:
                d = -d
            re.append(a * c - b * d)
            im.append(b * c + a * d)
        rows.append(torch.stack(re + im))
    return torch.stack(rows)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("direction", ["tail", "head"])
def test_complex_queries_and_their_gradients_match_the_definition(direction: str,
                                                                  masked: bool) -> None:
    """ComplEx's closed-form query gradient (one accumulation per table) against autograd
    through the definition: repeated rows, masked (non-leaf) tables, both directions."""
    torch.manual_seed(4)
    model = build_model("complex", E, R, D).double()
    adapter = adapter_of(model)
    params = dict(model.named_parameters())
    view = _masked(model) if masked else dict(params)
    batch = _graph(5)
    h, r, t = batch[:, 0], batch[:, 1], batch[:, 2]
    ent = (view["node_emb.weight"], view["node_emb_im.weight"])
    rel = (view["rel_emb.weight"], view["rel_emb_im.weight"])
    if direction == "tail":
        got, ref = adapter.tail_query(model, h, r, view), _complex_query_loop(ent, rel, h, r, False)
    else:
        got, ref = adapter.head_query(model, r, t, view), _complex_query_loop(ent, rel, t, r, True)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    w = torch.randn(got.shape, dtype=got.dtype, generator=torch.Generator().manual_seed(6))
    leaves = list(params.values())
    g_got = torch.autograd.grad((got * w).sum(), leaves, retain_graph=True, allow_unused=True)
    g_ref = torch.autograd.grad((ref * w).sum(), leaves, allow_unused=True)
    for a, b in zip(g_got, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_complex_query_differentiates_twice_and_backs_up_twice() -> None:
    """Under ``create_graph`` (the meta step) the query's gradient is differentiable, with
    the composition's derivative; a retained graph can be backed up twice."""
    torch.manual_seed(7)
    model = build_model("complex", E, R, D).double()
    adapter = adapter_of(model)
    params = dict(model.named_parameters())
    leaves = list(params.values())
    batch = _graph(8)
    h, r = batch[:, 0], batch[:, 1]
    ent = (params["node_emb.weight"], params["node_emb_im.weight"])
    rel = (params["rel_emb.weight"], params["rel_emb_im.weight"])
    w = torch.randn(N, 2 * D, dtype=torch.float64)

    def second(q: torch.Tensor) -> list[torch.Tensor]:
        g = torch.autograd.grad(((q * w).sum()) ** 2, leaves, create_graph=True)
        return list(torch.autograd.grad(sum((x * x).sum() for x in g), leaves))

    for a, b in zip(second(adapter.tail_query(model, h, r)),
                    second(_complex_query_loop(ent, rel, h, r, False))):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    q = adapter.tail_query(model, h, r)
    first = [g.clone() for g in torch.autograd.grad((q * w).sum(), leaves, retain_graph=True)]
    for a, b in zip(first, torch.autograd.grad((q * w).sum(), leaves)):
        torch.testing.assert_close(a, b)
