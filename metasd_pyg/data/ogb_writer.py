r"""Write a graph in the exact on-disk layout that ``ogb`` reads for ogbl-wikikg2.

``LinkPropPredDataset("ogbl-wikikg2", root)`` (ogb 1.3.x) reads
``<root>/ogbl_wikikg2/``:

* ``RELEASE_v1.txt`` (release marker; without it ogb asks on stdin whether to
  re-download),
* ``raw/edge.csv.gz`` (train heads and tails, one ``h,t`` row per triple, no
  header), ``raw/edge_reltype.csv.gz`` (train relation per row),
  ``raw/num-node-list.csv.gz`` (number of entities) and
  ``raw/num-edge-list.csv.gz`` (number of train triples),
* ``split/time/{train,valid,test}.pt``: ``torch.save`` of dicts of int64
  numpy arrays, ``head`` / ``relation`` / ``tail`` ``[N]`` and, for valid and
  test, ``head_neg`` / ``tail_neg`` ``[N, C]`` (C = 500 in the real data),
* an empty ``processed/`` folder (ogb saves its processed graph there and
  fails if the folder is missing),
* ``mapping/nodeidx2entityid.csv.gz`` and ``mapping/reltype2relid.csv.gz``
  (id -> name tables; not read by ogb, read by our loader for names).

Negative candidates are drawn uniformly at random (seeded) excluding the
true head / tail of their row, unless the graph already carries candidates.

Everything is written in chunks (:data:`ROWS_PER_CHUNK` rows of a CSV file,
about :data:`~metasd_pyg.data.ogb_split.CHUNK_BYTES` of a split array), so
the writer needs the graph plus a few tens of MB whatever the graph's size:
at the full size of ogbl-wikikg2 (8.2 GB of int64 candidates on disk) it
never holds more than one chunk of candidates.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from metasd_pyg.data.graph import KnowledgeGraph
from metasd_pyg.data.ogb_split import CHUNK_BYTES, ArraySource, write_split_file
from metasd_pyg.errors import DataError

#: Folder name ogb uses for ogbl-wikikg2 under its root.
OGB_DIR = "ogbl_wikikg2"
#: Release marker ogb checks.
RELEASE_FILE = "RELEASE_v1.txt"
#: Rows formatted at a time when writing a CSV file.
ROWS_PER_CHUNK = 1_000_000


def _csv_gz(frames: Iterable[pd.DataFrame], path: Path, header: bool = False) -> None:
    """Write the frames one after the other as one gzip CSV file (header of the first)."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1,
                                                mtime=0) as gz:
        for i, frame in enumerate(frames):
            gz.write(frame.to_csv(header=header and i == 0, index=False).encode("utf-8"))


def _row_chunks(n: int) -> Iterator[slice]:
    for start in range(0, max(n, 1), ROWS_PER_CHUNK):
        yield slice(start, min(start + ROWS_PER_CHUNK, n))


def _negatives(target: Tensor, num_entities: int, num: int, gen: torch.Generator) -> Tensor:
    """``[N, num]`` uniform random entities, never equal to the row's ``target``."""
    neg = torch.randint(0, num_entities - 1, (target.numel(), num), generator=gen)
    return neg + (neg >= target.unsqueeze(1)).long()  # skip the target: uniform over the rest


