"""Run folders: resolved configuration, versions, metrics log, checkpoints, results."""

from metasd_pyg.runs.atomic import atomic_write, atomic_write_json, atomic_write_text, to_jsonable
from metasd_pyg.runs.folder import RUN_FORMAT, RUN_FORMAT_VERSION, RunFolder
from metasd_pyg.runs.versions import collect_versions

__all__ = [
    "RUN_FORMAT",
    "RUN_FORMAT_VERSION",
    "RunFolder",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "collect_versions",
    "to_jsonable",
]
