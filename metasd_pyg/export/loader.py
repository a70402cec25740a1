r"""Load an exported student and answer queries with it (no teacher, no trainer).

:func:`load_student` reads a file written by
:func:`metasd_pyg.export.export_student`, rebuilds the dense masked tables
:math:`W \odot M` (exact zeros where pruned) in float32 and puts them into a
fresh PyG KGE model; scoring then goes through :mod:`metasd_pyg.models.scoring`.
Only safetensors, the model factory and the scoring functions are used.
Scores equal those of the masked student that was exported (fp32 values:
within float rounding; fp16 values: within fp16 rounding of the weights).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor
from torch_geometric.nn.kge import KGEModel

from metasd_pyg.errors import ConfigError, MetaSDError
from metasd_pyg.export.artifact import ARTIFACT_FORMAT, ARTIFACT_VERSION, METADATA_KEY
from metasd_pyg.export.encoding import check_table, decode_table
from metasd_pyg.export.names import unpack_names
from metasd_pyg.models.factory import model_from_metadata
from metasd_pyg.models.scoring import score_heads, score_tails


class ArtifactError(MetaSDError):
    """A student artifact is missing, unreadable or not a metasd-pyg student."""


@dataclass
class StudentArtifact:
    """A loaded student: a PyG model with the masked weights, names and metadata.

    Attributes:
        model: PyG KGE model holding the dense masked tables (float32, eval mode).
        metadata: The artifact's JSON metadata (see :mod:`metasd_pyg.export.artifact`).
        entity_names: Entity names (ids as strings if the artifact has none).
        relation_names: Relation names (without inverses).
        path: File the artifact was read from.
    """

    model: KGEModel
    metadata: dict[str, Any]
    entity_names: list[str]
    relation_names: list[str]
    path: str = ""

    @property
    def num_entities(self) -> int:
        """Number of entities."""
        return int(self.metadata["num_entities"])

    @property
    def num_relations(self) -> int:
        """Number of relations (without inverses)."""
        return int(self.metadata["num_relations"])

    @property
    def reciprocal(self) -> bool:
        """Whether head queries use inverse relations ``r + R``."""
        return bool(self.metadata["reciprocal"])

    @cached_property
    def _entity_index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.entity_names)}

    @cached_property
    def _relation_index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.relation_names)}

    @staticmethod
    def _lookup(index: dict[str, int], name: str, kind: str) -> int:
        if name in index:
            return index[name]
        close = difflib.get_close_matches(name, list(index), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        plural = "entities" if kind == "entity" else f"{kind}s"
        raise ConfigError(f"unknown {kind} {name!r} ({len(index)} {plural} in the artifact)"
                          f"{hint}")

    def entity_id(self, name: str) -> int:
        """Id of entity ``name`` (``ConfigError`` naming close matches if unknown).

        Args:
            name: Entity name as in the dataset (or the id as a string).
        """
        return self._lookup(self._entity_index, name, "entity")

    def relation_id(self, name: str) -> int:
        """Id of relation ``name`` (``ConfigError`` naming close matches if unknown).

        Args:
            name: Relation name as in the dataset (or the id as a string).
        """
        return self._lookup(self._relation_index, name, "relation")

    @torch.no_grad()
    def score_tails(self, head: Tensor, relation: Tensor) -> Tensor:
        """Scores ``[B, E]`` of ``(head[i], relation[i], e)`` for every entity ``e``.

        Args:
            head: Entity ids ``[B]``.
            relation: Relation ids ``[B]`` in ``[0, R)``.
        """
        return score_tails(self.model, head, relation)

    @torch.no_grad()
    def score_heads(self, relation: Tensor, tail: Tensor) -> Tensor:
        """Scores ``[B, E]`` of ``(e, relation[i], tail[i])`` for every entity ``e``.

        With reciprocal relations this is the tail query ``(tail, relation + R, ?)``.

        Args:
            relation: Relation ids ``[B]`` in ``[0, R)``.
            tail: Entity ids ``[B]``.
        """
        if self.reciprocal:
            return score_tails(self.model, tail, relation + self.num_relations)
        return score_heads(self.model, relation, tail)

    def predict(
        self, *, relation: str, head: str | None = None, tail: str | None = None, k: int = 10
    ) -> list[dict[str, Any]]:
        """Top-``k`` answers of ``(head, relation, ?)`` or ``(?, relation, tail)``.

        Args:
            relation: Relation name.
            head: Head entity name (predict tails); give exactly one of head/tail.
            tail: Tail entity name (predict heads).
            k: Number of answers (capped at the number of entities).

        Returns:
            ``[{"rank", "id", "entity", "score"}, ...]`` best first (ties by id).
        """
        if (head is None) == (tail is None):
            raise ConfigError("give exactly one of --head (tail prediction) or --tail")
        if k < 1:
            raise ConfigError(f"--k must be >= 1, got {k}")
        device = self.model.node_emb.weight.device
        r = torch.tensor([self.relation_id(relation)], device=device)
        if head is not None:
            scores = self.score_tails(torch.tensor([self.entity_id(head)], device=device), r)
        else:
            assert tail is not None
            scores = self.score_heads(r, torch.tensor([self.entity_id(tail)], device=device))
        k = min(k, self.num_entities)
        # Stable order: by score descending, then by id.
        order = torch.sort(scores[0], descending=True, stable=True).indices[:k]
        return [
            {"rank": i + 1, "id": int(e), "entity": self.entity_names[int(e)],
             "score": float(scores[0, e])}
            for i, e in enumerate(order.tolist())
        ]


def _open(path: str | Path, *, tensors: bool) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The checked JSON metadata of a student artifact (and its tensors if asked)."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"student artifact {path} does not exist")
    try:
        with safe_open(str(path), "pt") as fh:
            raw = (fh.metadata() or {}).get(METADATA_KEY)
            if raw is None:
                raise ArtifactError(
                    f"{path} is a safetensors file but not a metasd-pyg student")
            meta = _parse_metadata(path, raw)
            loaded = {key: fh.get_tensor(key) for key in fh.keys()} if tensors else {}
    except (SafetensorError, OSError) as exc:
        raise ArtifactError(f"{path} is not a readable safetensors file ({exc})") from exc
    return meta, loaded


def _parse_metadata(path: Path, raw: str) -> dict[str, Any]:
    try:
        meta: dict[str, Any] = json.loads(raw)
    except ValueError as exc:
        raise ArtifactError(f"{path}: invalid metasd-pyg metadata ({exc})") from exc
    if meta.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"{path}: unknown artifact format {meta.get('format')!r}")
    if int(meta.get("format_version", 0)) > ARTIFACT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {meta['format_version']} is newer than this "
            f"metasd-pyg supports ({ARTIFACT_VERSION}); upgrade metasd-pyg"
        )
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a student artifact, without reading its tensors.

    Args:
        path: ``.safetensors`` file written by ``export_student``.
    """
    return _open(path, tensors=False)[0]


