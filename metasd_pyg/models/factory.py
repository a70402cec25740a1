"""Build PyG knowledge-graph embedding models by name."""

from __future__ import annotations

from torch_geometric.nn.kge import ComplEx, DistMult, KGEModel, RotatE, TransE

from metasd_pyg.errors import ConfigError

#: Model names accepted by :func:`build_model` (lower case).
MODEL_NAMES: tuple[str, ...] = ("complex", "distmult", "rotate", "transe")

_CLASSES: dict[str, type[KGEModel]] = {
    "complex": ComplEx,
    "distmult": DistMult,
    "rotate": RotatE,
    "transe": TransE,
}


def build_model(
    name: str,
    num_entities: int,
    num_relations: int,
    dim: int,
    *,
    reciprocal: bool = True,
    margin: float = 1.0,
) -> KGEModel:
    r"""Create one of PyG's KGE models.

    With ``reciprocal=True`` (Lacroix et al. 2018, https://arxiv.org/abs/1806.07297)
    the model gets ``2 * num_relations`` relation rows: relation ``r + R`` is
    the inverse of ``r``, and a head query ``(?, r, t)`` is answered as the
    tail query ``(t, r + R, ?)``.

    Args:
        name: One of :data:`MODEL_NAMES` (case-insensitive).
        num_entities: Number of entities.
        num_relations: Number of relations of the dataset (without inverses).
        dim: ``hidden_channels`` of the PyG model (complex dimensions for
            ComplEx and RotatE, which hold a real and an imaginary table).
        reciprocal: Add inverse relations.
        margin: Margin of TransE and RotatE (ignored by the others).
    """
    key = name.lower()
    if key not in _CLASSES:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")
    if dim < 1:
        raise ConfigError(f"model dimension must be >= 1, got {dim}")
    rels = 2 * num_relations if reciprocal else num_relations
    cls = _CLASSES[key]
    if key in ("rotate", "transe"):
        return cls(num_entities, rels, dim, margin=margin)
    return cls(num_entities, rels, dim)


def model_name(model: KGEModel) -> str:
    """The :data:`MODEL_NAMES` key of a PyG KGE model instance."""
    for key, cls in _CLASSES.items():
        if type(model) is cls:
            return key
    raise ConfigError(f"unsupported model class {type(model).__name__}")
