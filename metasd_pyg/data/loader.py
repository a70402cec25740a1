"""One entry point for every dataset: :func:`load_dataset`.

Names: ``fb15k-237`` and ``wn18rr`` (through PyG), ``ogbl-wikikg2`` (through
OGB), ``umls``, ``kinship``, ``nations`` (text archives), ``synthetic``
(built-in generator, optionally ``synthetic:entities=..,triples=..``), or a
path to a folder / ``.tar.gz`` / ``.zip`` holding ``train.txt``, ``valid.txt``
and ``test.txt``.

Where data is read from: the **data root** (argument ``root``, else
``$METASD_DATA_ROOT``, else ``~/.cache/metasd-pyg-data``), which is never
written to. Derived files go to the **cache dir** (argument ``cache_dir``,
else ``$METASD_CACHE_DIR``, else ``~/.cache/metasd-pyg``). Processed graphs are
cached there (safetensors + JSON) under a key derived from the source's
checksum, so a reload costs a checksum and a file read.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from metasd_pyg.data.archive import SPLIT_FILES, is_archive
from metasd_pyg.data.cache import load_graph, save_graph
from metasd_pyg.data.checksums import FILE_SHA256
from metasd_pyg.data.graph import SPLITS, KnowledgeGraph
from metasd_pyg.data.paths import (
    CACHE_DIR_ENV,
    DATA_ROOT_ENV,
    resolve_cache_dir,
    resolve_data_root,
)
from metasd_pyg.data.pyg_source import PYG_DATASETS, build_with_pyg, download_raw
from metasd_pyg.data.sources import (
    Located,
    find_in_root,
    locate_archive,
    locate_folder,
    split_key,
)
from metasd_pyg.data.text import graph_from_columns, parse_split
from metasd_pyg.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

#: Known dataset names (also accepted: any dataset path, ``synthetic:key=value,...``).
DATASET_NAMES: tuple[str, ...] = (
    "synthetic", "fb15k-237", "wn18rr", "ogbl-wikikg2", "umls", "kinship", "nations",
)

#: File/folder base names looked for in the data root, by dataset.
_FILE_STEMS: dict[str, tuple[str, ...]] = {
    "fb15k-237": ("FB15k-237", "fb15k237"),
    "wn18rr": ("WN18RR",),
    "umls": ("umls",),
    "kinship": ("kinship",),
    "nations": ("nations",),
}

def _stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _build(dataset: str, located: Located, cache_dir: Path, *, pyg: bool,
           progress: bool) -> KnowledgeGraph:
    stem = _stem(f"{'pyg' if pyg else 'text'}-{dataset}-{located.key[:16]}")
    cached = load_graph(cache_dir, stem)
    if cached is not None:
        logger.info("loaded %s from cache %s", dataset, cache_dir / "processed" / stem)
        return cached
    raw = located.read()
    source = f"{located.path}" + (" (sha256 verified)" if located.verified else "")
    if pyg:
        graph = build_with_pyg(dataset, raw, located.describe, located.key, cache_dir, source,
                               progress=progress)
    else:
        cols = {s: parse_split(raw[s], located.describe(f"{s}.txt")) for s in SPLITS}
        graph = graph_from_columns(dataset, cols, source)
    save_graph(graph, cache_dir, stem)
    return graph


def _missing(dataset: str, root: Path, note: str = "") -> DataError:
    stems = _FILE_STEMS[dataset]
    looked = ", ".join(f"{stems[0]}{s}" for s in (".tar.gz", ".zip")) + f" or folder {stems[0]}/"
    return DataError(
        f"{dataset} not found: looked in data root {root} for {looked} holding train.txt, "
        f"valid.txt, test.txt (names case-insensitive){note}; put the archive there, or point "
        f"${DATA_ROOT_ENV} / --data-root (root=...) at the folder that holds it"
    )


def _load_known(dataset: str, root: Path, cache_dir: Path, *, progress: bool,
                download: bool) -> KnowledgeGraph:
    pyg = dataset in PYG_DATASETS
    located = find_in_root(root, _FILE_STEMS[dataset], dataset)
    if located is not None:
        return _build(dataset, located, cache_dir, pyg=pyg, progress=progress)
    if not (pyg and download):
        raise _missing(dataset, root)
    # Downloaded files must match the known checksums, so their cache key is known upfront.
    key = split_key([FILE_SHA256[dataset][f] for f in SPLIT_FILES])
    stem = _stem(f"pyg-{dataset}-{key[:16]}")
    cached = load_graph(cache_dir, stem)
    if cached is not None:
        return cached
    try:
        raw = download_raw(dataset, cache_dir)
    except DataError as exc:
        raise _missing(dataset, root, f"; {exc}") from None
    graph = build_with_pyg(dataset, raw, lambda m: f"download:{m}", key, cache_dir,
                           "downloaded by PyG (sha256 verified)", progress=progress)
    save_graph(graph, cache_dir, stem)
    return graph


def load_path(path: Path, cache_dir: Path) -> KnowledgeGraph:
    """Load a folder or archive holding ``train.txt``, ``valid.txt``, ``test.txt``.

    Args:
        path: Folder (the files directly or in ``raw/``) or archive.
        cache_dir: Cache dir for the processed tensors.
    """
    if path.is_dir():
        located = locate_folder(path)
        name = path.name
    elif is_archive(path.name):
        located = locate_archive(path)
        name = path.name
        for suf in (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip"):
            if name.lower().endswith(suf):
                name = name[: -len(suf)]
                break
    else:
        raise DataError(
            f"{path}: not a folder or an archive (.tar.gz, .tgz, .tar.bz2, .tar.xz, .tar, .zip)"
        )
    return _build(name, located, cache_dir, pyg=False, progress=False)


def load_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    download: bool = True,
) -> KnowledgeGraph:
    r"""Load a knowledge graph by name or path.

    Args:
        name: One of :data:`DATASET_NAMES` (case-insensitive), a synthetic
            spec such as ``"synthetic:entities=5000,triples=60000,relations=20,seed=1"``
            (see :func:`~metasd_pyg.data.synthetic.parse_synthetic_spec`), or
            a path to a folder / ``.tar.gz`` / ``.zip`` with the split files.
        root: Data root holding archives/folders (read only). Default:
            ``$METASD_DATA_ROOT``, else ``~/.cache/metasd-pyg-data``.
        cache_dir: Where extracted and processed files go. Default:
            ``$METASD_CACHE_DIR``, else ``~/.cache/metasd-pyg``.
        progress: Report slow steps (PyG/OGB processing) on stderr.
        download: For ``fb15k-237`` / ``wn18rr`` missing from the data root,
            try PyG's download (into the cache dir, checksums verified).

    Returns:
        The :class:`KnowledgeGraph`, ids consistent across splits.

    Raises:
        ConfigError: unknown name or bad synthetic spec.
        DataError: data missing, malformed, or failing verification.
    """
    text = str(name).strip()
    low = text.lower()
    data_root = resolve_data_root(root)
    cache = resolve_cache_dir(cache_dir)
    if low == "synthetic" or low.startswith("synthetic:"):
        from metasd_pyg.data.synthetic import synthetic_from_spec

        return synthetic_from_spec(text)
    if low in _FILE_STEMS:
        return _load_known(low, data_root, cache, progress=progress, download=download)
    if low == "ogbl-wikikg2":
        from metasd_pyg.data.ogb_source import load_ogbl_wikikg2

        return load_ogbl_wikikg2(data_root, cache, progress=progress)
    path = Path(text).expanduser()
    if path.exists():
        return load_path(path, cache)
    if os.sep in text or "/" in text or is_archive(text):
        raise DataError(f"{text}: no such file or folder")
    raise ConfigError(
        f"unknown dataset {text!r}; known: {', '.join(DATASET_NAMES)} (or a path to a folder, "
        ".tar.gz or .zip holding train.txt, valid.txt, test.txt)"
    )


__all__ = ["CACHE_DIR_ENV", "DATASET_NAMES", "DATA_ROOT_ENV", "load_dataset", "load_path"]