def load_student(path: str | Path, device: torch.device | str | None = None) -> StudentArtifact:
    """Load a student artifact into a PyG model ready for scoring.

    Args:
        path: ``.safetensors`` file written by :func:`metasd_pyg.export.export_student`.
        device: Where to put the model (default: CPU).

    Raises:
        ArtifactError: The file is missing, unreadable or not a student artifact.
    """
    meta, tensors = _open(path, tensors=True)
    try:
        if not isinstance(meta.get("tables"), dict):
            raise ValueError("the header's 'tables' is not a mapping of table entries")
        # the header's shapes, on the meta device: nothing allocated, whatever it claims
        with torch.device("meta"):
            expected = {n: tuple(p.shape) for n, p in model_from_metadata(meta).state_dict()
                        .items()}
        tables: dict[str, tuple[str, tuple[int, ...], dict[str, Tensor]]] = {}
        for name, entry in meta["tables"].items():
            parts = {key[len(name) + 1:]: t for key, t in tensors.items()
                     if key.startswith(name + ".")}
            if "structure" in entry:
                src = entry["structure"]
                parts.update({key[len(src) + 1:]: t for key, t in tensors.items()
                              if key.startswith(src + ".") and not key.endswith(".values")})
            shape = tuple(int(n) for n in entry["shape"])
            if name not in expected:
                raise ValueError(f"table {name!r} is not a parameter of the model")
            if shape != expected[name]:
                raise ValueError(f"table {name!r} has shape {list(shape)}, the header's model "
                                 f"{list(expected[name])}")
            check_table(str(entry["encoding"]), shape, parts)  # before any allocation
            tables[name] = (str(entry["encoding"]), shape, parts)
        missing = sorted(set(expected) - set(tables))
        if missing:
            raise ValueError(f"no table for {', '.join(missing)}")
        model = model_from_metadata(meta)
        state = {name: decode_table(enc, shape, parts)
                 for name, (enc, shape, parts) in tables.items()}
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError, MetaSDError) as exc:
        raise ArtifactError(f"{path}: corrupt or inconsistent student ({exc})") from exc
    model.eval()
    if device is not None:
        model = model.to(device)
    E, R = int(meta["num_entities"]), int(meta["num_relations"])
    try:
        entity_names = unpack_names(meta.get("entity_names"), tensors, E)
        relation_names = unpack_names(meta.get("relation_names"), tensors, R)
    except MetaSDError as exc:
        raise ArtifactError(f"{path}: {exc}") from exc
    entity_names = entity_names or [str(i) for i in range(E)]
    relation_names = relation_names or [str(i) for i in range(R)]
    return StudentArtifact(model, meta, entity_names, relation_names, str(path))
