"""Storage: how metasd-pyg writes files, below everything that writes them.

The lowest layer next to :mod:`metasd_pyg.errors`: it imports no other
metasd-pyg package, so the report, the exporter and the run pipeline can all
stand on it.

* :mod:`~metasd_pyg.storage.atomic`: atomic file writes (never a half-written file);
* :mod:`~metasd_pyg.storage.jsonable`: tensors, numpy values and paths to plain JSON;
* :mod:`~metasd_pyg.storage.versions`: the software versions recorded with a run;
* :mod:`~metasd_pyg.storage.folder`: the run-folder layout, :class:`RunFolder`.
"""

from metasd_pyg.storage.atomic import atomic_write, atomic_write_json, atomic_write_text
from metasd_pyg.storage.folder import RUN_FORMAT, RUN_FORMAT_VERSION, RunFolder
from metasd_pyg.storage.jsonable import to_jsonable
from metasd_pyg.storage.versions import collect_versions

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
