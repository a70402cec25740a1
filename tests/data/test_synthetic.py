"""The synthetic generator: determinism, heavy tail, categories, split, spec parsing."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.data import SPLITS, generate_synthetic, load_dataset
from metasd_pyg.data.synthetic import parse_synthetic_spec
from metasd_pyg.errors import ConfigError


@pytest.fixture(scope="module")
def default_graph():
    return load_dataset("synthetic")


def test_default_graph_shape(default_graph):
    g = default_graph
    assert g.name == "synthetic"
    assert (g.num_entities, g.num_relations) == (2000, 20)
    assert len(g.train) + len(g.valid) + len(g.test) == 30000
    assert len(g.valid) > 1000 and len(g.test) > 1000


def test_deterministic_per_seed():
    a = generate_synthetic(400, 6, 3000, seed=7)
    b = generate_synthetic(400, 6, 3000, seed=7)
    c = generate_synthetic(400, 6, 3000, seed=8)
    assert all(torch.equal(a.split(s), b.split(s)) for s in SPLITS)
    assert not torch.equal(a.train, c.train)


def test_no_duplicates_no_self_loops_and_seen_entities(default_graph):
    g = default_graph
    allt = torch.cat([g.split(s) for s in SPLITS])
    E, R = g.num_entities, g.num_relations
    key = (allt[:, 0] * R + allt[:, 1]) * E + allt[:, 2]
    assert torch.unique(key).numel() == len(allt)
    assert bool((allt[:, 0] != allt[:, 2]).all())
    assert g.stats.unseen == {"valid": 0, "test": 0}


def test_degree_distribution_is_heavy_tailed(default_graph):
    deg = default_graph.stats.degree.double()
    top = deg.sort(descending=True).values
    assert top[0] > 15 * deg.median()  # hubs far above the typical entity
    assert top[: len(top) // 100].sum() / top.sum() > 0.10  # top 1% hold > 10% of the ends
    # Tail of the complementary CDF decays like a power law: P(D >= k) * k^1.2 stays
    # of the same order from k = 2*median to k = 20*median (a Poisson graph would vanish).
    m = float(deg.median())
    ccdf = [float((deg >= k).double().mean()) for k in (2 * m, 20 * m)]
    assert ccdf[1] > 0 and ccdf[1] / ccdf[0] > 10 ** -1.6
    # Relation frequencies differ by more than an order of magnitude.
    freq = default_graph.stats.relation_frequency.double()
    assert freq.max() > 10 * freq.min()


def test_all_four_categories_present(default_graph):
    cats = torch.bincount(default_graph.stats.relation_category, minlength=4)
    assert bool((cats > 0).all()), cats


@settings(max_examples=15, deadline=None)
@given(st.integers(20, 300), st.integers(1, 8), st.integers(30, 1500), st.integers(0, 10**6))
def test_small_graphs_are_valid(E, R, N, seed):
    N = min(N, E * 3)
    g = generate_synthetic(E, R, N, seed=seed, num_clusters=min(4, E))
    assert len(g.train) + len(g.valid) + len(g.test) == N
    for s in SPLITS:
        t = g.split(s)
        if t.numel():
            assert int(t[:, [0, 2]].max()) < E and int(t[:, 1].max()) < R
    assert g.stats.unseen == {"valid": 0, "test": 0}


def test_spec_parsing_and_errors():
    spec = parse_synthetic_spec("synthetic:entities=5000,triples=60_000,relations=20,seed=1")
    assert (spec.entities, spec.triples, spec.relations, spec.seed) == (5000, 60000, 20, 1)
    g = load_dataset("synthetic:entities=300,triples=2000,relations=5,seed=3")
    assert g.name == "synthetic:entities=300,relations=5,triples=2000,seed=3"
    assert g.num_entities == 300 and len(g.train) + len(g.valid) + len(g.test) == 2000
    with pytest.raises(ConfigError, match=r"unknown item 'nodes=5'.*entities"):
        load_dataset("synthetic:nodes=5")
    with pytest.raises(ConfigError, match=r"entities='many' is not a valid int"):
        load_dataset("synthetic:entities=many")
    with pytest.raises(ConfigError, match="cannot generate"):
        generate_synthetic(5, 1, 1000)
    with pytest.raises(ConfigError, match="degree_exponent"):
        generate_synthetic(100, 2, 500, degree_exponent=1.5)


def test_sizes_that_need_terabytes_are_refused_before_allocating() -> None:
    """Checked by removing the check once: a 8 TB allocation failed inside torch."""
    import time

    from metasd_pyg.data.synthetic import synthetic_bytes

    assert synthetic_bytes(2_500_604, 17_137_181) / 1e9 == pytest.approx(4.4, abs=0.1)
    t = time.perf_counter()
    for entities, triples in ((10**12, 2000), (300, 10**11)):
        with pytest.raises(ConfigError, match=r"needs about [\d,.]+ GB to generate; this "
                                              r"machine has [\d,.]+ GB"):
            generate_synthetic(entities, 5, triples)
    assert time.perf_counter() - t < 1.0  # refused, not attempted
