"""Versions of the software a run was made with (recorded in every run folder)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def collect_versions() -> dict[str, str | None]:
    """Versions of Python, torch, PyG, this package and the main libraries.

    Returns:
        A JSON-serialisable dict: ``python``, ``platform``, ``torch``,
        ``torch_geometric``, ``metasd_pyg``, ``numpy``, ``pandas``,
        ``safetensors`` (``None`` for a library that is not installed).
    """
    import torch

    from metasd_pyg import __version__

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_geometric": _version("torch-geometric"),
        "metasd_pyg": __version__ or _version("metasd-pyg"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "safetensors": _version("safetensors"),
    }
