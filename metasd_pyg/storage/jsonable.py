"""Conversion of results, tensors and numpy values to plain JSON values."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def to_jsonable(obj: Any) -> Any:
    """Convert tensors, numpy scalars, paths, tuples and non-finite floats to JSON values.

    Args:
        obj: Any nested structure of dicts, lists, tuples and scalars.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if getattr(obj, "ndim", None) == 0 and callable(getattr(obj, "item", None)):
        return to_jsonable(obj.item())
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return to_jsonable(tolist())
    return str(obj)
