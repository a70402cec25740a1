"""Facts about the machine every layer may ask (no dependency on the rest of the library)."""

from __future__ import annotations

import os


def physical_memory_bytes() -> int | None:
    """This machine's physical memory (``None`` where it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


__all__ = ["physical_memory_bytes"]
