"""Atomic, pickle-free training checkpoints: safetensors for tensors, JSON for the rest.

A checkpoint folder holds ``checkpoint.json`` (the commit point: JSON state
plus the name of its tensor file) and one ``ckpt-<epoch>.safetensors``.
Writing goes tensors first, then the JSON, each to a temporary file in the
same folder, flushed, then moved into place with :func:`os.replace`; an
interruption at any point leaves the previous checkpoint intact and
consistent. Old tensor files are removed after the JSON points elsewhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor

from metasd_pyg.errors import RunFolderError

#: Name of the JSON commit file inside a checkpoint folder.
CHECKPOINT_JSON = "checkpoint.json"
#: Version of the checkpoint layout.
FORMAT_VERSION = 1


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)


def save_checkpoint(directory: str | os.PathLike[str], tag: str, tensors: dict[str, Tensor],
                    state: dict[str, Any]) -> Path:
    """Write one checkpoint atomically and return the path of its JSON file.

    Args:
        directory: Checkpoint folder (created if missing).
        tag: Distinguishes the tensor file (e.g. the epoch number).
        tensors: Name -> tensor (moved to CPU, made contiguous).
        state: JSON-serialisable state.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"ckpt-{tag}.safetensors"
    tmp = folder / f".{name}.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    _fsync_replace(tmp, folder / name)
    doc = {"format": FORMAT_VERSION, "tensors": name, "state": state}
    tmp_json = folder / f".{CHECKPOINT_JSON}.tmp"
    tmp_json.write_text(json.dumps(doc, indent=1, sort_keys=True), encoding="utf-8")
    _fsync_replace(tmp_json, folder / CHECKPOINT_JSON)
    for old in folder.glob("ckpt-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / CHECKPOINT_JSON


def has_checkpoint(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds a committed checkpoint.

    Args:
        directory: Checkpoint folder.
    """
    return (Path(directory) / CHECKPOINT_JSON).is_file()


def load_checkpoint(directory: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read the committed checkpoint of ``directory`` as ``(tensors, state)`` (CPU tensors).

    Args:
        directory: Checkpoint folder.
    """
    folder = Path(directory)
    path = folder / CHECKPOINT_JSON
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunFolderError(f"{path}: no checkpoint to resume from") from exc
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: corrupt checkpoint JSON ({exc.msg}, line {exc.lineno})") \
            from exc
    if doc.get("format") != FORMAT_VERSION:
        raise RunFolderError(f"{path}: unsupported checkpoint format {doc.get('format')!r}")
    tensor_path = folder / doc["tensors"]
    if not tensor_path.is_file():
        raise RunFolderError(f"{tensor_path}: tensor file of the checkpoint is missing")
    return load_file(str(tensor_path)), doc["state"]
