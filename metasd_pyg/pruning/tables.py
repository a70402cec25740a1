r"""Which parameter tables of a PyG KGE model are pruned, grouped by row type.

The pruned tables are every entity and relation table of the model (its
adapter's :attr:`~metasd_pyg.models.adapters.ModelAdapter.entity_tables` and
:attr:`~metasd_pyg.models.adapters.ModelAdapter.pruned_relation_tables`), with
one exception: **RotatE's relation table holds phases**, and a zero phase is the
identity rotation :math:`e^{i0} = 1`, not a removed weight (the coordinate still
contributes :math:`|h_j - t_j|` to the distance). RotatE's phases are therefore
never masked and not counted in the pruning budget; they stay dense (``R x d``
reals, small next to the entity tables).

Tables come in two groups, ``"entity"`` and ``"relation"``. All tables of a
group have the same shape ``[rows, d]``; for ComplEx and RotatE the real and
imaginary tables of a group share their columns: column ``j`` of
``node_emb.weight`` and of ``node_emb_im.weight`` is one complex dimension, a
*unit* of the nested strategies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor, nn

from metasd_pyg.models.adapters import adapter_of

#: Names of the table groups.
GROUPS: tuple[str, str] = ("entity", "relation")


@dataclass(frozen=True)
class TableLayout:
    """The pruned tables of a model.

    Attributes:
        groups: ``{"entity": names, "relation": names}``; the relation entry
            is empty when no relation table is pruned (RotatE).
        dim: Number of columns ``d`` of every pruned table (units).
        rows: ``{"entity": E, "relation": R_model}`` row counts.
    """

    groups: dict[str, tuple[str, ...]]
    dim: int
    rows: dict[str, int]

    @property
    def names(self) -> tuple[str, ...]:
        """All pruned parameter names, entity tables first."""
        return self.groups["entity"] + self.groups["relation"]

    @property
    def total(self) -> int:
        """Number of prunable weights (entries of all pruned tables)."""
        return sum(self.rows[g] * self.dim * len(self.groups[g]) for g in GROUPS)

    def cost(self, group: str) -> int:
        """Weights per unit of a row of ``group`` (number of tables in the group)."""
        return len(self.groups[group])


def pruned_tables(model: nn.Module, weights: Mapping[str, Tensor] | None = None) -> TableLayout:
    """Layout of the pruned tables of ``model`` (see the module docstring).

    Args:
        model: A PyG KGE model (ComplEx, DistMult, RotatE or TransE).
        weights: Optional overriding parameters (name -> tensor); only their
            shapes are used.

    Raises:
        ConfigError: Unsupported model class.
    """
    adapter = adapter_of(model)
    params: dict[str, Tensor] = dict(model.named_parameters())
    if weights is not None:
        params.update(weights)
    entity = adapter.entity_tables
    relation = adapter.pruned_relation_tables
    shapes = {n: tuple(params[n].shape) for n in entity + relation}
    dims = {s[1] for s in shapes.values() if len(s) == 2}
    if len(dims) != 1 or any(len(s) != 2 for s in shapes.values()):
        raise TypeError(f"pruned tables must be 2-D with one width, got {shapes}")
    rows = {
        "entity": shapes[entity[0]][0],
        "relation": shapes[relation[0]][0] if relation else 0,
    }
    for g, names in (("entity", entity), ("relation", relation)):
        if any(shapes[n][0] != rows[g] for n in names):
            raise TypeError(f"tables of group {g!r} differ in rows: {shapes}")
    return TableLayout({"entity": entity, "relation": relation}, dims.pop(), rows)


def layout_weights(
    model: nn.Module, layout: TableLayout, weights: Mapping[str, Tensor] | None
) -> dict[str, Tensor]:
    """The pruned tables' tensors (detached), from ``weights`` or the model."""
    out = {}
    for name in layout.names:
        w = weights[name] if weights is not None and name in weights else model.get_parameter(name)
        out[name] = w.detach()
    return out

