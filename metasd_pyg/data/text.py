"""Parse ``head<TAB>relation<TAB>tail`` split files into id triples.

Accepted silently: CRLF line endings, trailing whitespace (including trailing
tabs), blank lines, a UTF-8 byte-order mark. Refused with a one-line
:class:`~metasd_pyg.errors.DataError` naming ``file:line``: a line without
exactly three non-empty tab-separated columns, bytes that are not UTF-8, a
file without any triple.

Entity ids follow the order of first appearance, line by line, head before
tail, over train, then valid, then test; relation ids likewise. This is the
order PyG's ``FB15k_237`` uses, so both routes give the same ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from metasd_pyg.data.build import assemble
from metasd_pyg.data.graph import SPLITS, KnowledgeGraph
from metasd_pyg.errors import DataError

#: Columns as parsed: heads, relations, tails (each an object array of str).
Columns = tuple[np.ndarray, np.ndarray, np.ndarray]


def decode_utf8(data: bytes, source: str) -> str:
    """Decode ``data`` as UTF-8 (BOM allowed) or raise ``DataError`` naming the line.

    Args:
        data: File content.
        source: File name used in the error message.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(
            f"{source}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at column {col}); "
            "re-encode the file as UTF-8"
        ) from None


def parse_split(data: bytes, source: str) -> Columns:
    """Parse one split file.

    Args:
        data: Raw bytes of the file.
        source: File name for error messages (e.g. ``archive.tar.gz:train.txt``).

    Returns:
        Heads, relations, tails as object arrays of ``str``.
    """
    text = decode_utf8(data, source)
    lines = text.split("\n")
    rows = [ln.rstrip().split("\t") for ln in lines]
    bad = next(
        (i for i, r in enumerate(rows) if (len(r) != 3 or not (r[0] and r[1] and r[2]))
         and r != [""]),
        None,
    )
    if bad is not None:
        r = rows[bad]
        what = (f"found {len(r)}" if len(r) != 3 else "found an empty column")
        raise DataError(
            f"{source}:{bad + 1}: expected 3 tab-separated columns (head, relation, tail), "
            f"{what}: {lines[bad].rstrip()[:80]!r}"
        )
    arr = np.array([r for r in rows if r != [""]], dtype=object).reshape(-1, 3)
    if len(arr) == 0:
        raise DataError(f"{source}: no triples (the split file is empty)")
    return arr[:, 0], arr[:, 1], arr[:, 2]


def first_appearance_ids(parts: list[np.ndarray]) -> tuple[list[np.ndarray], list[str]]:
    """Factorise several string arrays jointly, ids by order of first appearance.

    Args:
        parts: Object arrays of strings, in the order that defines the ids.

    Returns:
        The int64 code array of each part and the id -> name list.
    """
    sizes = [len(p) for p in parts]
    codes, uniques = pd.factorize(np.concatenate(parts) if parts else np.array([], object))
    out = np.split(codes.astype(np.int64), np.cumsum(sizes)[:-1])
    return out, [str(u) for u in uniques]


def encode_columns(
    columns: dict[str, Columns],
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Map string triples of the three splits to ids by order of first appearance.

    Entities are numbered in the order they appear reading the splits in
    train, valid, test order, line by line, head before tail (the order PyG's
    ``FB15k_237`` uses); relations likewise.

    Args:
        columns: ``{"train": (heads, relations, tails), "valid": ..., "test": ...}``.

    Returns:
        ``(triples per split as LongTensor [N, 3], entity names, relation names)``.
    """
    interleaved = []
    for split in SPLITS:
        h, _, t = columns[split]
        both = np.empty(2 * len(h), dtype=object)
        both[0::2], both[1::2] = h, t
        interleaved.append(both)
    ent_codes, entity_names = first_appearance_ids(interleaved)
    rel_codes, relation_names = first_appearance_ids([columns[s][1] for s in SPLITS])
    splits = {}
    for split, ec, rc in zip(SPLITS, ent_codes, rel_codes):
        ht = ec.reshape(-1, 2)
        splits[split] = torch.from_numpy(np.stack([ht[:, 0], rc, ht[:, 1]], axis=1))
    return splits, entity_names, relation_names


def graph_from_columns(name: str, columns: dict[str, Columns], source: str) -> KnowledgeGraph:
    """Map string triples of the three splits to ids and assemble the graph.

    Args:
        name: Dataset name.
        columns: ``{"train": (heads, relations, tails), "valid": ..., "test": ...}``.
        source: Provenance string.
    """
    splits, entity_names, relation_names = encode_columns(columns)
    return assemble(
        name, splits, len(entity_names), len(relation_names),
        entity_names=entity_names, relation_names=relation_names, source=source,
    )
