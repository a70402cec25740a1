"""Tables (pandas data frames) stored column by column in one safetensors file.

Per-query ranks of a test split run to millions of rows (2.4M per model at
ogbl-wikikg2 size). As JSON column lists they cost about 1.5 kB per row while
being written (Python objects, then text) and 120 bytes per row on disk; here a
numeric column is one tensor, written from the frame's own memory, and a text
column (``side``, ``bucket``) is stored as ``int32`` category codes with its
categories in the file's header. Reading gives back the same frame: same
columns, order, values and dtypes (text columns as ``object``).

Layout: tensor ``"<key>/<column>"`` for every column of the frame stored under
``key``; header entry ``"metasd_pyg_frames"`` (JSON) holds, per key, the column
order and the categories of the text columns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from metasd_pyg.errors import RunFolderError
from metasd_pyg.storage.atomic import atomic_save_safetensors

#: Header entry that describes the stored frames.
HEADER_KEY = "metasd_pyg_frames"


def save_frames(path: str | Path, frames: Mapping[str, pd.DataFrame]) -> Path:
    """Write ``frames`` (key -> frame) to the safetensors file ``path``, atomically.

    Args:
        path: Destination file; its directory must exist.
        frames: Frames to store; keys must not contain ``"/"``-separated column
            names of another key (``"student/test"`` and ``"student"`` clash
            only if a column is named ``"test/..."``).
    """
    tensors: dict[str, torch.Tensor] = {}
    header: dict[str, Any] = {}
    for key, frame in frames.items():
        columns: list[str] = []
        categories: dict[str, list[Any]] = {}
        for col in frame.columns:
            name = str(col)
            columns.append(name)
            values = frame[col]
            numeric = (pd.api.types.is_numeric_dtype(values.dtype)
                       and not isinstance(values.dtype, pd.CategoricalDtype))
            if not numeric:  # text (object, str, categorical): category codes
                cat = pd.Categorical(values)
                categories[name] = [_plain(c) for c in cat.categories]
                arr = np.asarray(cat.codes, dtype=np.int32)
            else:
                # a copy: columns of one dtype may be views of one pandas block, and
                # safetensors refuses tensors that share memory
                arr = np.array(values.to_numpy(), copy=True, order="C")
            tensors[f"{key}/{name}"] = torch.from_numpy(arr)
        header[key] = {"columns": columns, "categories": categories, "rows": len(frame)}
    return atomic_save_safetensors(path, tensors, metadata={HEADER_KEY: json.dumps(header)})


def load_frame(path: str | Path, key: str) -> pd.DataFrame:
    """Read the frame stored under ``key`` in ``path`` (see :func:`save_frames`).

    Raises:
        RunFolderError: The file is missing, unreadable, or has no such frame.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"{path}: missing (needed for the per-query ranks {key!r})")
    try:
        with safe_open(str(path), "pt") as fh:
            header = json.loads((fh.metadata() or {}).get(HEADER_KEY, "{}"))
            if key not in header:
                raise RunFolderError(f"{path}: no ranks stored under {key!r}")
            spec = header[key]
            out: dict[str, Any] = {}
            for col in spec["columns"]:
                arr = fh.get_tensor(f"{key}/{col}").numpy()
                if col in spec["categories"]:
                    cats = np.asarray(spec["categories"][col] + [None], dtype=object)
                    if arr.size and (arr.min() < -1 or arr.max() >= len(cats) - 1):
                        raise RunFolderError(f"{path}: column {key}/{col} has codes outside "
                                             "its categories (corrupt file)")
                    arr = cats[arr]  # code -1 (missing) -> the trailing None
                out[col] = arr
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise RunFolderError(f"{path}: unreadable ranks ({exc})") from exc
    lengths = {len(v) for v in out.values()}
    if lengths - {spec.get("rows", 0)}:
        raise RunFolderError(f"{path}: columns of {key!r} differ in length (corrupt file)")
    return pd.DataFrame(out, columns=spec["columns"])


def _plain(value: Any) -> Any:
    """A category as a JSON value (numpy scalars become Python ones)."""
    return value.item() if isinstance(value, np.generic) else value


__all__ = ["HEADER_KEY", "load_frame", "save_frames"]
