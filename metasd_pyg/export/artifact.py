r"""Write the compressed MetaSD student to one safetensors file.

The student of MetaSD (Li et al., Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/) is a masked view
:math:`W \odot M` of the teacher's embedding tables. :func:`export_student`
stores only the student, table by table, in the smallest encoding of
:mod:`metasd_pyg.export.encoding` (dense, CSR with 8/16-bit column indices, or
prefix rows without column indices for nested masks). When two tables share the
same mask (ComplEx's real and imaginary tables under complex-dimension or
nested masks), the second one stores only its values and refers to the first
one's structure.

File layout (safetensors, no pickle):

* tensors ``<param>.<part>`` with ``part`` in ``dense``, ``values``,
  ``indices``, ``row_nnz``, ``k``, ``order``;
* ``names.entities`` / ``names.relations``: zlib-compressed UTF-8 names
  separated by newlines (``uint8``), unless they are tiny (at most 1 KiB), in
  which case they are a JSON list in the header;
* header metadata key ``"metasd_pyg"``: a JSON document with ``format``,
  ``format_version``, ``model``, ``num_entities``, ``num_relations``,
  ``num_relation_rows``, ``dim``, ``reciprocal``, ``margin``, ``p_norm``,
  ``dtype``, ``tables`` (encoding, shape, nnz, shared structure per
  parameter), ``total_params``, ``nonzeros``, ``sparsity``,
  ``entity_names`` / ``relation_names`` (a list, a reference
  ``{"tensor", "codec", "count"}`` to the compressed names, or ``null``:
  ids are the names), and free-form
  provenance (``source_run``, ``dataset``...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch import Tensor
from torch_geometric.nn.kge import KGEModel

from metasd_pyg.errors import ConfigError
from metasd_pyg.export.encoding import EncodedTable, encode_table
from metasd_pyg.export.names import pack_names
from metasd_pyg.models.factory import model_metadata
from metasd_pyg.storage.atomic import atomic_write
from metasd_pyg.storage.jsonable import to_jsonable

#: Format tag of the artifact's JSON metadata.
ARTIFACT_FORMAT = "metasd-pyg-student"
#: Version of the artifact layout.
ARTIFACT_VERSION = 1
#: Header metadata key holding the JSON document.
METADATA_KEY = "metasd_pyg"

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16}
STRUCTURE_PARTS = ("indices", "row_nnz", "k", "order")


@dataclass(frozen=True)
class ExportInfo:
    """What :func:`export_student` wrote, with its size against the dense teacher.

    Attributes:
        path: Written file (``None`` for :func:`encode_student`).
        bytes: File size in bytes.
        dense_teacher_bytes: Bytes of the dense fp32 teacher (4 x its parameters).
        ratio: ``bytes / dense_teacher_bytes``.
        dtype: Value type (``fp32`` or ``fp16``).
        total_params: Parameters of the (dense) model.
        nonzeros: Kept (non-masked) parameters of the student.
        sparsity: ``1 - nonzeros / total_params``.
        encodings: Encoding of every table.
    """

    path: str | None
    bytes: int
    dense_teacher_bytes: int
    ratio: float
    dtype: str
    total_params: int
    nonzeros: int
    sparsity: float
    encodings: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)


def export_student(
    path: str | Path,
    model: KGEModel,
    masks: Mapping[str, Tensor] | None,
    *,
    weights: Mapping[str, Tensor] | None = None,
    dtype: str = "fp32",
    reciprocal: bool = True,
    entity_names: list[str] | None = None,
    relation_names: list[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ExportInfo:
    r"""Write the masked student ``weights * masks`` of ``model`` to ``path``.

    Args:
        path: Output ``.safetensors`` file (written atomically).
        model, masks, weights, dtype, reciprocal, entity_names, relation_names,
        metadata: As in :func:`encode_student`.

    Returns:
        An :class:`ExportInfo` with sizes and the ratio to the dense fp32 teacher.
    """
    blob, info = encode_student(model, masks, weights=weights, dtype=dtype,
                                reciprocal=reciprocal, entity_names=entity_names,
                                relation_names=relation_names, metadata=metadata)
    atomic_write(path, lambda fh: fh.write(blob))
    return replace(info, path=str(path))


def encode_student(
    model: KGEModel,
    masks: Mapping[str, Tensor] | None,
    *,
    weights: Mapping[str, Tensor] | None = None,
    dtype: str = "fp32",
    reciprocal: bool = True,
    entity_names: list[str] | None = None,
    relation_names: list[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> tuple[bytes, ExportInfo]:
    r"""The safetensors bytes of the masked student ``weights * masks`` of ``model``.

    Args:
        model: The PyG KGE model (teacher) whose masked view is the student;
            gives the model type and shapes.
        masks: Parameter name -> boolean keep-mask (True = kept); parameters
            without a mask are stored dense. ``None``: no masks (dense student).
        weights: Parameter values to store (default: the model's own).
        dtype: ``"fp32"`` or ``"fp16"`` storage of the values.
        reciprocal: Whether the model was trained with reciprocal relations
            (``2R`` relation rows; head queries use relation ``r + R``).
        entity_names: Name of every entity (``None``: ids are used).
        relation_names: Name of every relation (without inverses).
        metadata: Extra provenance (e.g. ``source_run``, ``dataset``).

    Returns:
        ``(blob, info)``: the file's bytes and an :class:`ExportInfo` whose
        ``path`` is ``None`` (nothing written; ``bytes`` is ``len(blob)``).
    """
    if dtype not in DTYPES:
        raise ConfigError(f"unknown --dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    params = dict(model.named_parameters())
    weights = {name: (weights[name] if weights and name in weights else p)
               for name, p in params.items()}
    masks = dict(masks or {})
    unknown = sorted(set(masks) - set(params))
    if unknown:
        raise ValueError(f"masks for unknown parameters: {unknown}")
    if entity_names is not None and len(entity_names) != model.num_nodes:
        raise ValueError(f"{len(entity_names)} entity names for {model.num_nodes} entities")
    rel_rows = int(model.num_relations)
    num_relations = rel_rows // 2 if reciprocal else rel_rows
    if relation_names is not None and len(relation_names) != num_relations:
        raise ValueError(f"{len(relation_names)} relation names for {num_relations} relations")

    tensors: dict[str, Tensor] = {}
    tables: dict[str, dict[str, Any]] = {}
    encoded_masks: list[tuple[str, Tensor, EncodedTable]] = []
    total = nonzeros = 0
    for name, w in weights.items():
        mask = masks.get(name)
        if mask is not None:
            mask = mask.to(device=w.device, dtype=torch.bool)
        shared = None
        if mask is not None:
            for other, other_mask, other_enc in encoded_masks:
                if other_enc.encoding != "dense" and torch.equal(other_mask, mask):
                    shared = (other, other_enc.encoding)
                    break
        enc = encode_table(w, mask, DTYPES[dtype],
                           encoding=shared[1] if shared is not None else None)
        if mask is not None and shared is None:
            encoded_masks.append((name, mask, enc))
        entry: dict[str, Any] = {"encoding": enc.encoding, "shape": list(enc.shape),
                                 "nnz": enc.nnz}
        for part, t in enc.tensors.items():
            if shared is not None and part in STRUCTURE_PARTS:
                continue
            tensors[f"{name}.{part}"] = t.detach().cpu().contiguous()
        if shared is not None:
            entry["structure"] = shared[0]
        tables[name] = entry
        total += w.numel()
        nonzeros += enc.nnz

    header: dict[str, Any] = {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_VERSION,
        **model_metadata(model, num_relations, reciprocal=reciprocal),
        "num_relation_rows": rel_rows,
        "dtype": dtype,
        "tables": tables,
        "total_params": total,
        "nonzeros": nonzeros,
        "sparsity": 1.0 - nonzeros / max(total, 1),
        "entity_names": pack_names(entity_names, "names.entities", tensors),
        "relation_names": pack_names(relation_names, "names.relations", tensors),
    }
    header.update(to_jsonable(dict(metadata or {})))
    blob = save(tensors, metadata={METADATA_KEY: json.dumps(header, separators=(",", ":"))})
    size = len(blob)
    teacher_bytes = 4 * total
    return blob, ExportInfo(
        path=None, bytes=size, dense_teacher_bytes=teacher_bytes,
        ratio=size / max(teacher_bytes, 1), dtype=dtype, total_params=total,
        nonzeros=nonzeros, sparsity=header["sparsity"],
        encodings={name: entry["encoding"] for name, entry in tables.items()},
    )
