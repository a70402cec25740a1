r"""Synthetic long-tailed knowledge graphs with learnable planted structure.

The generator (written for this project) mimics what makes real KGs hard for
compressed embeddings (Li et al. 2022, https://aclanthology.org/2022.findings-emnlp.149/):
a heavy-tailed entity degree distribution, relations of very different
frequency, and all four relation categories of Bordes et al. (2013).

Model, all vectorised with one seeded ``torch.Generator``:

* **Popularity.** Entity :math:`e` gets a Pareto weight
  :math:`w_e = u_e^{-1/(\gamma-1)}`, :math:`u_e \sim U(0,1)`, capped at
  :math:`E^{1/(\gamma-1)}`. Entities are drawn proportionally to :math:`w`
  (a Chung-Lu style model), so degrees follow a power law with exponent
  :math:`\approx\gamma` and every entity keeps a positive expected degree.
* **Latent clusters.** Entities are split into :math:`K` balanced clusters
  (default :math:`K \approx \sqrt{E}/2`); within a cluster, entities are
  ranked by weight. Every entity also has a latent attribute
  :math:`a_e \in \{0, \dots, 5\}` shared by all relations.
* **Relations.** Frequencies follow Zipf's law, :math:`p_r \propto
  \mathrm{rank}^{-s}`. Relation :math:`r` has a domain (a set of
  :math:`d_r` clusters, grown with its frequency) and a cluster map
  :math:`\pi_r` (a random permutation of the clusters): the tail of a head
  in cluster :math:`c` lies in cluster :math:`\pi_r(c)`. Its category
  decides how heads and tails are paired (:math:`\mathrm{hub}_j(k)` is the
  :math:`j`-th most popular entity of cluster :math:`k`, :math:`m_r\in\{1,2,3\}`):

  - ``1-1``: :math:`t` is the entity of the same within-cluster rank as
    :math:`h` in :math:`\pi_r(c_h)` (an injective map);
  - ``N-1``: :math:`t = \mathrm{hub}_{a_h \bmod m_r}(\pi_r(c_h))`;
  - ``1-N``: :math:`t` is drawn by popularity in :math:`\pi_r(c)`, and
    :math:`h = \mathrm{hub}_{a_t \bmod m_r}(c)`;
  - ``N-N``: both drawn by popularity among the top-:math:`q_r` entities of
    :math:`c` and :math:`\pi_r(c)` (:math:`q_r` sized so that heads and tails
    repeat).

  Categories are drawn with probabilities ``category_weights`` (every one of
  the four is used when there are at least four relations).
* **Split.** Distinct triples (self-loops and duplicates removed) are shuffled
  into train / valid / test; a valid/test triple whose head or tail does not
  occur in train is moved to train, so valid/test use only seen entities.

A 1-N ComplEx learns the cluster maps, hubs and popularity, so its filtered
MRR is far above the random :math:`\approx \ln(E)/E` (see
``datasets/synthetic.md`` for measured values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from metasd_pyg.data.build import drop_duplicates
from metasd_pyg.data.graph import KnowledgeGraph
from metasd_pyg.errors import ConfigError
from metasd_pyg.system import physical_memory_bytes

#: Default size of the built-in ``synthetic`` graph (the README's main job).
DEFAULT_ENTITIES = 2000
DEFAULT_RELATIONS = 20
DEFAULT_TRIPLES = 30000


@dataclass(frozen=True)
class _Clusters:
    cluster: Tensor  # [E] cluster of each entity
    members: Tensor  # [E] entities sorted by (cluster, weight desc)
    rank: Tensor  # [E] rank of each entity inside its cluster (0 = most popular)
    start: Tensor  # [K] first index of each cluster in members
    size: Tensor  # [K]
    cum: Tensor  # [E] cumulative weight along members (float64)
    lo: Tensor  # [K] cumulative weight before each cluster


def _clusters(weight: Tensor, K: int, gen: torch.Generator) -> _Clusters:
    E = weight.numel()
    perm = torch.randperm(E, generator=gen)
    cluster = torch.empty(E, dtype=torch.long)
    cluster[perm] = torch.arange(E) % K
    by_weight = torch.argsort(weight, descending=True, stable=True)
    members = by_weight[torch.argsort(cluster[by_weight], stable=True)]
    size = torch.bincount(cluster, minlength=K)
    start = torch.cumsum(size, 0) - size
    rank = torch.empty(E, dtype=torch.long)
    rank[members] = torch.arange(E) - start[cluster[members]]
    cum = torch.cumsum(weight[members], 0)
    lo = torch.where(start > 0, cum[(start - 1).clamp(min=0)], torch.zeros_like(cum[:K]))
    return _Clusters(cluster, members, rank, start, size, cum, lo)


def _draw(cl: _Clusters, k: Tensor, top: Tensor, gen: torch.Generator) -> Tensor:
    """One entity per row: drawn by weight among the ``top`` most popular of cluster ``k``."""
    first = cl.start[k]
    last = first + torch.minimum(top, cl.size[k]) - 1
    mass = cl.cum[last] - cl.lo[k]
    x = cl.lo[k] + torch.rand(k.numel(), generator=gen, dtype=torch.float64) * mass
    pos = torch.searchsorted(cl.cum, x, right=True)
    pos = torch.minimum(torch.maximum(pos, first), last)
    return cl.members[pos]


def _relation_tables(
    E: int, R: int, K: int, N: int, relation_exponent: float,
    category_weights: tuple[float, float, float, float], gen: torch.Generator,
) -> dict[str, Tensor]:
    S = E / K
    order = torch.randperm(R, generator=gen)
    p = torch.empty(R, dtype=torch.float64)
    p[order] = (torch.arange(R, dtype=torch.float64) + 1) ** (-relation_exponent)
    p /= p.sum()
    cw = torch.tensor(category_weights, dtype=torch.float64)
    if (cw < 0).any() or cw.sum() <= 0:
        raise ConfigError(f"category_weights must be >= 0 with a positive sum, got {cw.tolist()}")
    cat = torch.multinomial(cw, R, replacement=True, generator=gen)
    cat[order[0]] = 3  # the most frequent relation is N-N (the only unbounded category)
    n = p * N
    if R >= 4:  # all four categories present: pin 1-1, 1-N, N-1 at spread frequency ranks
        used = order[torch.linspace(1, R - 1, 3).round().long()]
        cat[used] = torch.randperm(3, generator=gen)
        n[used] = n[used].clamp(min=min(30.0, N / R))
    # 1-1, 1-N and N-1 relations hold at most ~one triple per entity on their "one" side:
    # cap them and give the excess to the N-N relations.
    cap = 0.4 * E
    bounded = cat != 3
    excess = float((n[bounded] - cap).clamp(min=0).sum())
    n[bounded] = n[bounded].clamp(max=cap)
    n[~bounded] += excess * n[~bounded] / n[~bounded].sum()
    n = n.clamp(min=1.0)
    hubs = torch.randint(1, 4, (R,), generator=gen)
    # Domain size d_r (clusters) and N-N top-q, so heads/tails repeat as the category needs.
    per_cluster = torch.where(cat == 3, 2.0 * S, torch.where(cat == 0, 0.3 * S, 0.5 * S))
    d = torch.ceil(n / per_cluster).clamp(1, K).long()
    q = torch.ceil(n / (2.0 * d)).clamp(2, max(2.0, S)).long()
    q = torch.where(cat == 3, q, torch.full_like(q, 1 << 62))
    domain = torch.argsort(torch.rand(R, K, generator=gen), dim=1)
    cmap = torch.argsort(torch.rand(R, K, generator=gen), dim=1)
    return {"n": n, "cat": cat, "hubs": hubs, "d": d, "q": q, "domain": domain, "cmap": cmap}


def _sample(count: int, tab: dict[str, Tensor], cl: _Clusters, attr: Tensor,
            gen: torch.Generator) -> Tensor:
    R, K = tab["domain"].shape
    cdf = torch.cumsum(tab["n"], 0)
    x = torch.rand(count, generator=gen, dtype=torch.float64) * cdf[-1]
    rel = torch.searchsorted(cdf, x, right=True).clamp(max=R - 1)
    slot = (torch.rand(count, generator=gen) * tab["d"][rel]).long().clamp(max=K - 1)
    c = tab["domain"][rel, slot]
    c2 = tab["cmap"][rel, c]
    cat, m, q = tab["cat"][rel], tab["hubs"][rel], tab["q"][rel]
    h_pop = _draw(cl, c, q, gen)
    t_pop = _draw(cl, c2, q, gen)
    hub_t = cl.members[cl.start[c2] + torch.minimum(attr[h_pop] % m, cl.size[c2] - 1)]
    hub_h = cl.members[cl.start[c] + torch.minimum(attr[t_pop] % m, cl.size[c] - 1)]
    same_rank = cl.members[cl.start[c2] + torch.minimum(cl.rank[h_pop], cl.size[c2] - 1)]
    head = torch.where(cat == 1, hub_h, h_pop)
    tail = torch.where(cat == 0, same_rank, torch.where(cat == 2, hub_t, t_pop))
    return torch.stack([head, rel, tail], dim=1)


#: Peak bytes of :func:`generate_synthetic` per entity and per triple: float64 and int64
#: working arrays; 2,500,604 entities and 17,137,181 triples peak at 4.1 GB
#: (``benchmarks/results/data_scale.md``).
SYNTHETIC_BYTES_PER_ENTITY = 128
SYNTHETIC_BYTES_PER_TRIPLE = 240


def synthetic_bytes(num_entities: int, num_triples: int) -> int:
    """Estimated peak memory of :func:`generate_synthetic` (checked before it allocates).

    Args:
        num_entities: Entities.
        num_triples: Triples over the three splits.
    """
    return (SYNTHETIC_BYTES_PER_ENTITY * int(num_entities)
            + SYNTHETIC_BYTES_PER_TRIPLE * int(num_triples))


def generate_synthetic(
    num_entities: int = DEFAULT_ENTITIES,
    num_relations: int = DEFAULT_RELATIONS,
    num_triples: int = DEFAULT_TRIPLES,
    seed: int = 0,
    *,
    num_clusters: int | None = None,
    degree_exponent: float = 2.3,
    relation_exponent: float = 1.0,
    category_weights: tuple[float, float, float, float] = (0.1, 0.2, 0.35, 0.35),
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
    name: str = "synthetic",
) -> KnowledgeGraph:
    r"""Generate a long-tailed knowledge graph with learnable structure (see module docs).

    Deterministic for a given set of arguments (same ``seed``, same graph), on
    any machine; fully vectorised (2.5M entities / 16M triples in minutes).

    Args:
        num_entities: :math:`E`, entity ids ``0 .. E-1`` (a few of the least
            popular may end up without triples).
        num_relations: :math:`R`.
        num_triples: Distinct triples over the three splits.
        seed: Random seed.
        num_clusters: :math:`K` latent clusters (default
            :math:`\max(2, \mathrm{round}(\sqrt{E}/2))`).
        degree_exponent: :math:`\gamma > 2` of the Pareto popularity.
        relation_exponent: :math:`s` of the Zipf relation frequencies.
        category_weights: Probabilities of 1-1, 1-N, N-1, N-N relations.
        valid_fraction: Share of triples drawn for valid (before moving
            triples with unseen entities to train).
        test_fraction: Share drawn for test.
        name: Graph name.

    Raises:
        ConfigError: invalid sizes, or more distinct triples asked for than
            the graph can hold.
    """
    E, R, N = int(num_entities), int(num_relations), int(num_triples)
    if E < 2 or R < 1 or N < 3:
        raise ConfigError(
            f"synthetic graph needs entities >= 2, relations >= 1, triples >= 3; "
            f"got entities={E}, relations={R}, triples={N}"
        )
    if not degree_exponent > 2.0:
        raise ConfigError(f"degree_exponent must be > 2, got {degree_exponent}")
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1
            and valid_fraction + test_fraction < 1):
        raise ConfigError(
            f"valid_fraction and test_fraction must be in [0, 1) with a sum < 1, got "
            f"{valid_fraction} and {test_fraction}"
        )
    need = synthetic_bytes(E, N)
    limit = physical_memory_bytes()
    if limit is not None and need > limit:
        raise ConfigError(
            f"a synthetic graph of {E:,} entities and {N:,} triples needs about "
            f"{need / 1e9:,.1f} GB to generate; this machine has {limit / 1e9:,.1f} GB "
            "(ogbl-wikikg2's size, 2.5M entities and 17.1M triples, needs about 4.1 GB)")
    K = int(num_clusters) if num_clusters is not None else max(2, round(math.sqrt(E) / 2))
    if not 1 <= K <= E:
        raise ConfigError(f"num_clusters must be in [1, {E}], got {K}")
    gen = torch.Generator().manual_seed(int(seed))
    u = torch.rand(E, generator=gen, dtype=torch.float64).clamp(min=1e-12)
    alpha = 1.0 / (degree_exponent - 1.0)
    weight = (u ** -alpha).clamp(max=float(E) ** alpha)
    cl = _clusters(weight, K, gen)
    attr = torch.randint(0, 6, (E,), generator=gen)
    tab = _relation_tables(E, R, K, N, relation_exponent, category_weights, gen)
    triples = torch.empty(0, 3, dtype=torch.long)
    rate = 0.75  # expected share of fresh distinct triples in a new draw, updated each round
    stalled = 0
    for _ in range(30):
        missing = N - len(triples)
        if missing <= 0 or stalled >= 2:  # done, or saturated (two rounds without progress)
            break
        count = min(int(missing / max(rate, 0.02) * 1.1) + 64, 4 * N + 64)
        new = _sample(count, tab, cl, attr, gen)
        new = new[new[:, 0] != new[:, 2]]
        before = len(triples)
        triples, _ = drop_duplicates(torch.cat([triples, new]), E, R)
        rate = max((len(triples) - before) / count, 1e-3)
        stalled = stalled + 1 if len(triples) - before < max(1, missing // 1000) else 0
    if len(triples) < N:
        raise ConfigError(
            f"cannot generate {N:,} distinct triples with {E:,} entities and {R:,} relations "
            f"(reached {len(triples):,}); ask for fewer triples or more entities/relations"
        )
    triples = triples[torch.randperm(len(triples), generator=gen)[:N]]
    return _split(triples, E, R, valid_fraction, test_fraction, name, gen)


def _split(triples: Tensor, E: int, R: int, valid_fraction: float, test_fraction: float,
           name: str, gen: torch.Generator) -> KnowledgeGraph:
    N = len(triples)
    n_valid, n_test = round(N * valid_fraction), round(N * test_fraction)
    valid, test = triples[:n_valid], triples[n_valid:n_valid + n_test]
    train = triples[n_valid + n_test:]
    seen = torch.zeros(E, dtype=torch.bool)
    seen[train[:, 0]] = True
    seen[train[:, 2]] = True
    ok_v = seen[valid[:, 0]] & seen[valid[:, 2]]
    ok_t = seen[test[:, 0]] & seen[test[:, 2]]
    train = torch.cat([train, valid[~ok_v], test[~ok_t]])
    return KnowledgeGraph(
        name=name,
        train=train.contiguous(),
        valid=valid[ok_v].contiguous(),
        test=test[ok_t].contiguous(),
        num_entities=E,
        num_relations=R,
        entity_names=None,
        relation_names=[f"rel{r}" for r in range(R)],
        num_duplicates={"train": 0, "valid": 0, "test": 0},
        source=f"generate_synthetic(num_entities={E}, num_relations={R}, num_triples={N})",
    )


@dataclass(frozen=True)
class SyntheticSpec:
    """Parsed ``synthetic:key=value,...`` spec (keys are the field names' short forms).

    Args:
        entities: ``num_entities``.
        relations: ``num_relations``.
        triples: ``num_triples``.
        seed: ``seed``.
        clusters: ``num_clusters`` (0 = default).
        exponent: ``degree_exponent``.
        valid: ``valid_fraction``.
        test: ``test_fraction``.
    """

    entities: int = DEFAULT_ENTITIES
    relations: int = DEFAULT_RELATIONS
    triples: int = DEFAULT_TRIPLES
    seed: int = 0
    clusters: int = 0
    exponent: float = 2.3
    valid: float = 0.05
    test: float = 0.05


def parse_synthetic_spec(spec: str) -> SyntheticSpec:
    """Parse ``"synthetic"`` or ``"synthetic:entities=5000,triples=60000,seed=1"``.

    Args:
        spec: The dataset string.

    Raises:
        ConfigError: unknown key or malformed value (named in the message).
    """
    _, _, rest = spec.partition(":")
    known = {f.name: f.type for f in fields(SyntheticSpec)}
    values: dict[str, int | float] = {}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq or key not in known:
            raise ConfigError(
                f"synthetic spec {spec!r}: unknown item {item!r}; known keys: "
                f"{', '.join(known)} (e.g. synthetic:entities=5000,triples=60000,seed=1)"
            )
        kind = int if known[key] in (int, "int") else float
        try:
            values[key] = kind(value.strip().replace("_", ""))
        except ValueError:
            raise ConfigError(
                f"synthetic spec {spec!r}: {key}={value.strip()!r} is not a valid {kind.__name__}"
            ) from None
    return SyntheticSpec(**values)  # type: ignore[arg-type]


def synthetic_from_spec(spec: str) -> KnowledgeGraph:
    """The graph described by a ``synthetic[:key=value,...]`` spec.

    See :func:`parse_synthetic_spec` for the keys.

    Args:
        spec: The dataset string; the graph is named after it.
    """
    s = parse_synthetic_spec(spec)
    name = "synthetic" if s == SyntheticSpec() else "synthetic:" + ",".join(
        f"{f.name}={getattr(s, f.name)}" for f in fields(s)
        if getattr(s, f.name) != getattr(SyntheticSpec(), f.name)
    )
    return generate_synthetic(
        s.entities, s.relations, s.triples, s.seed,
        num_clusters=s.clusters or None, degree_exponent=s.exponent,
        valid_fraction=s.valid, test_fraction=s.test, name=name,
    )
