"""Run folders: one directory per training run, safe with the user's files.

Layout of a run folder (all JSON files are written atomically)::

    run.json         marker: format, status ("running" / "complete"), command, times
    config.json      resolved configuration (run options + trainer configuration)
    versions.json    Python, torch, PyG, metasd-pyg, numpy, pandas, safetensors
    metrics.jsonl    one JSON object per evaluation (epoch, step, split, metrics...)
    train.jsonl      one JSON object per training epoch (loss, sparsity, mask churn...)
    checkpoints/     the trainer's atomic checkpoints (safetensors + JSON)
    model.safetensors  final (best-valid) weights of the model and the student's masks
    results.json     final results of every model of the run (summary, compression...)
    ranks.safetensors  per-query test ranks of every model (:mod:`~metasd_pyg.storage.frames`)
    buckets.csv      long-tail bucket table of every model and split
    categories.csv   relation-category table of every model and split
    student.safetensors   compressed student artifact (see :mod:`metasd_pyg.export`)
    report.html      the long-tail report of the run

An existing run folder is never replaced unless ``overwrite=True`` and never
continued unless ``resume=True``; a non-empty folder that is not a run folder
(no ``run.json``) is never deleted, even with ``overwrite=True``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from metasd_pyg.errors import RunFolderError
from metasd_pyg.storage.atomic import (
    atomic_save_safetensors,
    atomic_write_json,
    atomic_write_text,
)
from metasd_pyg.storage.jsonable import to_jsonable
from metasd_pyg.storage.versions import collect_versions

#: Format tag written in ``run.json``.
RUN_FORMAT = "metasd-pyg-run"
#: Version of the run-folder layout.
RUN_FORMAT_VERSION = 1


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class RunFolder:
    """A run folder on disk (see the module docstring for the layout).

    Use :meth:`create` to start (or resume) a run and :meth:`open` to read one.

    Args:
        path: The run directory.
    """

    MARKER = "run.json"
    CONFIG = "config.json"
    VERSIONS = "versions.json"
    METRICS = "metrics.jsonl"
    TRAIN_LOG = "train.jsonl"
    RESULTS = "results.json"
    RANKS = "ranks.safetensors"
    BUCKETS = "buckets.csv"
    CATEGORIES = "categories.csv"
    STUDENT = "student.safetensors"
    MODEL = "model.safetensors"
    REPORT = "report.html"
    CHECKPOINTS = "checkpoints"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # ------------------------------------------------------------ creation
    @classmethod
    def is_run_folder(cls, path: str | Path) -> bool:
        """Whether ``path`` is a directory holding a metasd-pyg ``run.json`` marker.

        Args:
            path: Directory to test.
        """
        marker = Path(path) / cls.MARKER
        if not marker.is_file():
            return False
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and data.get("format") == RUN_FORMAT

    @classmethod
    def check_target(cls, path: str | Path, *, overwrite: bool = False,
                     resume: bool = False) -> None:
        """Check, without touching anything, that :meth:`create` would succeed.

        Args:
            path: Run directory.
            overwrite: Replacing an existing run folder is allowed.
            resume: The run folder must exist and is continued.

        Raises:
            RunFolderError: As :meth:`create` would.
        """
        path = Path(path)
        if overwrite and resume:
            raise RunFolderError("--overwrite and --resume exclude each other; give one")
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"{path} exists and is not a directory")
        exists = path.is_dir() and any(path.iterdir())
        if resume:
            if not cls.is_run_folder(path):
                raise RunFolderError(f"cannot resume {path}: not a metasd-pyg run folder")
            return
        if exists:
            if not cls.is_run_folder(path):
                raise RunFolderError(
                    f"{path} is a non-empty folder but not a metasd-pyg run folder; "
                    "choose another --out"
                )
            if not overwrite:
                raise RunFolderError(
                    f"run folder {path} already exists; pass --overwrite to replace it "
                    "or --resume to continue it"
                )

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        overwrite: bool = False,
        resume: bool = False,
        command: Iterable[str] | None = None,
    ) -> RunFolder:
        """Create a new run folder, replace one, or reopen one to resume it.

        Args:
            path: Run directory. Its parent directories are created.
            overwrite: Replace an existing run folder (its content is deleted).
            resume: Continue an existing run folder (it must exist).
            command: The command line that started the run (recorded).

        Raises:
            RunFolderError: ``path`` exists and neither flag is given, is a file,
                is a non-empty folder that is not a run folder, or ``resume`` is
                asked for a folder that does not exist.
        """
        path = Path(path)
        cls.check_target(path, overwrite=overwrite, resume=resume)
        if resume:
            run = cls(path)
            run._update_marker(status="running", resumed=_now())
            return run
        if path.is_dir() and any(path.iterdir()):
            shutil.rmtree(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
            run = cls(path)
            run.checkpoint_dir.mkdir(exist_ok=True)
            atomic_write_json(
                run.path / cls.MARKER,
                {
                    "format": RUN_FORMAT,
                    "format_version": RUN_FORMAT_VERSION,
                    "status": "running",
                    "created": _now(),
                    "command": list(command) if command is not None else None,
                },
            )
            run.write_versions()
        except OSError as exc:
            raise RunFolderError(f"cannot create run folder {path}: {exc.strerror}") from exc
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """Open an existing run folder for reading.

        Args:
            path: Run directory.

        Raises:
            RunFolderError: ``path`` is not a metasd-pyg run folder.
        """
        path = Path(path)
        if not path.exists():
            raise RunFolderError(f"run folder {path} does not exist")
        if not cls.is_run_folder(path):
            raise RunFolderError(f"{path} is not a metasd-pyg run folder (no valid run.json)")
        return cls(path)

    # -------------------------------------------------------------- paths
    @property
    def checkpoint_dir(self) -> Path:
        """Directory of the trainer's checkpoints."""
        return self.path / self.CHECKPOINTS

    @property
    def student_path(self) -> Path:
        """Path of the exported student artifact."""
        return self.path / self.STUDENT

    @property
    def report_path(self) -> Path:
        """Path of the run's HTML report."""
        return self.path / self.REPORT

    @property
    def name(self) -> str:
        """Folder name of the run."""
        return self.path.resolve().name

    # ------------------------------------------------------------- marker
    def marker(self) -> dict[str, Any]:
        """Content of ``run.json``."""
        return self._read_json(self.MARKER)

    def _update_marker(self, **fields: Any) -> None:
        data = self.marker()
        data.update(fields)
        atomic_write_json(self.path / self.MARKER, data)

    def mark_complete(self, **fields: Any) -> None:
        """Set the status of the run to ``complete`` (plus extra ``fields``).

        Args:
            fields: Extra entries for ``run.json`` (e.g. wall time).
        """
        self._update_marker(status="complete", finished=_now(), **fields)

    # -------------------------------------------------------------- files
    def _read_json(self, name: str) -> dict[str, Any]:
        path = self.path / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise RunFolderError(f"{path} is missing (incomplete run?)") from exc
        except ValueError as exc:
            raise RunFolderError(f"{path}: invalid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise RunFolderError(f"{path}: expected a JSON object")
        return data

    def write_config(self, config: Mapping[str, Any]) -> Path:
        """Save the resolved configuration to ``config.json``.

        Args:
            config: JSON-serialisable configuration.
        """
        return atomic_write_json(self.path / self.CONFIG, dict(config))

    def read_config(self) -> dict[str, Any]:
        """The resolved configuration saved by :meth:`write_config`."""
        return self._read_json(self.CONFIG)

    def write_versions(self) -> Path:
        """Record the software versions in ``versions.json``."""
        return atomic_write_json(self.path / self.VERSIONS, collect_versions())

    def read_versions(self) -> dict[str, Any]:
        """The recorded software versions."""
        return self._read_json(self.VERSIONS)

    def _append_jsonl(self, name: str, record: Mapping[str, Any]) -> None:
        line = json.dumps(to_jsonable(dict(record)), sort_keys=False)
        with open(self.path / name, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def _read_jsonl(self, name: str) -> list[dict[str, Any]]:
        path = self.path / name
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        out = []
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                # A torn last line after a crash is ignored; anything else is an error.
                if lineno == len(lines):
                    break
                raise RunFolderError(f"{path}:{lineno}: invalid JSON line") from None
        return out

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one evaluation record to ``metrics.jsonl``.

        Args:
            record: JSON-serialisable record (epoch, step, split, metrics...).
        """
        self._append_jsonl(self.METRICS, record)

    def read_metrics(self) -> list[dict[str, Any]]:
        """All evaluation records, in order."""
        return self._read_jsonl(self.METRICS)

    def append_train_log(self, record: Mapping[str, Any]) -> None:
        """Append one per-epoch training record to ``train.jsonl``.

        Args:
            record: JSON-serialisable record (epoch, loss, sparsity, churn...).
        """
        self._append_jsonl(self.TRAIN_LOG, record)

    def read_train_log(self) -> list[dict[str, Any]]:
        """All per-epoch training records, in order."""
        return self._read_jsonl(self.TRAIN_LOG)

    def truncate_logs(self, after_epoch: int) -> None:
        """Drop log records of epochs after ``after_epoch`` (used when resuming).

        Args:
            after_epoch: Last epoch whose records are kept (records without an
                ``epoch`` entry are kept).
        """
        for name in (self.METRICS, self.TRAIN_LOG):
            records = self._read_jsonl(name)
            kept = [r for r in records if not (isinstance(r.get("epoch"), int)
                                               and r["epoch"] > after_epoch)]
            atomic_write_text(
                self.path / name,
                "".join(json.dumps(r) + "\n" for r in kept),
            )

    def write_results(self, results: Mapping[str, Any]) -> Path:
        """Save the final results to ``results.json``.

        Args:
            results: JSON-serialisable results.
        """
        return atomic_write_json(self.path / self.RESULTS, dict(results))

    def read_results(self) -> dict[str, Any]:
        """The final results (``RunFolderError`` if the run has not finished)."""
        return self._read_json(self.RESULTS)

    def write_ranks(self, frames: Mapping[str, Any]) -> Path:
        """Save per-query rank tables (key -> data frame) to ``ranks.safetensors``.

        Args:
            frames: Frames by key (``"<role>/<split>"``), see :func:`~.frames.save_frames`.
        """
        from metasd_pyg.storage.frames import save_frames

        return save_frames(self.path / self.RANKS, frames)

    def read_ranks(self, key: str) -> Any:
        """The rank table stored under ``key`` (a data frame; ``RunFolderError`` if absent)."""
        from metasd_pyg.storage.frames import load_frame

        return load_frame(self.path / self.RANKS, key)

    def has_results(self) -> bool:
        """Whether ``results.json`` exists."""
        return (self.path / self.RESULTS).is_file()

    def write_model(
        self,
        params: Mapping[str, Tensor],
        masks: Mapping[str, Tensor] | None,
        metadata: Mapping[str, Any],
        extra: Mapping[str, Tensor] | None = None,
    ) -> Path:
        """Save the final model weights and the student's masks to ``model.safetensors``.

        Tensors are stored as ``param/<name>``, ``mask/<name>`` (bool) and
        ``extra/<name>``; the JSON ``metadata`` (model type, dims, reciprocal...)
        goes to the header.

        Args:
            params: Parameter name -> tensor of the (teacher) model.
            masks: Parameter name -> boolean keep-mask of the student (or ``None``).
            metadata: JSON-serialisable description of the model.
            extra: Other tensors to keep with the model (e.g. packed entity names).
        """
        tensors = {f"param/{k}": v.detach().cpu().contiguous() for k, v in params.items()}
        for k, m in (masks or {}).items():
            tensors[f"mask/{k}"] = m.detach().to("cpu", torch.bool).contiguous()
        for k, t in (extra or {}).items():
            tensors[f"extra/{k}"] = t.detach().cpu().contiguous()
        seen: set[int] = set()
        for k, t in tensors.items():  # safetensors refuses tensors sharing memory
            ptr = t.untyped_storage().data_ptr()
            if ptr in seen:
                tensors[k] = t.clone()
            seen.add(ptr)
        return atomic_save_safetensors(
            self.path / self.MODEL, tensors,
            metadata={"metasd_pyg": json.dumps(to_jsonable(dict(metadata)))})

    def has_model(self) -> bool:
        """Whether ``model.safetensors`` exists (the run finished training)."""
        return (self.path / self.MODEL).is_file()

    def read_model(
        self,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Any], dict[str, Tensor]]:
        """``(params, masks, metadata, extra)`` saved by :meth:`write_model`.

        Raises:
            RunFolderError: The run has no final weights (unfinished) or the file
                is unreadable.
        """
        from safetensors import SafetensorError, safe_open

        path = self.path / self.MODEL
        if not path.is_file():
            raise RunFolderError(
                f"{self.path} has no final weights ({self.MODEL}); the run did not finish: "
                f"continue it with `metasd-pyg train --out {self.path} --resume`"
            )
        try:
            with safe_open(str(path), "pt") as fh:
                meta = json.loads((fh.metadata() or {}).get("metasd_pyg", "{}"))
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise RunFolderError(f"{path}: unreadable weights ({exc})") from exc
        params = {k[6:]: v for k, v in tensors.items() if k.startswith("param/")}
        masks = {k[5:]: v.bool() for k, v in tensors.items() if k.startswith("mask/")}
        extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra/")}
        return params, masks, meta, extra

    def write_table(self, name: str, csv_text: str) -> Path:
        """Write a CSV table (e.g. :attr:`BUCKETS`) atomically.

        Args:
            name: File name inside the run folder.
            csv_text: CSV content.
        """
        return atomic_write_text(self.path / name, csv_text)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"
