r"""ogbl-wikikg2 from ogb's layout (ogb's ``LinkPropPredDataset`` or a chunked reader), safely.

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

**Two readers of the same files.** ogb's ``LinkPropPredDataset`` holds
every file whole in memory, several times over (``torch.load`` reads a split
file's pickle whole, then copies each array out of it; pandas parses the
whole edge CSV): at the full size of ogbl-wikikg2 it fails under a 15 GB
address-space cap (about 2.2 times the split files' 9.7 GB would be needed,
by its measured peak at a quarter of the size; see ``docs/data.md``). So
:func:`load_ogbl_wikikg2` uses ogb's own loader only when the split files
are small (:data:`OGB_READER_MAX_BYTES` in total) and otherwise its own
chunked reader (``reader="chunked"``): the gzip CSV files are parsed
:data:`CSV_ROWS` rows at a time, and the split files are decoded by
:func:`~metasd_pyg.data.ogb_split.read_split_file`, which interprets their
pickle without executing it (numpy's array reconstruction and nothing else,
the same allow-list as :func:`check_pickle`) straight into int32 arrays. Both
readers give the same graph (tested), and both check the arrays the same way
(:func:`check_splits`).

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
import gzip
import hashlib
import importlib
import io
import logging
import os
import shutil
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from metasd_pyg.data.archive import SafeArchive
from metasd_pyg.data.build import drop_duplicates
from metasd_pyg.data.cache import load_graph, save_graph
from metasd_pyg.data.graph import KnowledgeGraph
from metasd_pyg.data.ogb_split import read_split_file
from metasd_pyg.data.ogb_writer import OGB_DIR, RELEASE_FILE
from metasd_pyg.data.paths import DATA_ROOT_ENV
from metasd_pyg.errors import ConfigError, DataError

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

#: ``reader="auto"`` uses ogb's loader up to this total size of the split files.
OGB_READER_MAX_BYTES = 256 << 20

#: Readers of :func:`load_ogbl_wikikg2`.
READERS: tuple[str, ...] = ("auto", "ogb", "chunked")

#: Rows per chunk when the chunked reader parses a gzip CSV file.
CSV_ROWS = 2_000_000

_INT32_MAX = int(np.iinfo(np.int32).max)


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


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _run_ogb(root: Path, folder: Path,
             progress: bool) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """ogb's graph dict and edge split, read from ``root`` (``folder``: named in errors)."""
    from ogb.linkproppred import LinkPropPredDataset

    sink = sys.stderr if progress else io.StringIO()
    safe = list(_numpy_allowlist().values())
    try:
        # ogb prints to stdout and draws tqdm bars on stderr: both follow ``progress``
        quiet = contextlib.nullcontext() if progress else contextlib.redirect_stderr(sink)
        with contextlib.redirect_stdout(sink), quiet, torch.serialization.safe_globals(safe):
            ds = LinkPropPredDataset("ogbl-wikikg2", root=str(root))
            return ds[0], ds.get_edge_split()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{folder / 'raw'}: a gzip file is truncated or corrupt "
                        f"({_first_line(exc)})") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{folder / 'raw'}: ogb cannot parse the raw files "
                        f"({_first_line(exc)})") from None


def _csv_chunks(path: Path, columns: int) -> Iterator[np.ndarray]:
    """``[rows, columns]`` int64 blocks of a header-less gzip CSV, :data:`CSV_ROWS` at a time."""
    try:
        with pd.read_csv(path, header=None, dtype=np.int64, chunksize=CSV_ROWS,
                         compression="gzip") as frames:
            for frame in frames:
                if frame.shape[1] != columns:
                    raise DataError(f"{path}: expected {columns} column(s), found "
                                    f"{frame.shape[1]}")
                yield frame.to_numpy()
    except pd.errors.EmptyDataError:
        return
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip file ({_first_line(exc)})") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: not a CSV file of integers ({_first_line(exc)})") from None


def _count(path: Path) -> int:
    """The single non-negative integer of ``num-node-list`` / ``num-edge-list``."""
    values = np.concatenate([c.ravel() for c in _csv_chunks(path, 1)] or [np.zeros(0, np.int64)])
    if values.size != 1 or values[0] < 0:
        raise DataError(f"{path}: expected one non-negative count (a single graph), found "
                        f"{values.size} value(s)")
    return int(values[0])


