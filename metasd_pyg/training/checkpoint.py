"""Atomic, pickle-free training checkpoints: safetensors for tensors, JSON for the rest.

A checkpoint folder holds ``checkpoint.json`` (the commit point: JSON state
plus the name of its tensor file) and one ``ckpt-<epoch>.safetensors``.
Writing goes tensors first, then the JSON, each to a temporary file in the
same folder, flushed, then moved into place with :func:`os.replace`; an
interruption at any point leaves the previous checkpoint intact and
consistent. Old tensor files are removed after the JSON points elsewhere.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from metasd_pyg.errors import RunFolderError
from metasd_pyg.training.selection import SNAPSHOT_PREFIX, DiskSnapshot

if TYPE_CHECKING:
    from metasd_pyg.training.trainer import Trainer

#: Name of the JSON commit file inside a checkpoint folder.
CHECKPOINT_JSON = "checkpoint.json"
#: Version of the checkpoint layout.
FORMAT_VERSION = 1


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)


def save_checkpoint(directory: str | os.PathLike[str], tag: str, tensors: dict[str, Tensor],
                    state: dict[str, Any]) -> Path:
    """Write one checkpoint atomically and return the path of its JSON file.

    Args:
        directory: Checkpoint folder (created if missing).
        tag: Distinguishes the tensor file (e.g. the epoch number).
        tensors: Name -> tensor (moved to CPU, made contiguous).
        state: JSON-serialisable state.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"ckpt-{tag}.safetensors"
    tmp = folder / f".{name}.tmp"
    tmp_json = folder / f".{CHECKPOINT_JSON}.tmp"
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        _fsync_replace(tmp, folder / name)
        doc = {"format": FORMAT_VERSION, "tensors": name, "state": state}
        tmp_json.write_text(json.dumps(doc, indent=1, sort_keys=True), encoding="utf-8")
        _fsync_replace(tmp_json, folder / CHECKPOINT_JSON)  # the commit point
    except OSError as exc:
        # a full disk or a write error: the committed checkpoint stays the previous one
        for leftover in (tmp, tmp_json):
            leftover.unlink(missing_ok=True)
        committed = checkpoint_json(folder).get("tensors") if has_checkpoint(folder) else None
        if (folder / name).is_file() and committed != name:
            (folder / name).unlink(missing_ok=True)  # renamed, never committed
        raise RunFolderError(
            f"{folder}: cannot write the checkpoint {name} ({exc.strerror or exc}); the "
            "previous checkpoint is kept: free some space (or fix the folder) and resume "
            "with --resume") from exc
    for old in folder.glob("ckpt-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / CHECKPOINT_JSON


def has_checkpoint(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds a committed checkpoint.

    Args:
        directory: Checkpoint folder.
    """
    return (Path(directory) / CHECKPOINT_JSON).is_file()


def checkpoint_json(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON state of the committed checkpoint of ``directory`` (no tensors read).

    Args:
        directory: Checkpoint folder.

    Raises:
        RunFolderError: No checkpoint, or a corrupt or unsupported JSON file.
    """
    path = Path(directory) / CHECKPOINT_JSON
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunFolderError(f"{path}: no checkpoint to resume from") from exc
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: corrupt checkpoint JSON ({exc.msg}, line {exc.lineno})") \
            from exc
    if doc.get("format") != FORMAT_VERSION:
        raise RunFolderError(f"{path}: unsupported checkpoint format {doc.get('format')!r}")
    return dict(doc)


def load_checkpoint(directory: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read the committed checkpoint of ``directory`` as ``(tensors, state)`` (CPU tensors).

    Args:
        directory: Checkpoint folder.
    """
    folder = Path(directory)
    doc = checkpoint_json(folder)
    tensor_path = folder / doc["tensors"]
    if not tensor_path.is_file():
        raise RunFolderError(f"{tensor_path}: tensor file of the checkpoint is missing")
    return _read_tensors(tensor_path), doc["state"]


def _read_tensors(path: Path) -> dict[str, Tensor]:
    """The tensors of a checkpoint's safetensors file (never a pickle: nothing runs)."""
    from safetensors import SafetensorError

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunFolderError(f"{path}: not a readable checkpoint tensor file ({exc}); the "
                             "checkpoint is corrupt or was replaced") from exc


# --------------------------------------------------------------------------
# The training state in a checkpoint: the one reader every command uses.


def _prefixed(tensors: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


@dataclass
class TrainingState:
    """Everything a trainer checkpoints, by meaning instead of by tensor-key prefix.

    Tensor keys in the safetensors file: ``model/<param>``, ``mask/<param>``,
    ``best/model/<param>`` and ``best/mask/<param>`` (the selected epoch),
    ``opt/<index>/<key>`` (main optimiser), ``rng/generator`` and
    ``part/<name>/<key>`` (a part's tensors); the rest is JSON.

    Attributes:
        model: Parameter name -> tensor.
        masks: Parameter name -> bool mask (empty without a student).
        best: The selected epoch's snapshot (``model/...``, ``mask/...``) or ``None``.
        optimizer: ``(tensors, json)`` of the main optimiser
            (:func:`~metasd_pyg.training.optim.optimizer_state`).
        generator: State of the run's random generator.
        parts: Part name -> ``(tensors, json)``.
        progress: ``epoch``, ``global_step``, ``history``, ``best_metric``,
            ``best_epoch``, ``bad_evals``, ``extra``.
        config: The flat configuration the run was written with (options added
            later filled in, :func:`~metasd_pyg.training.config.saved_config_values`),
            ``None`` for checkpoints that lack one.
    """

    model: dict[str, Tensor]
    masks: dict[str, Tensor]
    best: Mapping[str, Tensor] | None
    optimizer: tuple[dict[str, Tensor], dict[str, Any]]
    generator: Tensor
    parts: dict[str, tuple[dict[str, Tensor], dict[str, Any]]]
    progress: dict[str, Any]
    config: dict[str, Any] | None

    @property
    def epoch(self) -> int:
        """Finished epochs."""
        return int(self.progress["epoch"])

    @classmethod
    def of(cls, trainer: Trainer) -> TrainingState:
        """The full training state of ``trainer``.

        Args:
            trainer: The trainer.
        """
        from metasd_pyg.training.optim import optimizer_state

        sel = trainer.selection
        return cls(
            model={n: p.detach() for n, p in trainer.model.named_parameters()},
            masks=dict(trainer.masks or {}), best=sel.best_state,
            optimizer=optimizer_state(trainer.optimizer),
            generator=trainer.generator.get_state(),
            parts={p.name: p.state_dict() for p in trainer.parts},
            progress={"epoch": trainer.epoch, "global_step": trainer.global_step,
                      "history": trainer.history,
                      "best_metric": sel.best_metric if math.isfinite(sel.best_metric)
                      else None,
                      "best_epoch": sel.best_epoch, "bad_evals": sel.bad_evals,
                      "extra": {k: (v.to_dict() if hasattr(v, "to_dict") else v)
                                for k, v in trainer.extra.items()}},
            config=trainer.config.to_dict())

    def restore(self, trainer: Trainer, *, where: str) -> None:
        """Put this state into ``trainer`` (after :func:`check_resume` of its configuration).

        Args:
            trainer: A trainer built like the one that wrote the state.
            where: Names the checkpoint in error messages.
        """
        from metasd_pyg.training.config import resumable_keys
        from metasd_pyg.training.optim import load_optimizer_state

        check_resume(self.config, trainer.config.to_dict(), resumable_keys(), where)
        dev = trainer.device
        with torch.no_grad():
            for n, p in trainer.model.named_parameters():
                p.copy_(self.model[n].to(p.device))
        if self.masks:
            trainer.masks = {k: v.to(dev) for k, v in self.masks.items()}
        if isinstance(self.best, DiskSnapshot):  # read tensor by tensor when restored
            trainer.selection.best_state = self.best
        elif self.best is not None:
            trainer.selection.best_state = {k: v.to(dev) for k, v in self.best.items()}
        load_optimizer_state(trainer.optimizer,
                             {k: v.to(dev) for k, v in self.optimizer[0].items()},
                             self.optimizer[1])
        trainer.generator.set_state(self.generator)
        for part in trainer.parts:
            part.on_fit_start(trainer)  # builds optimisers before their state is restored
            tensors, json_state = self.parts.get(part.name, ({}, {}))
            part.load_state_dict({k: v.to(dev) for k, v in tensors.items()}, json_state)
        p = self.progress
        trainer.epoch, trainer.global_step = int(p["epoch"]), int(p["global_step"])
        trainer.history = list(p["history"])
        sel = trainer.selection
        sel.best_metric = p["best_metric"] if p["best_metric"] is not None else -math.inf
        sel.best_epoch, sel.bad_evals = int(p["best_epoch"]), int(p["bad_evals"])
        trainer.extra = dict(p["extra"])

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the state atomically (:func:`save_checkpoint`); returns the JSON path.

        Args:
            directory: Checkpoint folder.
        """
        tensors: dict[str, Tensor] = {f"model/{k}": v for k, v in self.model.items()}
        tensors.update({f"mask/{k}": v for k, v in self.masks.items()})
        best_file = None
        if isinstance(self.best, DiskSnapshot):  # named, not embedded (written at selection)
            best_file = self.best.path.name
        elif self.best is not None:
            tensors.update({f"best/{k}": v for k, v in self.best.items()})
        tensors.update({f"opt/{k}": v for k, v in self.optimizer[0].items()})
        tensors["rng/generator"] = self.generator
        parts_json: dict[str, Any] = {}
        for name, (pt, ps) in self.parts.items():
            tensors.update({f"part/{name}/{k}": v for k, v in pt.items()})
            parts_json[name] = ps
        state = {**self.progress, "optimizer": self.optimizer[1], "parts": parts_json,
                 "config": self.config, "has_best": self.best is not None}
        if best_file is not None:
            state["best_file"] = best_file
        path = save_checkpoint(directory, f"{self.epoch:05d}", tensors, state)
        # committed: best-epoch snapshots the checkpoint no longer names can go
        for old in Path(directory).glob(f"{SNAPSHOT_PREFIX}*.safetensors"):
            if old.name != best_file:
                old.unlink(missing_ok=True)
        return path

    @classmethod
    def read(cls, directory: str | os.PathLike[str]) -> TrainingState:
        """Read the committed checkpoint of ``directory``.

        Args:
            directory: Checkpoint folder.

        Raises:
            RunFolderError: No checkpoint, a corrupt one, or one missing its tensors.
        """
        from metasd_pyg.training.config import saved_config_values

        tensors, state = load_checkpoint(directory)
        where = Path(directory) / CHECKPOINT_JSON
        try:
            parts_json = state.get("parts", {})
            parts = {name: (_prefixed(tensors, f"part/{name}/"), parts_json[name])
                     for name in parts_json}
            progress = {k: state[k] for k in ("epoch", "global_step", "history", "best_metric",
                                              "best_epoch", "bad_evals")}
            progress["extra"] = dict(state.get("extra", {}))
            config = state.get("config")
            return cls(
                model=_prefixed(tensors, "model/"),
                masks={k: v.bool() for k, v in _prefixed(tensors, "mask/").items()},
                best=_best(Path(directory), tensors, state),
                optimizer=(_prefixed(tensors, "opt/"), state["optimizer"]),
                generator=tensors["rng/generator"],
                parts=parts, progress=progress,
                config=None if config is None else saved_config_values(config),
            )
        except KeyError as exc:
            raise RunFolderError(f"{where}: checkpoint lacks {exc.args[0]!r}") from None


def _best(folder: Path, tensors: Mapping[str, Tensor], state: Mapping[str, Any]
          ) -> Mapping[str, Tensor] | None:
    """The checkpoint's best-epoch snapshot: embedded, or the file it names."""
    if not state.get("has_best"):
        return None
    name = state.get("best_file")
    if name is None:
        return _prefixed(tensors, "best/")
    path = folder / str(name)
    if Path(str(name)).name != str(name) or not path.is_file():
        raise RunFolderError(f"{folder / CHECKPOINT_JSON}: its best-epoch snapshot "
                             f"{name!r} is missing from {folder}")
    return DiskSnapshot(path)


def check_resume(saved: Mapping[str, Any] | None, given: Mapping[str, Any],
                 resumable: Iterable[str], where: str) -> None:
    """The resume guard: refuse options that would change a run's trajectory.

    Used by :meth:`~metasd_pyg.training.trainer.Trainer.load_checkpoint` (the
    trainer's options) and by the run pipeline before any data loads (with the
    run folder's options too).

    Args:
        saved: Flat configuration the run was written with (``None``: nothing to check).
        given: Flat configuration asked for now.
        resumable: Keys that may differ.
        where: Names the run folder or checkpoint in the message.

    Raises:
        ConfigError: The first differing key outside ``resumable``, with both values.
    """
    from metasd_pyg.errors import ConfigError

    if saved is None:
        return
    allowed = set(resumable)
    for key in sorted(set(saved) | set(given)):
        if key in allowed or saved.get(key) == given.get(key):
            continue
        raise ConfigError(
            f"cannot change {key} when resuming {where} (saved {saved.get(key)!r}, given "
            f"{given.get(key)!r}); resume with the same value, or start a new run")
