"""Build PyG knowledge-graph embedding models by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch_geometric.nn.kge import KGEModel

from metasd_pyg.errors import ConfigError
from metasd_pyg.models.adapters import ADAPTERS, adapter_for, adapter_of

#: Model names accepted by :func:`build_model` (lower case), one per adapter of
#: :mod:`metasd_pyg.models.adapters`: ``("complex", "distmult", "rotate", "transe")``.
MODEL_NAMES: tuple[str, ...] = tuple(a.name for a in ADAPTERS)


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
    adapter = adapter_for(name)
    if dim < 1:
        raise ConfigError(f"model dimension must be >= 1, got {dim}")
    rels = 2 * num_relations if reciprocal else num_relations
    return adapter.build(num_entities, rels, dim, margin=margin)


def model_name(model: KGEModel) -> str:
    """The :data:`MODEL_NAMES` key of a PyG KGE model instance.

    Raises:
        ConfigError: Unsupported model class (see
            :func:`~metasd_pyg.models.adapters.adapter_of`).
    """
    return adapter_of(model).name


def model_metadata(model: KGEModel, num_relations: int, *, reciprocal: bool = True
                   ) -> dict[str, Any]:
    """The JSON-able description :func:`model_from_metadata` rebuilds ``model`` from.

    Keys: ``model``, ``num_entities``, ``num_relations``, ``dim``,
    ``reciprocal``, ``margin``, ``p_norm`` (the last two only matter for TransE
    and RotatE; see
    :meth:`~metasd_pyg.models.adapters.ModelAdapter.hyperparameters`).

    Args:
        model: A PyG KGE model.
        num_relations: Relations of the dataset (without inverses).
        reciprocal: Whether the model holds inverse relation rows.
    """
    adapter = adapter_of(model)
    hyper = adapter.hyperparameters(model)
    return {
        "model": adapter.name,
        "num_entities": int(model.num_nodes),
        "num_relations": int(num_relations),
        "dim": int(model.hidden_channels),
        "reciprocal": bool(reciprocal),
        "margin": hyper["margin"],
        "p_norm": hyper["p_norm"],
    }


def model_from_metadata(meta: Mapping[str, Any]) -> KGEModel:
    """A freshly initialised model of the shape :func:`model_metadata` describes.

    Args:
        meta: Mapping with the keys of :func:`model_metadata` (``margin`` and
            ``p_norm`` optional).

    Raises:
        KeyError: A required key is missing.
        ConfigError: Unknown model name or bad dimension.
    """
    model = build_model(
        str(meta["model"]), int(meta["num_entities"]), int(meta["num_relations"]),
        int(meta["dim"]), reciprocal=bool(meta["reciprocal"]),
        margin=float(meta.get("margin", 1.0)),
    )
    adapter_of(model).restore(model, meta)
    return model