def _read_chunked(folder: Path) -> tuple[int, int, dict[str, dict[str, np.ndarray]]]:
    """``(num_entities, max train relation or -1, split arrays)`` read in chunks.

    Reads what ogb reads (and checks it: row counts, id ranges), never more
    than :data:`CSV_ROWS` CSV rows or one array of a split file at a time.
    Arrays are int32 when the entity count is below 2**31.
    """
    raw = folder / "raw"
    E = _count(raw / "num-node-list.csv.gz")
    M = _count(raw / "num-edge-list.csv.gz")
    rows = 0
    for block in _csv_chunks(raw / "edge.csv.gz", 2):
        if block.size and (int(block.min()) < 0 or int(block.max()) >= E):
            bad = int(block.min()) if int(block.min()) < 0 else int(block.max())
            raise DataError(f"{raw / 'edge.csv.gz'}: entity id {bad} outside [0, {E})")
        rows += len(block)
    rel_max, rel_rows = -1, 0
    for block in _csv_chunks(raw / "edge_reltype.csv.gz", 1):
        if block.size and int(block.min()) < 0:
            raise DataError(f"{raw / 'edge_reltype.csv.gz'}: negative relation id "
                            f"{int(block.min())}")
        rel_max = max(rel_max, int(block.max(initial=-1)))
        rel_rows += len(block)
    for name, n in (("edge.csv.gz", rows), ("edge_reltype.csv.gz", rel_rows)):
        if n != M:
            raise DataError(f"{raw / name}: {n:,} rows, num-edge-list.csv.gz says {M:,}")
    split_dir = folder / "split" / "time"
    splits = {s: read_split_file(split_dir / f"{s}.pt", int32=E <= _INT32_MAX)
              for s in ("train", "valid", "test")}
    return E, rel_max, splits


def check_splits(folder: Path, splits: dict[str, dict[str, Any]], num_entities: int) -> None:
    """Refuse split arrays that do not describe triples and candidates of ``num_entities``.

    Args:
        folder: Dataset folder (named in the messages).
        splits: ``{"train": {"head": ..., ...}, "valid": ..., "test": ...}``
            as ogb's ``get_edge_split`` returns them (or the chunked reader).
        num_entities: Entity count (``raw/num-node-list.csv.gz``).

    Raises:
        DataError: a missing array, ``head`` / ``relation`` / ``tail`` of
            different lengths or not 1-D, candidates not ``[N, C]`` with one
            row per triple, an entity id outside ``[0, num_entities)`` or a
            negative relation id.
    """
    E = num_entities
    for name, d in splits.items():
        f = folder / "split" / "time" / f"{name}.pt"
        need = ("head", "relation", "tail") + (() if name == "train" else ("head_neg", "tail_neg"))
        missing = [k for k in need if k not in d]
        if missing:
            raise DataError(f"{f}: missing array {missing[0]!r} (has {', '.join(sorted(d))})")
        a = {k: np.asarray(d[k]) for k in need}
        cols = [a[k].shape for k in ("head", "relation", "tail")]
        if any(len(c) != 1 for c in cols) or len({c[0] for c in cols}) != 1:
            raise DataError(f"{f}: head, relation and tail must be 1-D arrays of one length, "
                            f"got shapes {', '.join(str(c) for c in cols)}")
        N = cols[0][0]
        for k in need[3:]:
            if a[k].ndim != 2 or a[k].shape[0] != N or a[k].shape[1] < 1:
                raise DataError(f"{f}: {k} has shape {a[k].shape}, expected ({N}, C) with C >= 1 "
                                "(one row of candidates per triple)")
        for k in need:
            x = a[k]
            if not np.issubdtype(x.dtype, np.integer):
                raise DataError(f"{f}: {k} has dtype {x.dtype}, expected integers")
            if not x.size:
                continue
            lo, hi = int(x.min()), int(x.max())
            if k == "relation":
                if lo < 0:
                    raise DataError(f"{f}: relation holds negative id {lo}")
            elif lo < 0 or hi >= E:
                raise DataError(f"{f}: {k} holds entity id {lo if lo < 0 else hi} outside "
                                f"[0, {E})")


