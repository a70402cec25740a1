"""Suite-wide settings.

Integration tests read the real benchmark graphs from ``$METASD_DATA_ROOT``
(default ``<repo>/../shared/datasets``) and skip when they are absent, so a
user without the data can still run the unit tests. CI sets
``METASD_REQUIRE_DATA=1``: then missing data stops the run at once instead
of silently skipping the tests that need it.

Property tests explore new random examples on every local run. CI runs
pytest with hypothesis's ``--hypothesis-profile=ci``: the examples are derived
from each test alone (``derandomize``), so a commit that passed CI passes it
again, and a failure there names a reproducible case.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.paths import DATA_ROOT

settings.register_profile("ci", derandomize=True, database=None)

REQUIRED_ARCHIVES = ("FB15k-237.tar.gz", "WN18RR.tar.gz", "umls.tar.gz", "kinship.tar.gz",
                     "nations.tar.gz")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("METASD_REQUIRE_DATA") != "1":
        return
    root = DATA_ROOT
    missing = [a for a in REQUIRED_ARCHIVES if not (root / a).exists()]
    if missing:
        raise pytest.UsageError(
            f"METASD_REQUIRE_DATA=1 but {', '.join(missing)} not found in {root} "
            "(set METASD_DATA_ROOT)"
        )
