"""Where datasets are read from (data root) and where derived files go (cache dir).

The **data root** is the user's folder of archives and dataset folders; the
library only ever reads from it. Everything it derives (extracted raw files,
PyG/OGB processed files, our cached tensors) goes to the **cache dir**.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the data root.
DATA_ROOT_ENV = "METASD_DATA_ROOT"
#: Environment variable naming the cache dir.
CACHE_DIR_ENV = "METASD_CACHE_DIR"


def _user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return Path(base).expanduser() if base else Path.home() / ".cache"


def default_cache_dir() -> Path:
    """``$METASD_CACHE_DIR``, else ``~/.cache/metasd-pyg`` (``$XDG_CACHE_HOME`` honoured)."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else _user_cache() / "metasd-pyg"


def default_data_root() -> Path:
    """``$METASD_DATA_ROOT``, else ``~/.cache/metasd-pyg-data`` (read only)."""
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env).expanduser() if env else _user_cache() / "metasd-pyg-data"


def resolve_data_root(root: str | os.PathLike[str] | None) -> Path:
    """The data root: ``root`` if given, else :func:`default_data_root`.

    Args:
        root: Folder holding dataset archives/folders, or ``None``.
    """
    return Path(root).expanduser() if root is not None else default_data_root()


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    """The cache dir: ``cache_dir`` if given, else :func:`default_cache_dir`.

    Args:
        cache_dir: Folder for extracted and processed files, or ``None``.
    """
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
