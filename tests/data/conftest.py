"""Fixtures of the data tests: the shared offline datasets and one cache per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.paths import need_archive


@pytest.fixture(scope="session")
def data_root() -> Path:
    """``$METASD_DATA_ROOT`` or ``<repo>/../shared/datasets`` (skip if absent)."""
    return need_archive("FB15k-237.tar.gz")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache dir for the whole session (PyG processing of FB15k-237 runs once)."""
    return tmp_path_factory.mktemp("metasd-cache")
