"""Cache of processed graphs: tensors in safetensors, names and counts in JSON.

A cached graph is two files in ``<cache_dir>/processed/``: ``<stem>.safetensors``
(triples and candidates) and ``<stem>.json`` (sizes, names, duplicate counts,
provenance). The stem includes a key derived from the source's checksum, so a
changed source never reuses a stale cache. Both files are written atomically,
the JSON last; an unreadable or inconsistent cache entry is ignored (and
rebuilt by the caller). No pickle is involved.

Format 2 (:data:`CACHE_FORMAT`): ids are stored as int32 when the entity and
relation counts are below 2**31 (else int64). The safetensors file is
written tensor by tensor from the tensors' own memory (no serialised copy of
the whole graph is built), and read back with ``safetensors.safe_open``,
which maps the file: a reload reads the triples (widened to the int64 that
:class:`~metasd_pyg.data.graph.KnowledgeGraph` holds) and leaves the
candidates as int32 tensors backed by the mapped file, paged in only when
used.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch
from safetensors import SafetensorError, safe_open

from metasd_pyg.data.graph import SPLITS, KnowledgeGraph

logger = logging.getLogger(__name__)

#: Bump when the processed representation changes (invalidates old caches).
CACHE_FORMAT = 2

_INT32_MAX = 2**31 - 1
_ST_DTYPES = {torch.int32: "I32", torch.int64: "I64"}
#: Elements converted and written at a time.
_CHUNK = 1 << 22


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file that replaces ``path`` atomically when the block ends without error.

    Args:
        path: Destination file (its folder is created). On an exception the
            temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename.

    Args:
        path: Destination file (its folder is created).
        data: Content.
    """
    with atomic_file(path) as f:
        f.write(data)


def _write_safetensors(path: Path, tensors: dict[str, torch.Tensor],
                       dtypes: dict[str, torch.dtype]) -> int:
    """Write a safetensors file tensor by tensor, converting ``_CHUNK`` elements at a time.

    Memory: one converted chunk (nothing if a tensor already has its stored
    dtype); ``safetensors.torch.save`` would build the whole file in memory.

    Returns:
        The file size in bytes.
    """
    header: dict[str, Any] = {}
    offset = 0
    for name, t in tensors.items():
        size = t.numel() * torch.empty(0, dtype=dtypes[name]).element_size()
        header[name] = {"dtype": _ST_DTYPES[dtypes[name]], "shape": list(t.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # safetensors pads its header to 8 bytes
    with atomic_file(path) as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, t in tensors.items():
            flat = t.reshape(-1) if t.is_contiguous() else t.contiguous().reshape(-1)
            for start in range(0, flat.numel(), _CHUNK):
                piece = flat[start:start + _CHUNK].to(dtypes[name]).contiguous()
                f.write(piece.numpy().data)
    return 8 + len(blob) + offset


def cache_paths(cache_dir: Path, stem: str) -> tuple[Path, Path]:
    """The ``(.safetensors, .json)`` paths of cache entry ``stem``."""
    base = cache_dir / "processed"
    return base / f"{stem}.safetensors", base / f"{stem}.json"


def save_graph(graph: KnowledgeGraph, cache_dir: Path, stem: str) -> None:
    """Store ``graph`` as cache entry ``stem``.

    Ids are stored as int32 when ``num_entities`` and ``num_relations`` are
    below 2**31 (else int64). Memory: a few MB beyond the graph (see
    :func:`_write_safetensors`).

    Args:
        graph: Graph to store (tensors moved to CPU).
        cache_dir: Cache dir.
        stem: Entry name (dataset name + source key).
    """
    narrow = max(graph.num_entities, graph.num_relations) <= _INT32_MAX
    ids = torch.int32 if narrow else torch.int64
    tensors = {s: graph.split(s).cpu() for s in SPLITS}
    for split, cands in graph.candidates.items():
        for kind, t in cands.items():
            tensors[f"candidates.{split}.{kind}"] = t.cpu()
    dtypes = {k: ids for k in tensors}
    st_path, js_path = cache_paths(cache_dir, stem)
    size = _write_safetensors(st_path, tensors, dtypes)
    meta: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "name": graph.name,
        "num_entities": graph.num_entities,
        "num_relations": graph.num_relations,
        "num_duplicates": dict(graph.num_duplicates),
        "source": graph.source,
        "tensor_bytes": size,
        "entity_names": graph.entity_names,
        "relation_names": graph.relation_names,
    }
    atomic_write_bytes(js_path, json.dumps(meta, ensure_ascii=False).encode("utf-8"))


def load_graph(cache_dir: Path, stem: str) -> KnowledgeGraph | None:
    """Cache entry ``stem`` as a graph, or ``None`` if absent or unusable.

    Triples come back as int64 (a copy of the stored int32), candidates as
    stored (int32 when the ids fit), backed by the mapped file until written.

    Args:
        cache_dir: Cache dir.
        stem: Entry name.
    """
    st_path, js_path = cache_paths(cache_dir, stem)
    if not (st_path.is_file() and js_path.is_file()):
        return None
    try:
        meta = json.loads(js_path.read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT or st_path.stat().st_size != meta["tensor_bytes"]:
            raise ValueError("format or size mismatch")
        triples: dict[str, torch.Tensor] = {}
        candidates: dict[str, dict[str, torch.Tensor]] = {}
        with safe_open(str(st_path), framework="pt") as f:
            for key in f.keys():
                t = f.get_tensor(key)
                if t.dtype not in _ST_DTYPES:
                    raise ValueError(f"tensor {key} has dtype {t.dtype}")
                if key.startswith("candidates."):
                    _, split, kind = key.split(".")
                    candidates.setdefault(split, {})[kind] = t
                else:
                    triples[key] = t.long()
        return KnowledgeGraph(
            name=meta["name"],
            train=triples["train"],
            valid=triples["valid"],
            test=triples["test"],
            num_entities=int(meta["num_entities"]),
            num_relations=int(meta["num_relations"]),
            entity_names=meta["entity_names"],
            relation_names=meta["relation_names"],
            candidates=candidates,
            num_duplicates={k: int(v) for k, v in meta["num_duplicates"].items()},
            source=meta["source"],
        )
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
        logger.warning("ignoring unusable cache entry %s (%s); rebuilding", js_path, exc)
        return None
