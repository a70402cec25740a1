"""Where the suite finds the shared benchmark archives (one definition for every test).

``$METASD_DATA_ROOT`` if set, else ``<repo>/../shared/datasets``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("METASD_DATA_ROOT") or REPO.parent / "shared" / "datasets")


def need_archive(file_name: str) -> Path:
    """``DATA_ROOT``, or skip the calling test when ``file_name`` is not in it."""
    if not (DATA_ROOT / file_name).is_file():
        pytest.skip(f"{file_name} not found in {DATA_ROOT} (set METASD_DATA_ROOT)")
    return DATA_ROOT
