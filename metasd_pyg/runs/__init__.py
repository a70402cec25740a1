"""Runs: the application layer, one training run end to end into its run folder.

:func:`metasd_pyg.runs.pipeline.train_run` (what ``metasd-pyg train`` does)
stands on every other package. The run-folder layout itself lives below, in
:mod:`metasd_pyg.storage`; :class:`RunFolder` is re-exported here as the
name users of run folders know.
"""

from metasd_pyg.storage.folder import RunFolder

__all__ = ["RunFolder"]
