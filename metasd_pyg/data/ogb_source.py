r"""ogbl-wikikg2 through ``ogb.linkproppred.LinkPropPredDataset``, offline and safely.

Two hazards of ogb 1.3.x are avoided:

* **Interactive prompts.** ogb calls ``input()`` when its dataset folder
  lacks ``RELEASE_v1.txt`` and (via its download check) when the raw files
  are missing. We check every file ogb will need *before* calling it and
  raise a ``DataError`` naming the missing ones, so ogb never prompts or
  downloads.
* **Unsafe unpickling.** ogb stores numpy arrays with ``torch.save`` and
  reads them with ``torch.load``, whose default is ``weights_only=True``
  since torch 2.6. ogb's own ``processed/data_processed`` is written with
  pickle protocol 4, which the weights-only unpickler cannot read at all, so
  we delete it (it lives in our cache) before every ogb call and ogb
  re-reads the raw CSV files instead. We inspect the split pickles with
  ``torch.serialization.get_unsafe_globals_in_checkpoint`` and refuse files
  that need anything beyond numpy's array reconstruction; the load itself
  runs inside ``torch.serialization.safe_globals`` with only those numpy
  types allow-listed (never ``weights_only=False``).

The user's data root is only read: ogb runs on a folder in the cache dir
whose ``raw/`` and ``split/`` are symbolic links to (or, where links are not
possible, copies of) the user's files, so ogb's ``processed/`` lands in the
cache. Sources accepted in the data root: ``ogbl_wikikg2/`` (ogb's own
layout), ``wikikg-v2/`` (the extracted download) or ``wikikg-v2.zip``
(extracted safely into the cache). The processed graph is cached keyed by
the source files' sizes and modification times.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from metasd_pyg.data.archive import SafeArchive
from metasd_pyg.data.build import drop_duplicates
from metasd_pyg.data.cache import load_graph, save_graph
from metasd_pyg.data.graph import KnowledgeGraph
from metasd_pyg.data.ogb_writer import OGB_DIR, RELEASE_FILE
from metasd_pyg.data.paths import DATA_ROOT_ENV
from metasd_pyg.errors import DataError

logger = logging.getLogger(__name__)

#: Files ogb needs, relative to the dataset folder.
REQUIRED_FILES: tuple[str, ...] = (
    RELEASE_FILE,
    "raw/edge.csv.gz",
    "raw/edge_reltype.csv.gz",
    "raw/num-node-list.csv.gz",
    "raw/num-edge-list.csv.gz",
    "split/time/train.pt",
    "split/time/valid.pt",
    "split/time/test.pt",
)

#: Name of the ogb download archive and of the folder it extracts to.
OGB_ZIP = "wikikg-v2.zip"
OGB_ZIP_DIR = "wikikg-v2"

DOWNLOAD_URL = "http://snap.stanford.edu/ogb/data/linkproppred/wikikg-v2.zip"


def _numpy_allowlist() -> dict[str, Any]:
    """Pickle globals allowed in ogb's files: numpy array reconstruction only."""
    try:
        core = importlib.import_module("numpy._core.multiarray")  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        core = importlib.import_module("numpy.core.multiarray")
    allowed: dict[str, Any] = {
        "numpy._core.multiarray._reconstruct": core._reconstruct,
        "numpy.core.multiarray._reconstruct": (core._reconstruct,
                                               "numpy.core.multiarray._reconstruct"),
        "numpy.ndarray": np.ndarray,
        "numpy.dtype": np.dtype,
    }
    for cls in ("Int64DType", "Int32DType", "Float32DType", "Float64DType", "BoolDType"):
        allowed[f"numpy.dtypes.{cls}"] = getattr(np.dtypes, cls)
    return allowed


def check_pickle(path: Path) -> None:
    """Refuse a ``torch.save`` file whose pickle needs non-numpy globals.

    Args:
        path: File to inspect (nothing is unpickled).
    """
    allowed = _numpy_allowlist()
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as exc:  # corrupt zip/pickle container
        raise DataError(f"{path}: not a readable torch file ({exc})") from None
    bad = [g for g in needed if g not in allowed]
    if bad:
        raise DataError(
            f"{path}: refusing to unpickle {bad[0]!r} (only numpy arrays are allowed in "
            "ogbl-wikikg2 files)"
        )


