"""Compressed export of the MetaSD student (safetensors, sparse tables) and its loader."""

from metasd_pyg.export.artifact import (
    ARTIFACT_FORMAT,
    ARTIFACT_VERSION,
    ExportInfo,
    encode_student,
    export_student,
)
from metasd_pyg.export.encoding import (
    ENCODINGS,
    EncodedTable,
    decode_table,
    encode_table,
    prefix_structure,
)
from metasd_pyg.export.from_run import export_run, model_from_run
from metasd_pyg.export.loader import ArtifactError, StudentArtifact, load_student, read_metadata

__all__ = [
    "ARTIFACT_FORMAT",
    "ARTIFACT_VERSION",
    "ENCODINGS",
    "ArtifactError",
    "EncodedTable",
    "ExportInfo",
    "StudentArtifact",
    "decode_table",
    "encode_student",
    "encode_table",
    "export_run",
    "export_student",
    "load_student",
    "model_from_run",
    "prefix_structure",
    "read_metadata",
]
