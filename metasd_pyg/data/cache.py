"""Cache of processed graphs: tensors in safetensors, names and counts in JSON.

A cached graph is two files in ``<cache_dir>/processed/``: ``<stem>.safetensors``
(triples and candidates) and ``<stem>.json`` (sizes, names, duplicate counts,
provenance). The stem includes a key derived from the source's checksum, so a
changed source never reuses a stale cache. Both files are written atomically,
the JSON last; an unreadable or inconsistent cache entry is ignored (and
rebuilt by the caller). No pickle is involved.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_tensors

from metasd_pyg.data.graph import SPLITS, KnowledgeGraph

logger = logging.getLogger(__name__)

#: Bump when the processed representation changes (invalidates old caches).
CACHE_FORMAT = 1


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename.

    Args:
        path: Destination file (its folder is created).
        data: Content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cache_paths(cache_dir: Path, stem: str) -> tuple[Path, Path]:
    """The ``(.safetensors, .json)`` paths of cache entry ``stem``."""
    base = cache_dir / "processed"
    return base / f"{stem}.safetensors", base / f"{stem}.json"


def save_graph(graph: KnowledgeGraph, cache_dir: Path, stem: str) -> None:
    """Store ``graph`` as cache entry ``stem``.

    Args:
        graph: Graph to store (tensors moved to CPU).
        cache_dir: Cache dir.
        stem: Entry name (dataset name + source key).
    """
    tensors = {s: graph.split(s).cpu().contiguous() for s in SPLITS}
    for split, cands in graph.candidates.items():
        for kind, t in cands.items():
            tensors[f"candidates.{split}.{kind}"] = t.cpu().contiguous()
    blob = save_tensors(tensors)
    meta: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "name": graph.name,
        "num_entities": graph.num_entities,
        "num_relations": graph.num_relations,
        "num_duplicates": dict(graph.num_duplicates),
        "source": graph.source,
        "tensor_bytes": len(blob),
        "entity_names": graph.entity_names,
        "relation_names": graph.relation_names,
    }
    st_path, js_path = cache_paths(cache_dir, stem)
    atomic_write_bytes(st_path, blob)
    atomic_write_bytes(js_path, json.dumps(meta, ensure_ascii=False).encode("utf-8"))


def load_graph(cache_dir: Path, stem: str) -> KnowledgeGraph | None:
    """Cache entry ``stem`` as a graph, or ``None`` if absent or unusable.

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
        tensors = load_file(st_path)
        candidates: dict[str, dict[str, Any]] = {}
        for key, t in tensors.items():
            if key.startswith("candidates."):
                _, split, kind = key.split(".")
                candidates.setdefault(split, {})[kind] = t
        return KnowledgeGraph(
            name=meta["name"],
            train=tensors["train"],
            valid=tensors["valid"],
            test=tensors["test"],
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
