"""Entity and relation names inside safetensors files (no pickle).

Tiny name lists (at most :data:`MAX_HEADER_NAMES_BYTES` of UTF-8) go into the
JSON header as a list. Larger ones are joined with newlines, compressed with
zlib and stored as a ``uint8`` tensor; the header then holds a reference
``{"tensor", "codec", "separator", "count", "bytes"}``. Names cost about 10-20
bytes each, 1-2% of a dense 100-dimensional ComplEx row, so compressing them
matters for the size targets of the compressed student.
"""

from __future__ import annotations

import zlib
from typing import Any

import torch
from torch import Tensor

from metasd_pyg.errors import MetaSDError

#: Names whose UTF-8 size exceeds this go, zlib-compressed, to a tensor.
MAX_HEADER_NAMES_BYTES = 1024


def pack_names(
    names: list[str] | None, key: str, tensors: dict[str, Tensor]
) -> list[str] | dict[str, Any] | None:
    """Header entry for ``names``; adds the compressed tensor to ``tensors`` if needed.

    Args:
        names: The names (``None``: ids are the names).
        key: Tensor key for the compressed names.
        tensors: Tensor dict of the file being written (updated in place).
    """
    if names is None:
        return None
    if any("\n" in n for n in names):
        raise ValueError("names must not contain newlines")
    blob = "\n".join(names).encode("utf-8")
    if len(blob) <= MAX_HEADER_NAMES_BYTES:
        return list(names)
    packed = zlib.compress(blob, 9)
    tensors[key] = torch.frombuffer(bytearray(packed), dtype=torch.uint8).clone()
    return {"tensor": key, "codec": "zlib", "separator": "\n", "count": len(names),
            "bytes": len(blob)}


def unpack_names(entry: Any, tensors: dict[str, Tensor], count: int) -> list[str] | None:
    """Names from a header entry written by :func:`pack_names`.

    Args:
        entry: The header entry (list, reference dict, or ``None``).
        tensors: The file's tensors.
        count: Expected number of names.

    Raises:
        MetaSDError: The names are missing, corrupt, or not ``count`` of them.
    """
    if entry is None:
        return None
    if isinstance(entry, dict):
        try:
            packed = tensors[entry["tensor"]].numpy().tobytes()
            inflater = zlib.decompressobj()
            blob = inflater.decompress(packed, int(entry.get("bytes", 1 << 30)) + 1)
            names = blob.decode("utf-8").split(entry.get("separator", "\n"))
        except (KeyError, zlib.error, UnicodeDecodeError) as exc:
            raise MetaSDError(f"corrupt name table ({exc})") from exc
    else:
        names = [str(n) for n in entry]
    if len(names) != count:
        raise MetaSDError(f"name table holds {len(names)} names for {count} items")
    return names