def _column(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


def _graph_from_arrays(folder: Path, E: int, rel_max: int,
                       splits: dict[str, dict[str, Any]]) -> KnowledgeGraph:
    """The :class:`KnowledgeGraph` of checked split arrays (candidates int32 if ids fit)."""
    check_splits(folder, splits, E)
    narrow = E <= _INT32_MAX
    tensors: dict[str, torch.Tensor] = {}
    cands: dict[str, dict[str, torch.Tensor]] = {}
    for name in ("train", "valid", "test"):
        d = splits[name]
        t = torch.empty(len(d["head"]), 3, dtype=torch.long)
        for col, key in enumerate(("head", "relation", "tail")):
            t[:, col] = _column(np.asarray(d[key]))
        tensors[name] = t
        if name != "train":
            cands[name] = {}
            for key in ("head_neg", "tail_neg"):
                x = np.asarray(d[key])
                cands[name][key] = _column(x.astype(np.int32, copy=False) if narrow else
                                           x.astype(np.int64, copy=False))
    R = 1 + max(rel_max, *(int(t[:, 1].max()) for t in tensors.values() if t.numel()))
    R = max(R, _table_rows(folder / "mapping" / "reltype2relid.csv.gz"))
    rel_names = _names(folder, R, "reltype2relid.csv.gz", "reltype", "rel id")
    train, n_dup = drop_duplicates(tensors["train"], E, R)
    return KnowledgeGraph(
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


def _split_bytes(folder: Path) -> int:
    return sum((folder / "split" / "time" / f"{s}.pt").stat().st_size
               for s in ("train", "valid", "test"))


def load_ogbl_wikikg2(data_root: Path, cache_dir: Path, *, progress: bool = True,
                      reader: str = "auto") -> KnowledgeGraph:
    """ogbl-wikikg2 as a :class:`KnowledgeGraph` with valid/test candidates.

    Triples are int64 (as every :class:`KnowledgeGraph`); candidates are
    int32 when the entity count is below 2**31 (int64 otherwise). The graph
    is cached (:mod:`metasd_pyg.data.cache`); a later call with unchanged
    files reads only the cache.

    Memory (first load): with the chunked reader, the graph (candidates at
    int32) plus chunks of 16 MiB / :data:`CSV_ROWS` rows; with ogb's loader,
    several copies of every file (see the module docstring).

    Args:
        data_root: Folder holding ``ogbl_wikikg2/``, ``wikikg-v2/`` or
            ``wikikg-v2.zip`` (read only).
        cache_dir: Cache dir (ogb's processed file, our cached tensors).
        progress: Forward ogb's messages to stderr.
        reader: ``"ogb"`` (ogb's ``LinkPropPredDataset``), ``"chunked"``
            (our reader of the same files) or ``"auto"``: ogb's while the
            split files total at most :data:`OGB_READER_MAX_BYTES`, else
            chunked.

    Raises:
        DataError: files missing, unreadable, truncated, refused (pickle
            globals beyond numpy's arrays) or inconsistent (see
            :func:`check_splits`).
    """
    if reader not in READERS:
        raise ConfigError(f"unknown ogbl-wikikg2 reader {reader!r}; expected one of "
                          f"{', '.join(READERS)}")
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
    if reader == "auto":
        reader = "ogb" if _split_bytes(folder) <= OGB_READER_MAX_BYTES else "chunked"
    logger.debug("reading %s with the %s reader", folder, reader)
    if reader == "chunked":
        E, rel_max, splits = _read_chunked(folder)
    else:
        for split in ("train", "valid", "test"):
            check_pickle(folder / "split" / "time" / f"{split}.pt")
        root = _ogb_root(folder, key, cache_dir)
        # ogb saves its processed graph with pickle protocol 4, which torch's weights-only
        # unpickler cannot read back: always let ogb rebuild it from the raw CSV files.
        (root / OGB_DIR / "processed" / "data_processed").unlink(missing_ok=True)
        graph, splits = _run_ogb(root, folder, progress)
        E = int(graph["num_nodes"])
        rel_max = int(np.asarray(graph["edge_reltype"]).max(initial=-1))
    kg = _graph_from_arrays(folder, E, rel_max, splits)
    del splits
    save_graph(kg, cache_dir, stem)
    return kg
