import pytest
import torch

from metasd_pyg.models import (
    MODEL_NAMES,
    build_model,
    model_weights,
    score_heads,
    score_relations,
    score_tails,
    score_triples,
)

E, R, D = 13, 4, 6


@pytest.fixture(params=MODEL_NAMES)
def model(request):
    torch.manual_seed(0)
    return build_model(request.param, E, R, D, reciprocal=False)


def test_sp_and_po_agree_with_triple_scoring(model):
    h = torch.tensor([0, 3, 7, 12])
    r = torch.tensor([1, 0, 3, 2])
    all_e = torch.arange(E)
    tails = score_tails(model, h, r)
    heads = score_heads(model, r, h)
    assert tails.shape == (4, E)
    for i in range(4):
        ref_t = model(h[i].repeat(E), r[i].repeat(E), all_e)
        ref_h = model(all_e, r[i].repeat(E), h[i].repeat(E))
        torch.testing.assert_close(tails[i], ref_t, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(heads[i], ref_h, atol=1e-4, rtol=1e-4)


def test_relation_scoring_agrees(model):
    h = torch.tensor([0, 5])
    t = torch.tensor([2, 9])
    s = score_relations(model, h, t)
    for i in range(2):
        ref = model(h[i].repeat(R), torch.arange(R), t[i].repeat(R))
        torch.testing.assert_close(s[i], ref, atol=1e-4, rtol=1e-4)


def test_candidates_shared_and_per_query(model):
    h = torch.tensor([1, 2, 3])
    r = torch.tensor([0, 1, 2])
    full = score_tails(model, h, r)
    shared = torch.tensor([4, 0, 11])
    torch.testing.assert_close(score_tails(model, h, r, candidates=shared), full[:, shared],
                               atol=1e-4, rtol=1e-4)
    per = torch.tensor([[1, 2], [3, 4], [5, 6]])
    torch.testing.assert_close(score_heads(model, r, h, candidates=per),
                               score_heads(model, r, h).gather(1, per), atol=1e-4, rtol=1e-4)


def test_weights_override_is_a_masked_view(model):
    w = model_weights(model)
    masked = {k: v * (torch.rand_like(v) > 0.5) for k, v in w.items()}
    h, r, t = torch.tensor([1, 2]), torch.tensor([0, 3]), torch.tensor([5, 6])
    full = score_tails(model, h, r, weights=masked)
    torch.testing.assert_close(full.gather(1, t[:, None]).squeeze(1),
                               score_triples(model, h, r, t, weights=masked), atol=1e-4, rtol=1e-4)
    # the model's own parameters are untouched
    for k, v in model.named_parameters():
        assert v is w[k]
