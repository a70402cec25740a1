import json

from metasd_pyg.storage import to_jsonable


def test_to_jsonable():
    import numpy as np
    import torch

    out = to_jsonable({"a": torch.tensor(1.5), "b": np.float32(2.0), "c": float("nan"),
                       "d": (1, 2), "e": torch.tensor([1, 2])})
    assert json.loads(json.dumps(out)) == {"a": 1.5, "b": 2.0, "c": None, "d": [1, 2],
                                           "e": [1, 2]}
