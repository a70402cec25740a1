"""Render a metasd-pyg HTML report to PNG with headless Chromium (to look at it).

Usage::

    python benchmarks/screenshot_report.py runs/quickstart/report.html \
        --out /tmp/report.png [--width 1280] [--height 7000] [--chromium chromium]

Uses Debian's ``chromium`` package (``apt-get install -y chromium``). The
browser runs with a throw-away profile, no network services and no GPU; the
report itself is self-contained, so nothing is fetched. The window height is
the height of the screenshot: make it large enough for the whole page.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def screenshot(html: Path, out: Path, width: int, height: int, chromium: str) -> None:
    """Render ``html`` to ``out`` (PNG) in a ``width`` x ``height`` window.

    Args:
        html: The report.
        out: PNG to write.
        width: Window width in pixels.
        height: Window height in pixels.
        chromium: Browser executable.
    """
    exe = shutil.which(chromium)
    if exe is None:
        raise SystemExit(f"{chromium}: not found (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="metasd-chromium-") as profile:
        cmd = [
            exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
            f"--screenshot={out.resolve()}", f"--window-size={width},{height}",
            html.resolve().as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0 or not out.is_file():
        raise SystemExit(f"chromium failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="report HTML file")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=7000)
    parser.add_argument("--chromium", default="chromium")
    args = parser.parse_args(argv)
    if not args.html.is_file():
        print(f"error: {args.html} does not exist", file=sys.stderr)
        return 1
    screenshot(args.html, args.out, args.width, args.height, args.chromium)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
