"""FB15k-237 and WN18RR through ``torch_geometric.datasets``, with names and stable ids.

PyG's two classes differ: ``FB15k_237`` is one dataset object per split,
``WordNet18RR`` one graph with ``train_mask`` / ``val_mask`` / ``test_mask``
(and its edges sorted). Both drop the entity names. This module hides the
difference and recovers the names:

* We write the split files (normalised: LF line endings, no trailing
  whitespace or blank lines) into ``<cache>/pyg/<name>-<key>/raw/`` so PyG
  finds them and never downloads; PyG then processes them as usual.
* ``FB15k_237`` numbers entities by first appearance, line by line (head,
  then tail) over train, valid, test, with one dictionary shared by all
  splits; relations likewise. ``WordNet18RR`` numbers entities per file,
  all heads first then all tails, over train, valid, test; relations come
  from its fixed ``edge2id`` table. We rebuild the same numbering from the
  text and **check** it: the triples PyG returns must equal ours (as a
  multiset per split), otherwise a ``DataError`` is raised.

The returned ids are PyG's, consistent across splits.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import urllib.error
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from metasd_pyg.data.archive import SPLIT_FILES
from metasd_pyg.data.build import assemble
from metasd_pyg.data.cache import atomic_write_bytes
from metasd_pyg.data.graph import SPLITS, KnowledgeGraph
from metasd_pyg.data.sources import verify_known_files
from metasd_pyg.data.text import Columns, encode_columns, first_appearance_ids, parse_split
from metasd_pyg.errors import DataError

#: Datasets served through PyG.
PYG_DATASETS: tuple[str, ...] = ("fb15k-237", "wn18rr")


def _pyg_class(dataset: str) -> type:
    from torch_geometric.datasets import FB15k_237, WordNet18RR

    return FB15k_237 if dataset == "fb15k-237" else WordNet18RR


def _normalised(cols: Columns) -> bytes:
    h, r, t = cols
    lines = [f"{a}\t{b}\t{c}\n" for a, b, c in zip(h.tolist(), r.tolist(), t.tolist())]
    return "".join(lines).encode("utf-8")


def _keys(t: Tensor, E: int, R: int) -> Tensor:
    return torch.sort((t[:, 0] * R + t[:, 1]) * E + t[:, 2]).values


def _check_same(dataset: str, ours: dict[str, Tensor], theirs: dict[str, Tensor], E: int,
                R: int) -> None:
    for split in SPLITS:
        a, b = ours[split], theirs[split]
        if a.shape != b.shape or not torch.equal(_keys(a, E, R), _keys(b, E, R)):
            raise DataError(
                f"{dataset}: PyG's ids for the {split} split do not match the names recovered "
                "from the raw files (unsupported torch_geometric version?)"
            )


def _fb15k237(root: Path, columns: dict[str, Columns], source: str) -> KnowledgeGraph:
    cls = _pyg_class("fb15k-237")
    theirs = {}
    num_nodes = 0
    for split, pyg_split in zip(SPLITS, ("train", "val", "test")):
        d = cls(str(root), split=pyg_split)[0]
        theirs[split] = torch.stack([d.edge_index[0], d.edge_type, d.edge_index[1]], dim=1)
        num_nodes = int(d.num_nodes)
    ours, ent_names, rel_names = encode_columns(columns)
    E, R = len(ent_names), len(rel_names)
    if num_nodes != E:
        raise DataError(f"fb15k-237: PyG reports {num_nodes} entities, the raw files hold {E}")
    _check_same("fb15k-237", ours, theirs, E, R)
    return assemble("fb15k-237", theirs, E, R, entity_names=ent_names,
                    relation_names=rel_names, source=source)


def _wn18rr(root: Path, columns: dict[str, Columns], source: str,
            describe: Callable[[str], str]) -> KnowledgeGraph:
    cls = _pyg_class("wn18rr")
    edge2id: dict[str, int] = dict(cls.edge2id)  # type: ignore[attr-defined]
    for split in SPLITS:
        rels = columns[split][1]
        unknown = sorted(set(rels.tolist()) - set(edge2id))
        if unknown:
            raise DataError(
                f"{describe(split + '.txt')}: relation {unknown[0]!r} is not one of WN18RR's "
                f"{len(edge2id)} relations"
            )
    d = cls(str(root))[0]
    full = torch.stack([d.edge_index[0], d.edge_type, d.edge_index[1]], dim=1)
    theirs = {s: full[m] for s, m in zip(SPLITS, (d.train_mask, d.val_mask, d.test_mask))}
    parts = []
    for split in SPLITS:
        parts += [columns[split][0], columns[split][2]]
    codes, ent_names = first_appearance_ids(parts)
    rel_names = [n for n, _ in sorted(edge2id.items(), key=lambda kv: kv[1])]
    ours = {}
    for i, split in enumerate(SPLITS):
        rc = pd.Series(columns[split][1]).map(edge2id).to_numpy(dtype=np.int64)
        ours[split] = torch.from_numpy(np.stack([codes[2 * i], rc, codes[2 * i + 1]], axis=1))
    E, R = len(ent_names), len(rel_names)
    if int(d.num_nodes) != E:
        raise DataError(f"wn18rr: PyG reports {int(d.num_nodes)} entities, the raw files hold {E}")
    _check_same("wn18rr", ours, theirs, E, R)
    return assemble("wn18rr", theirs, E, R, entity_names=ent_names,
                    relation_names=rel_names, source=source)


def build_with_pyg(
    dataset: str,
    raw: dict[str, bytes],
    describe: Callable[[str], str],
    key: str,
    cache_dir: Path,
    source: str,
    *,
    progress: bool = True,
) -> KnowledgeGraph:
    """Process ``raw`` split bytes through PyG and return the graph with names.

    Args:
        dataset: ``"fb15k-237"`` or ``"wn18rr"``.
        raw: Bytes of the split files by split name.
        describe: Maps a member name (``train.txt``) to its display path.
        key: Content key; PyG's root is ``<cache_dir>/pyg/<dataset>-<key[:16]>``.
        cache_dir: Cache dir.
        source: Provenance string.
        progress: Let PyG report its processing on stderr.
    """
    columns = {s: parse_split(raw[s], describe(f"{s}.txt")) for s in SPLITS}
    root = cache_dir / "pyg" / f"{dataset}-{key[:16]}"
    for split, fname in zip(SPLITS, SPLIT_FILES):
        path = root / "raw" / fname
        if not path.is_file():
            atomic_write_bytes(path, _normalised(columns[split]))
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stderr(io.StringIO())
    with quiet:
        for attempt in range(2):
            try:
                if dataset == "fb15k-237":
                    return _fb15k237(root, columns, source)
                return _wn18rr(root, columns, source, describe)
            except DataError:
                raise
            except Exception:
                # A half-written processed/ folder from an interrupted run: redo once.
                if attempt:
                    raise
                shutil.rmtree(root / "processed", ignore_errors=True)
    raise AssertionError("unreachable")


def download_raw(dataset: str, cache_dir: Path) -> dict[str, bytes]:
    """Download the split files from PyG's URL and verify their known checksums.

    Args:
        dataset: ``"fb15k-237"`` or ``"wn18rr"``.
        cache_dir: Cache dir (a temporary folder is used under it).

    Raises:
        DataError: no network, or the downloaded files differ from the known ones.
    """
    from torch_geometric.data import download_url

    url = str(_pyg_class(dataset).url)  # type: ignore[attr-defined]
    (cache_dir / "downloads").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir / "downloads") as tmp:
        try:
            for fname in SPLIT_FILES:
                download_url(f"{url}/{fname}", tmp, log=False)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DataError(f"download of {dataset} from {url} failed ({exc})") from None
        raw = {f[:-4]: (Path(tmp) / f).read_bytes() for f in SPLIT_FILES}
    if not verify_known_files(dataset, raw):
        raise DataError(f"downloaded {dataset} files from {url} do not match the known checksums")
    return raw
