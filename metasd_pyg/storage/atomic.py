"""Atomic file writes.

A file is written to a temporary sibling in the same directory and moved into
place with :func:`os.replace`, so a reader (or a crash) never sees a half-written
file: either the old content or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from metasd_pyg.storage.jsonable import to_jsonable


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically through ``write(binary_file)``.

    Args:
        path: Destination file; its directory must exist.
        write: Callable that writes the whole content to the open binary file.

    Returns:
        The destination path.
    """
    def produce(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            write(fh)

    return _atomic_file(path, produce)


def _atomic_file(path: str | Path, produce: Callable[[str], Any]) -> Path:
    """``produce(temporary_path)`` writes the file; then mode, fsync and rename into place.

    The temporary is removed when ``produce`` fails; the destination is never touched then.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        produce(tmp)
        # mkstemp (and writers that replace the file) create 0600 files: the usual mode
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    Args:
        path: Destination file.
        text: Content.
    """
    data = text.encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically.

    Args:
        path: Destination file.
        obj: JSON-serialisable object (non-finite floats are written as ``null``).
    """
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def atomic_save_safetensors(path: str | Path, tensors: dict[str, Any],
                            metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` as a safetensors file at ``path`` atomically, streamed.

    ``safetensors.torch.save_file`` writes each tensor from its own memory
    (``save`` would first build the whole file as one ``bytes`` object: at
    ogbl-wikikg2 size a second 2.5 GB copy of the model).

    Args:
        path: Destination file; its directory must exist.
        tensors: Name -> CPU tensor (contiguous, no two sharing memory).
        metadata: String header entries.
    """
    from safetensors.torch import save_file

    return _atomic_file(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))
