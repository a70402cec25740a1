"""Export the student of a finished run folder (``metasd-pyg export RUN``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch_geometric.nn.kge import KGEModel

from metasd_pyg.errors import MetaSDError, RunFolderError
from metasd_pyg.export.artifact import ExportInfo, export_student
from metasd_pyg.export.names import unpack_names
from metasd_pyg.models.factory import model_from_metadata
from metasd_pyg.storage.folder import RunFolder


def model_from_run(run: RunFolder) -> tuple[KGEModel, dict[str, Any], dict[str, Any]]:
    """Rebuild the final model of ``run`` with its weights.

    Args:
        run: A finished run folder (with ``model.safetensors``).

    Returns:
        ``(model, masks, info)`` where ``info`` is the model metadata with the
        entity and relation names unpacked (``None`` if the dataset has none).
    """
    params, masks, meta, extra = run.read_model()
    try:
        model = model_from_metadata(meta)
        model.load_state_dict(params, strict=True)
        info = dict(meta)
        info["entity_names"] = unpack_names(meta.get("entity_names"), extra,
                                            int(meta["num_entities"]))
        info["relation_names"] = unpack_names(meta.get("relation_names"), extra,
                                              int(meta["num_relations"]))
    except (KeyError, RuntimeError, ValueError, MetaSDError) as exc:
        raise RunFolderError(f"{run.path / run.MODEL}: inconsistent model file ({exc})") from exc
    model.eval()
    return model, dict(masks), info


def export_run(
    run: RunFolder | str | Path, out: str | Path, *, dtype: str = "fp32"
) -> ExportInfo:
    """Write the compressed student of a finished run to ``out``.

    Args:
        run: Run folder (or its path).
        out: Output ``.safetensors`` file.
        dtype: ``"fp32"`` or ``"fp16"`` values.

    Raises:
        RunFolderError: The run is missing, unfinished, or has no student
            (e.g. a dense ``teacher`` run; it is then exported dense).
    """
    folder = run if isinstance(run, RunFolder) else RunFolder.open(run)
    model, masks, info = model_from_run(folder)
    return export_student(
        out, model, masks or None, dtype=dtype, reciprocal=bool(info["reciprocal"]),
        entity_names=info["entity_names"], relation_names=info["relation_names"],
        metadata={"source_run": str(folder.path.resolve()), "dataset": info.get("dataset"),
                  "mode": info.get("mode")},
    )
