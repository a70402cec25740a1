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
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from metasd_pyg.data.graph import KnowledgeGraph
from metasd_pyg.errors import DataError

#: Folder name ogb uses for ogbl-wikikg2 under its root.
OGB_DIR = "ogbl_wikikg2"
#: Release marker ogb checks.
RELEASE_FILE = "RELEASE_v1.txt"


def _csv_gz(frame: pd.DataFrame, path: Path, header: bool = False) -> None:
    frame.to_csv(path, header=header, index=False,
                 compression={"method": "gzip", "compresslevel": 1, "mtime": 0})


def _negatives(target: Tensor, num_entities: int, num: int, gen: torch.Generator) -> Tensor:
    """``[N, num]`` uniform random entities, never equal to the row's ``target``."""
    neg = torch.randint(0, num_entities - 1, (target.numel(), num), generator=gen)
    return neg + (neg >= target.unsqueeze(1)).long()  # skip the target: uniform over the rest


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
    and candidates.

    Args:
        graph: The graph; its valid/test candidates are written if it has
            them, otherwise ``num_candidates`` per side are drawn.
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
    train = graph.train.cpu().numpy()
    _csv_gz(pd.DataFrame(train[:, [0, 2]]), tmp / "raw" / "edge.csv.gz")
    _csv_gz(pd.DataFrame(train[:, 1]), tmp / "raw" / "edge_reltype.csv.gz")
    _csv_gz(pd.DataFrame([E]), tmp / "raw" / "num-node-list.csv.gz")
    _csv_gz(pd.DataFrame([len(train)]), tmp / "raw" / "num-edge-list.csv.gz")
    ents = graph.entity_names or [str(i) for i in range(E)]
    rels = graph.relation_names or [str(i) for i in range(graph.num_relations)]
    _csv_gz(pd.DataFrame({"node idx": np.arange(E), "entity id": ents}),
            tmp / "mapping" / "nodeidx2entityid.csv.gz", header=True)
    _csv_gz(pd.DataFrame({"reltype": np.arange(len(rels)), "rel id": rels}),
            tmp / "mapping" / "reltype2relid.csv.gz", header=True)
    gen = torch.Generator().manual_seed(int(seed))
    for split in ("train", "valid", "test"):
        t = graph.split(split).cpu()
        item: dict[str, np.ndarray] = {
            "head": t[:, 0].numpy().astype(np.int64),
            "relation": t[:, 1].numpy().astype(np.int64),
            "tail": t[:, 2].numpy().astype(np.int64),
        }
        if split != "train":
            given = graph.candidates.get(split)
            if given:
                head_neg, tail_neg = given["head_neg"].cpu(), given["tail_neg"].cpu()
            else:
                head_neg = _negatives(t[:, 0], E, num_candidates, gen)
                tail_neg = _negatives(t[:, 2], E, num_candidates, gen)
            item["head_neg"] = head_neg.numpy().astype(np.int64)
            item["tail_neg"] = tail_neg.numpy().astype(np.int64)
        torch.save(item, tmp / "split" / "time" / f"{split}.pt")
    (tmp / RELEASE_FILE).write_text(
        f"ogbl-wikikg2 layout (version 1) written by metasd-pyg from graph {graph.name!r}\n",
        encoding="utf-8",
    )
    os.replace(tmp, out)
    return out
