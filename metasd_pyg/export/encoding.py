r"""Sparse storage of one masked embedding table (no pickle: plain tensors).

A table :math:`W \in \mathbb{R}^{N \times d}` with a keep-mask
:math:`M \in \{0, 1\}^{N \times d}` is stored in one of three encodings,
whichever takes the fewest bytes:

``dense``
    ``W * M`` as is: :math:`N d\,b` bytes (:math:`b` bytes per value).
``csr``
    Compressed sparse rows for unstructured masks: the kept values in row-major
    order, their column indices, and the number of kept entries per row
    (row pointers are its cumulative sum). Indices and counts use the smallest
    unsigned integer type that holds :math:`d` (``uint8`` up to 256 columns,
    ``uint16`` up to 65,536): :math:`\mathrm{nnz}\,(b + b_{idx}) + N b_{cnt}` bytes.
``prefix``
    For nested masks (every row keeps a prefix of one shared column order
    :math:`\pi`, row :math:`i` keeps :math:`\pi_1, \dots, \pi_{k_i}`): the kept
    values in order :math:`W_{i,\pi_1}, \dots, W_{i,\pi_{k_i}}`, the prefix
    lengths :math:`k`, and :math:`\pi` once. No column indices:
    :math:`\mathrm{nnz}\,b + N b_{cnt} + d\,b_{idx}` bytes.

Nestedness is detected from the mask itself: if the rows are prefixes of some
order :math:`\pi`, the columns sorted by their kept count (descending) form
such an order (columns with equal counts are kept by exactly the same rows),
so the check is exact. Used by :mod:`metasd_pyg.export.artifact` for the
compressed student of MetaSD (https://aclanthology.org/2022.findings-emnlp.149/).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

ENCODINGS = ("dense", "csr", "prefix")


def index_dtype(bound: int) -> torch.dtype:
    """Smallest unsigned (or int32) integer type holding values in ``[0, bound]``.

    Args:
        bound: Largest value to store.
    """
    if bound <= 255:
        return torch.uint8
    if bound <= 65535:
        return torch.uint16
    return torch.int32


def prefix_structure(mask: Tensor) -> tuple[Tensor, Tensor] | None:
    """Shared column order and per-row prefix lengths of a nested mask.

    Args:
        mask: Boolean ``[N, d]`` keep-mask.

    Returns:
        ``(order [d], k [N])`` with ``mask[i, order[:k[i]]]`` all True and
        nothing else kept, or ``None`` if the rows are not nested prefixes.
    """
    if mask.dim() != 2:
        return None
    d = mask.size(1)
    counts = mask.sum(0)
    order = torch.argsort(counts, descending=True, stable=True)
    k = mask.sum(1)
    expected = torch.arange(d, device=mask.device)[None, :] < k[:, None]
    if not torch.equal(mask[:, order], expected):
        return None
    return order, k


@dataclass(frozen=True)
class EncodedTable:
    """One table in its chosen encoding.

    Attributes:
        encoding: One of :data:`ENCODINGS`.
        shape: Shape of the dense table.
        tensors: Tensors to store, keyed by a suffix (``values``, ``indices``,
            ``row_nnz``, ``k``, ``order``, or ``dense``).
        nnz: Number of kept entries.
    """

    encoding: str
    shape: tuple[int, ...]
    tensors: dict[str, Tensor]
    nnz: int

    @property
    def nbytes(self) -> int:
        """Bytes of the stored tensors (without the file header)."""
        return sum(t.nbytes for t in self.tensors.values())


def encode_table(
    weight: Tensor, mask: Tensor | None, dtype: torch.dtype = torch.float32,
    encoding: str | None = None,
) -> EncodedTable:
    """Encode ``weight * mask`` in the smallest of the three encodings.

    Args:
        weight: ``[N, d]`` (or any shape for ``dense``) float table.
        mask: Boolean keep-mask of the same shape, or ``None`` (dense table).
        dtype: Storage type of the values (``torch.float32`` or ``torch.float16``).
        encoding: Force an encoding (``prefix`` falls back to ``csr`` if the
            mask is not nested); ``None`` picks the smallest.
    """
    w = weight.detach()
    shape = tuple(w.shape)
    if mask is None or w.dim() != 2:
        dense = w if mask is None else w * mask
        return EncodedTable("dense", shape, {"dense": dense.to(dtype).contiguous()},
                            int(dense.numel()))
    mask = mask.to(device=w.device, dtype=torch.bool)
    if mask.shape != w.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {shape}")
    n, d = shape
    nnz = int(mask.sum())
    b = dtype.itemsize
    idx_t = index_dtype(max(d - 1, 0))
    cnt_t = index_dtype(d)
    sizes = {
        "dense": n * d * b,
        "csr": nnz * (b + idx_t.itemsize) + n * cnt_t.itemsize,
    }
    structure = prefix_structure(mask)
    if structure is not None:
        sizes["prefix"] = nnz * b + n * cnt_t.itemsize + d * idx_t.itemsize
    if encoding is None:
        encoding = min(sizes, key=lambda key: sizes[key])
    elif encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")
    elif encoding == "prefix" and structure is None:
        encoding = "csr"
    if encoding == "dense":
        return EncodedTable("dense", shape, {"dense": (w * mask).to(dtype).contiguous()}, nnz)
    if encoding == "csr":
        rows, cols = mask.nonzero(as_tuple=True)  # row-major order
        return EncodedTable("csr", shape, {
            "values": w[rows, cols].to(dtype).contiguous(),
            "indices": cols.to(idx_t),
            "row_nnz": mask.sum(1).to(cnt_t),
        }, nnz)
    assert structure is not None
    order, k = structure
    rows, pos = _prefix_positions(k)
    return EncodedTable("prefix", shape, {
        "values": w[rows, order[pos]].to(dtype).contiguous(),
        "k": k.to(cnt_t),
        "order": order.to(idx_t),
    }, nnz)


def _prefix_positions(k: Tensor) -> tuple[Tensor, Tensor]:
    """Row of every kept entry, and its position inside the row's prefix."""
    k = k.long()
    rows = torch.repeat_interleave(torch.arange(k.numel(), device=k.device), k)
    start = torch.cumsum(k, 0) - k
    pos = torch.arange(rows.numel(), device=k.device) - start[rows]
    return rows, pos


