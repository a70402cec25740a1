"""Command-line interface: the ``metasd-pyg`` console script."""

from metasd_pyg.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
