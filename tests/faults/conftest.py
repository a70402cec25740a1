"""Counts of fuzzed cases, reported at the end of the test run."""

from __future__ import annotations

import os
from collections import Counter

#: Cases run per fuzz target (filled by tests/faults/test_fuzz.py).
FUZZ_CASES: Counter[str] = Counter()
#: Examples per fuzz target: ``METASD_FUZZ_EXAMPLES`` for a longer run.
FUZZ_EXAMPLES = int(os.environ.get("METASD_FUZZ_EXAMPLES", "100"))


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if FUZZ_CASES:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(FUZZ_CASES.items()))
        terminalreporter.write_line(
            f"fuzz: {sum(FUZZ_CASES.values())} cases ({parts}); "
            f"METASD_FUZZ_EXAMPLES={FUZZ_EXAMPLES} per target")