def check_table(encoding: str, shape: tuple[int, ...], tensors: dict[str, Tensor]) -> None:
    """Refuse an encoded table whose parts contradict each other, before decoding it.

    Nothing of the dense table's size is allocated: the checks read only the
    stored tensors (their lengths, the prefix lengths, the column indices).

    Args:
        encoding: One of :data:`ENCODINGS`.
        shape: The dense shape the header claims.
        tensors: The stored tensors (keys as in :attr:`EncodedTable.tensors`).

    Raises:
        ValueError: A missing part, a shape the parts do not have, a prefix
            length beyond the width, a column outside it, or counts that differ.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}")
    if not shape or any(int(n) < 0 for n in shape):
        raise ValueError(f"invalid shape {list(shape)}")
    need = {"dense": ("dense",), "csr": ("values", "indices", "row_nnz"),
            "prefix": ("values", "k", "order")}[encoding]
    missing = [k for k in need if k not in tensors]
    if missing:
        raise ValueError(f"{encoding} table without {', '.join(missing)}")
    if encoding == "dense":
        if tuple(tensors["dense"].shape) != tuple(shape):
            raise ValueError(f"dense table of shape {list(tensors['dense'].shape)}, header "
                             f"says {list(shape)}")
        return
    if len(shape) != 2:
        raise ValueError(f"encoding {encoding!r} needs a 2-D table, got shape {list(shape)}")
    n, d = int(shape[0]), int(shape[1])
    values = tensors["values"]
    if encoding == "csr":
        counts, cols = tensors["row_nnz"].long(), tensors["indices"].long()
        if counts.numel() != n:
            raise ValueError(f"{counts.numel()} row counts for a table of {n} rows")
        if counts.numel() and (int(counts.min()) < 0 or int(counts.max()) > d):
            raise ValueError(f"row counts outside [0, {d}]")
        if cols.numel() and (int(cols.min()) < 0 or int(cols.max()) >= d):
            raise ValueError(f"column indices outside [0, {d})")
        total = int(counts.sum())
        if not total == cols.numel() == values.numel():
            raise ValueError(f"{values.numel()} values and {cols.numel()} column indices for "
                             f"{total} kept entries")
        return
    k, order = tensors["k"].long(), tensors["order"].long()
    if k.numel() != n:
        raise ValueError(f"{k.numel()} prefix lengths for a table of {n} rows")
    if order.numel() != d or not torch.equal(torch.sort(order).values, torch.arange(d)):
        raise ValueError(f"the column order is not a permutation of the {d} columns")
    if k.numel() and (int(k.min()) < 0 or int(k.max()) > d):
        raise ValueError(f"prefix lengths outside [0, {d}] (largest {int(k.max())})")
    if int(k.sum()) != values.numel():
        raise ValueError(f"{values.numel()} values for {int(k.sum())} kept entries")


def decode_table(
    encoding: str, shape: tuple[int, ...], tensors: dict[str, Tensor],
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Dense table from its encoding (inverse of :func:`encode_table`).

    Args:
        encoding: One of :data:`ENCODINGS`.
        shape: Dense shape.
        tensors: The stored tensors (keys as in :attr:`EncodedTable.tensors`).
        dtype: Type of the returned table.
    """
    check_table(encoding, shape, tensors)
    if encoding == "dense":
        return tensors["dense"].to(dtype).reshape(shape)
    values = tensors["values"]
    out = torch.zeros(shape, dtype=dtype, device=values.device)
    if encoding == "csr":
        counts = tensors["row_nnz"].long()
        rows = torch.repeat_interleave(torch.arange(shape[0], device=values.device), counts)
        cols = tensors["indices"].long()
    elif encoding == "prefix":
        rows, pos = _prefix_positions(tensors["k"])
        cols = tensors["order"].long()[pos]
    else:
        raise ValueError(f"unknown encoding {encoding!r}")
    if rows.numel() != values.numel() or cols.numel() != values.numel():
        raise ValueError("inconsistent sparse table: index and value counts differ")
    out[rows, cols] = values.to(dtype)
    return out