def _locate(root: Path, cache_dir: Path) -> Path | None:
    """Dataset folder holding ogb's files, extracting ``wikikg-v2.zip`` if needed."""
    for sub in (OGB_DIR, OGB_ZIP_DIR):
        if (root / sub).is_dir():
            return root / sub
    zpath = root / OGB_ZIP
    if zpath.is_file():
        st = zpath.stat()
        key = hashlib.sha256(f"{zpath.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
        target = cache_dir / "extract" / f"wikikg-v2-{key.hexdigest()[:16]}"
        if not target.is_dir():
            with SafeArchive(zpath) as arc:
                arc.extract_all(target)
        inner = target / OGB_ZIP_DIR
        return inner if inner.is_dir() else target
    return None


def _fingerprint(folder: Path) -> str:
    h = hashlib.sha256()
    for rel in REQUIRED_FILES[1:]:
        st = (folder / rel).stat()
        h.update(f"{(folder / rel).resolve()}|{st.st_size}|{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.symlink(src.resolve(), dst, target_is_directory=src.is_dir())
    except OSError:
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)


def _ogb_root(folder: Path, key: str, cache_dir: Path) -> Path:
    """A root in the cache whose ``ogbl_wikikg2/`` points at ``folder``'s files."""
    root = cache_dir / "ogb" / key[:16]
    ds = root / OGB_DIR
    (ds / "processed").mkdir(parents=True, exist_ok=True)
    for name in ("raw", "split"):
        if not (ds / name).exists():
            _link_or_copy(folder / name, ds / name)
    if not (ds / RELEASE_FILE).exists():
        shutil.copy2(folder / RELEASE_FILE, ds / RELEASE_FILE)
    return root


def _names(folder: Path, count: int, fname: str, idx_col: str, name_col: str) -> list[str] | None:
    path = folder / "mapping" / fname
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, dtype={name_col: str}, keep_default_na=False)
        frame = frame.sort_values(idx_col)
        if len(frame) != count or not np.array_equal(frame[idx_col].to_numpy(), np.arange(count)):
            logger.warning("%s does not list ids 0..%d; names ignored", path, count - 1)
            return None
        return [str(x) for x in frame[name_col].tolist()]
    except (KeyError, ValueError, OSError) as exc:
        logger.warning("cannot read %s (%s); names ignored", path, exc)
        return None


def _table_rows(path: Path) -> int:
    """Rows of a mapping table (0 if absent or unreadable)."""
    try:
        return len(pd.read_csv(path, usecols=[0])) if path.is_file() else 0
    except (ValueError, OSError):
        return 0


def _as_long(x: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.long)


def _run_ogb(root: Path, progress: bool) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    from ogb.linkproppred import LinkPropPredDataset

    sink = sys.stderr if progress else io.StringIO()
    safe = list(_numpy_allowlist().values())
    with contextlib.redirect_stdout(sink), torch.serialization.safe_globals(safe):
        ds = LinkPropPredDataset("ogbl-wikikg2", root=str(root))
        return ds[0], ds.get_edge_split()


def load_ogbl_wikikg2(data_root: Path, cache_dir: Path, *, progress: bool = True) -> KnowledgeGraph:
    """ogbl-wikikg2 as a :class:`KnowledgeGraph` with valid/test candidates.

    Args:
        data_root: Folder holding ``ogbl_wikikg2/``, ``wikikg-v2/`` or
            ``wikikg-v2.zip`` (read only).
        cache_dir: Cache dir (ogb's processed file, our cached tensors).
        progress: Forward ogb's messages to stderr.
    """
    folder = _locate(data_root, cache_dir)
    if folder is None:
        raise DataError(
            f"ogbl-wikikg2 not found: looked in data root {data_root} for {OGB_DIR}/, "
            f"{OGB_ZIP_DIR}/ or {OGB_ZIP}; download {DOWNLOAD_URL} (about 1 GB) into it, or "
            f"point ${DATA_ROOT_ENV} / --data-root (root=...) at the folder that holds it"
        )
    missing = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(
            f"{folder}: incomplete ogbl-wikikg2 folder, missing {', '.join(missing)} "
            f"(ogb would prompt or re-download); replace it with a full copy of {OGB_ZIP}"
        )
    key = _fingerprint(folder)
    stem = f"ogb-ogbl-wikikg2-{key[:16]}"
    cached = load_graph(cache_dir, stem)
    if cached is not None:
        return cached
    for split in ("train", "valid", "test"):
        check_pickle(folder / "split" / "time" / f"{split}.pt")
    root = _ogb_root(folder, key, cache_dir)
    # ogb saves its processed graph with pickle protocol 4, which torch's weights-only
    # unpickler cannot read back: always let ogb rebuild it from the raw CSV files.
    (root / OGB_DIR / "processed" / "data_processed").unlink(missing_ok=True)
    graph, edge_split = _run_ogb(root, progress)
    E = int(graph["num_nodes"])
    tensors = {}
    cands: dict[str, dict[str, torch.Tensor]] = {}
    for name in ("train", "valid", "test"):
        d = edge_split[name]
        tensors[name] = torch.stack(
            [_as_long(d["head"]), _as_long(d["relation"]), _as_long(d["tail"])], dim=1
        )
        if name != "train":
            cands[name] = {"head_neg": _as_long(d["head_neg"]), "tail_neg": _as_long(d["tail_neg"])}
    R = 1 + max(int(np.asarray(graph["edge_reltype"]).max(initial=-1)),
                *(int(t[:, 1].max()) for t in tensors.values() if t.numel()))
    R = max(R, _table_rows(folder / "mapping" / "reltype2relid.csv.gz"))
    rel_names = _names(folder, R, "reltype2relid.csv.gz", "reltype", "rel id")
    train, n_dup = drop_duplicates(tensors["train"], E, R)
    kg = KnowledgeGraph(
        name="ogbl-wikikg2",
        train=train,
        valid=tensors["valid"],
        test=tensors["test"],
        num_entities=E,
        num_relations=R,
        entity_names=_names(folder, E, "nodeidx2entityid.csv.gz", "node idx", "entity id"),
        relation_names=rel_names,
        candidates=cands,
        num_duplicates={"train": n_dup, "valid": 0, "test": 0},
        source=str(folder),
    )
    save_graph(kg, cache_dir, stem)
    return kg
