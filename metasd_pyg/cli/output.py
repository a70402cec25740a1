"""Printing results: one JSON document, or human-readable text, on stdout."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from metasd_pyg.errors import ConfigError
from metasd_pyg.storage.jsonable import to_jsonable


def dump_json(result: Any, stream: IO[str]) -> None:
    """Write ``result`` as exactly one JSON document (non-finite floats -> null).

    Args:
        result: JSON-like result.
        stream: Where to write (the real stdout).
    """
    stream.write(json.dumps(to_jsonable(result), indent=2, allow_nan=False) + "\n")
    stream.flush()


def number(value: Any, digits: int = 4) -> str:
    """Compact number format for text tables ('-' for missing).

    Args:
        value: A number or ``None``.
        digits: Decimals of floats.
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def text_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain aligned text table.

    Args:
        rows: Cells (already formatted or numbers).
        header: Column names.
    """
    cells = [[str(h) for h in header]] + [[c if isinstance(c, str) else number(c) for c in r]
                                          for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for k, r in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def human_bytes(n: int | float | None) -> str:
    """``12.3 MiB``-style size.

    Args:
        n: Bytes.
    """
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def check_output(path: str | Path, overwrite: bool, suffixes: tuple[str, ...] = ()) -> Path:
    """Refuse to replace an existing file without ``--overwrite``; check its folder.

    Args:
        path: The output file.
        overwrite: Whether replacing is allowed.
        suffixes: Accepted suffixes (empty: any).
    """
    out = Path(path)
    if suffixes and out.suffix.lower() not in suffixes:
        raise ConfigError(f"{out}: expected a file name ending in {' or '.join(suffixes)}")
    if out.is_dir():
        raise ConfigError(f"{out} is a directory; give a file name")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; pass --overwrite to replace it")
    if not out.parent.exists():
        raise ConfigError(f"folder {out.parent} does not exist")
    return out
