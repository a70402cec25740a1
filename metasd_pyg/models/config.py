"""The model section of a run's configuration: which PyG KGE model, how wide, how initialised."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch_geometric.nn.kge import KGEModel

from metasd_pyg.sections import Section, check, option

#: Model names (the keys of :func:`metasd_pyg.models.factory.build_model`).
ModelName = Literal["complex", "distmult", "rotate", "transe"]


@dataclass(frozen=True)
class ModelConfig(Section):
    r"""The model a run trains.

    Args:
        name: complex (the paper's), distmult, rotate or transe (flag ``--model``).
        dim: Model dimension (complex dimensions for ComplEx/RotatE).
        reciprocal: Train on (h, r, t) and (t, r + R, h) (Lacroix et al. 2018).
        init_scale: If set, re-initialise all tables as N(0, 1) * init_scale
            (kbc's init, 1e-3); None keeps PyG's initialisation.
    """

    name: ModelName = option("complex", key="model")
    dim: int = 100
    reciprocal: bool = True
    init_scale: float | None = 1e-3

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", str(self.name).lower())
        super().__post_init__()

    def validate(self) -> None:
        check(self.dim >= 1, f"dim={self.dim}: must be >= 1")
        check(self.init_scale is None or self.init_scale > 0,
              f"init_scale={self.init_scale}: must be > 0 or None")

    def build(self, num_entities: int, num_relations: int, seed: int) -> KGEModel:
        """A freshly initialised model of this section (seeded).

        Args:
            num_entities: Entities of the graph.
            num_relations: Relations of the graph (without inverses).
            seed: Seed of the initialisation.
        """
        from metasd_pyg.models.factory import build_model

        torch.manual_seed(seed)
        model = build_model(self.name, num_entities, num_relations, self.dim,
                            reciprocal=self.reciprocal)
        if self.init_scale is not None:
            gen = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * self.init_scale)
        return model

    @classmethod
    def of(cls, model: KGEModel, *, reciprocal: bool = True) -> ModelConfig:
        """The section describing an already built ``model`` (no re-initialisation).

        Args:
            model: A PyG KGE model.
            reciprocal: Whether it holds inverse relation rows.
        """
        from metasd_pyg.models.factory import model_name

        return cls(name=model_name(model), dim=int(model.hidden_channels),  # type: ignore[arg-type]
                   reciprocal=reciprocal, init_scale=None)