def _drawn(target: Tensor, num_entities: int, num: int, gen: torch.Generator) -> ArraySource:
    """Negatives of ``target`` drawn chunk by chunk, the same on every pass.

    The chunks consume ``gen`` exactly as one ``[N, num]`` draw would (CPU
    ``randint`` is sequential), so the values equal :func:`_negatives` of the
    whole column. The first pass starts from ``gen``'s state at that moment
    (so sources passed over in turn draw one after the other, as single
    draws would); every later pass restarts from that state, and after any
    pass ``gen`` is where one draw would have left it.
    """
    start_state: list[Tensor] = []
    rows = max(1, CHUNK_BYTES // (8 * num))

    def chunks() -> Iterator[np.ndarray]:
        if start_state:
            gen.set_state(start_state[0])
        else:
            start_state.append(gen.get_state())
        for start in range(0, target.numel(), rows):
            yield _negatives(target[start:start + rows], num_entities, num, gen).numpy()

    return ArraySource((target.numel(), num), chunks)


def write_ogb_wikikg2(
    graph: KnowledgeGraph,
    root: str | os.PathLike[str],
    *,
    num_candidates: int = 500,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write ``graph`` as ``<root>/ogbl_wikikg2/`` in ogb's ogbl-wikikg2 layout.

    Loading it back with ``ogb.linkproppred.LinkPropPredDataset("ogbl-wikikg2",
    root)`` (or ``load_dataset("ogbl-wikikg2", root)``) gives the same triples
    and candidates. The files are built in ``<root>/.ogbl_wikikg2.partial``
    and renamed into place when complete.

    Memory: the graph plus one chunk at a time. The CSV files are formatted
    :data:`ROWS_PER_CHUNK` rows at a time into one gzip stream; the split
    ``.pt`` files are written by
    :func:`~metasd_pyg.data.ogb_split.write_split_file`, which streams each
    array in chunks of about 16 MiB (drawn candidates are drawn chunk by
    chunk, given ones converted to int64 chunk by chunk). Drawn candidates
    are the same as one ``[N, C]`` draw per side with the same seed.

    Args:
        graph: The graph; its valid/test candidates are written if it has
            them (any integer dtype), otherwise ``num_candidates`` per side
            are drawn.
        root: ogb root folder (created if needed).
        num_candidates: Head and tail candidates per valid/test triple.
        seed: Seed of the candidate draw.
        overwrite: Replace an existing ``<root>/ogbl_wikikg2``; otherwise an
            existing folder is an error and left untouched.

    Returns:
        The dataset folder ``<root>/ogbl_wikikg2``.
    """
    E = graph.num_entities
    if E < 2:
        raise DataError(f"{graph.name}: an ogbl-wikikg2 layout needs at least 2 entities")
    if num_candidates < 1:
        raise DataError(f"num_candidates must be >= 1, got {num_candidates}")
    out = Path(root) / OGB_DIR
    if out.exists():
        if not overwrite:
            raise DataError(f"{out} already exists; refusing to overwrite it (overwrite=True)")
        shutil.rmtree(out)
    tmp = Path(root) / f".{OGB_DIR}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("raw", "split/time", "mapping", "processed"):
        (tmp / sub).mkdir(parents=True)
    train = graph.train.cpu()
    _csv_gz((pd.DataFrame(train[sl][:, [0, 2]].numpy()) for sl in _row_chunks(len(train))),
            tmp / "raw" / "edge.csv.gz")
    _csv_gz((pd.DataFrame(train[sl, 1].numpy()) for sl in _row_chunks(len(train))),
            tmp / "raw" / "edge_reltype.csv.gz")
    _csv_gz([pd.DataFrame([E])], tmp / "raw" / "num-node-list.csv.gz")
    _csv_gz([pd.DataFrame([len(train)])], tmp / "raw" / "num-edge-list.csv.gz")
    ents, rels = graph.entity_names, graph.relation_names
    _csv_gz((pd.DataFrame({"node idx": np.arange(sl.start, sl.stop),
                           "entity id": ents[sl] if ents else [str(i) for i in range(
                               sl.start, sl.stop)]}) for sl in _row_chunks(E)),
            tmp / "mapping" / "nodeidx2entityid.csv.gz", header=True)
    R = len(rels) if rels else graph.num_relations
    _csv_gz([pd.DataFrame({"reltype": np.arange(R),
                           "rel id": rels or [str(i) for i in range(R)]})],
            tmp / "mapping" / "reltype2relid.csv.gz", header=True)
    gen = torch.Generator().manual_seed(int(seed))
    for split in ("train", "valid", "test"):
        t = graph.split(split).cpu()
        arrays = {name: ArraySource.from_array(t[:, col])
                  for col, name in enumerate(("head", "relation", "tail"))}
        if split != "train":
            given = graph.candidates.get(split)
            for side, col in (("head_neg", 0), ("tail_neg", 2)):
                if given:
                    arrays[side] = ArraySource.from_array(given[side].cpu())
                else:
                    # write_split_file passes over head_neg, then tail_neg, then repeats:
                    # they draw from gen in that order, as the two single draws would.
                    arrays[side] = _drawn(t[:, col].contiguous(), E, num_candidates, gen)
        write_split_file(tmp / "split" / "time" / f"{split}.pt", arrays)
    (tmp / RELEASE_FILE).write_text(
        f"ogbl-wikikg2 layout (version 1) written by metasd-pyg from graph {graph.name!r}\n",
        encoding="utf-8",
    )
    os.replace(tmp, out)
    return out
