"""Model factory: names, errors, and the metadata round trip used by run folders and exports."""

from __future__ import annotations

import json

import pytest
import torch
from torch_geometric.nn.kge import TransE

from metasd_pyg.errors import ConfigError
from metasd_pyg.models.factory import (
    MODEL_NAMES,
    build_model,
    model_from_metadata,
    model_metadata,
    model_name,
)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_metadata_round_trip_rebuilds_the_same_model(name: str) -> None:
    model = build_model(name, 7, 3, 5, margin=2.5)
    if isinstance(model, TransE):
        model.p_norm = 2.0
    meta = json.loads(json.dumps(model_metadata(model, 3)))  # JSON-able
    again = model_from_metadata(meta)
    assert model_name(again) == name
    again.load_state_dict(model.state_dict(), strict=True)
    h, r, t = torch.tensor([0, 6]), torch.tensor([1, 5]), torch.tensor([2, 3])
    torch.testing.assert_close(again(h, r, t), model(h, r, t))
    assert getattr(again, "margin", None) == getattr(model, "margin", None)


def test_factory_errors() -> None:
    with pytest.raises(ConfigError, match="unknown model"):
        build_model("tucker", 3, 1, 2)
    with pytest.raises(ConfigError, match=">= 1"):
        build_model("complex", 3, 1, 0)
    with pytest.raises(KeyError):
        model_from_metadata({"model": "complex", "num_entities": 3})
