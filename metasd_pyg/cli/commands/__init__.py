"""Subcommands of the ``metasd-pyg`` console script (one module each)."""
