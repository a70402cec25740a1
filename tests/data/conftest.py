"""Fixtures of the data tests: the shared offline datasets and one cache per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """``$METASD_DATA_ROOT`` or ``<repo>/../shared/datasets`` (skip if absent)."""
    root = Path(os.environ.get("METASD_DATA_ROOT", REPO.parent / "shared" / "datasets"))
    if not (root / "FB15k-237.tar.gz").is_file():
        pytest.skip(f"shared datasets not found in {root} (set METASD_DATA_ROOT)")
    return root


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache dir for the whole session (PyG processing of FB15k-237 runs once)."""
    return tmp_path_factory.mktemp("metasd-cache")
