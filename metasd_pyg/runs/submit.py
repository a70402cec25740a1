"""OGB leaderboard submissions: N seeds of one configuration, selected on valid, summarised.

``metasd-pyg ogb-submit`` (:func:`submit`) trains the configuration once per
seed ``0 .. N-1`` into ``<out>/seed-<k>/`` (ordinary run folders: each run
selects its epoch on the validation split only; the meta step's quiz comes
from a held-out slice of train), reuses the seeds that already finished and
resumes an interrupted one from its last checkpoint, then writes

* ``submission.json``: mean and unbiased standard deviation (``torch.std``)
  of valid and test MRR over the seeds, ``#Params`` as OGB counts it (every
  parameter of the model, ``sum(p.numel() for p in model.parameters())``)
  with, beside it, the student's non-zeros and its exported artifact's bytes,
  the hardware, the run times, every hyper-parameter (values that differ from
  the library's defaults marked as chosen), the exact commands, and the
  per-seed results;
* ``submission.md``: the same as a Markdown block for the leaderboard form.

OGB's rules (https://ogb.stanford.edu/docs/leader_rules/): at least 10 seeds,
validation labels for model selection and hyper-parameters only, test
labels never used in training; the default of 10 seeds follows them.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch

from metasd_pyg.data.graph import KnowledgeGraph
from metasd_pyg.errors import ConfigError, RunFolderError
from metasd_pyg.runs.config import RunConfig
from metasd_pyg.sections import Section, check, option
from metasd_pyg.storage.atomic import atomic_write_json, atomic_write_text
from metasd_pyg.storage.folder import RunFolder
from metasd_pyg.training.checkpoint import has_checkpoint
from metasd_pyg.training.distributed import World

#: The submitted model of a run: ``auto`` = the student when the run has one.
SubmitModel = Literal["auto", "teacher", "student"]
#: Format tag of ``submission.json``.
SUBMISSION_FORMAT = "metasd-pyg/ogb-submission"


@dataclass(frozen=True)
class SubmitOptions(Section):
    """The leaderboard submission: how many seeds, which model.

    Args:
        seeds: Runs with seeds 0 .. seeds-1 (OGB asks for at least 10).
        submit_model: The model whose results are submitted: auto (the
            student when the mode trains one, else the model), teacher or student.
    """

    seeds: int = 10
    submit_model: SubmitModel = option("auto")

    def validate(self) -> None:
        check(self.seeds >= 1, f"seeds={self.seeds}: must be >= 1")


def _seed_config(config: RunConfig, out: Path, seed: int) -> RunConfig:
    trainer = config.train.trainer.replace(seed=seed)
    run = replace(config.run, out=str(out / f"seed-{seed}"))
    return RunConfig(run=run, train=config.train.with_sections(trainer))


def _state(folder: Path) -> str:
    """``new``, ``complete``, ``resumable`` (a checkpoint) or ``failed`` (nothing to resume)."""
    if not folder.exists():
        return "new"
    try:
        run = RunFolder.open(folder)
    except RunFolderError:
        return "failed"
    if run.marker().get("status") == "complete" and (folder / run.RESULTS).is_file():
        return "complete"
    return "resumable" if has_checkpoint(run.checkpoint_dir) else "failed"


def _std(values: list[float]) -> float | None:
    return float(torch.tensor(values, dtype=torch.float64).std()) if len(values) > 1 else None


def _mean(values: list[float]) -> float:
    return float(torch.tensor(values, dtype=torch.float64).mean())


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what :mod:`platform` knows.

    ``platform.processor()`` is empty on most Linux systems, and a leaderboard entry
    or a benchmark timed on "x86_64" does not say which machine it was.

    Args:
        cpuinfo: The file to read the ``model name`` line from.
    """
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return f"{value.strip()} ({platform.machine()})"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    """The machine the runs trained on (CPU, cores, the vector instructions torch's CPU
    kernels use, memory, GPU, torch)."""
    from metasd_pyg.training.memory import physical_memory_bytes

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "cores": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "memory_bytes": physical_memory_bytes(), "gpu": gpu,
            "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform()}


def _hyperparameters(config: RunConfig) -> list[dict[str, Any]]:
    """Every option with its value; ``chosen`` where it differs from the library default."""
    defaults = RunConfig().to_dict()
    skip = {"out", "seed", "progress"}
    return [{"name": k, "value": v, "chosen": defaults.get(k) != v}
            for k, v in config.to_dict().items() if k not in skip]


def submit(config: RunConfig, out: str | Path, options: SubmitOptions, *,
           command: Sequence[str] | None = None, graph: KnowledgeGraph | None = None
           ) -> dict[str, Any]:
    """Train (or reuse) one run per seed into ``out`` and write the submission files.

    Args:
        config: The configuration of every seed (its seed and run folder are replaced).
        out: The submission folder.
        options: Seeds and submitted model.
        command: The command line, recorded with the submission.
        graph: An already loaded graph.

    Returns:
        The content of ``submission.json`` (``{"rank", "world_size"}`` on ranks other
        than 0 of a data-parallel submission: every seed is trained by all ranks,
        rank 0 decides which seeds to train and writes every file).
    """
    from metasd_pyg.training.runtime import resolve_device

    world = World.from_env(config.train.distributed,
                           resolve_device(config.train.runtime.device))
    try:
        return _submit(config, Path(out), options, command=command, graph=graph, world=world)
    finally:
        world.close()


def _submit(config: RunConfig, folder: Path, options: SubmitOptions, *,
            command: Sequence[str] | None, graph: KnowledgeGraph | None,
            world: World) -> dict[str, Any]:
    """:func:`submit` in ``world``."""
    from metasd_pyg.data import load_dataset
    from metasd_pyg.runs.pipeline import train_run
    from metasd_pyg.training.modes import has_student

    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"{folder}: exists and is not a folder")
    mode = config.train.recipe.mode
    role = options.submit_model
    if role == "auto":
        role = "student" if has_student(mode) else "teacher"
    if role == "student" and not has_student(mode):
        raise ConfigError(f"submit_model=student: mode {mode!r} trains no student")
    start = time.perf_counter()
    if world.is_main:
        folder.mkdir(parents=True, exist_ok=True)
    per_seed = []
    for seed in range(options.seeds):
        cfg = _seed_config(config, folder, seed)
        run_dir = Path(str(cfg.run.out))
        # rank 0's view of the seed's folder decides for every rank
        state = world.broadcast_object(_state(run_dir) if world.is_main else None,
                                       "rank 0's view of the seeds")
        if state != "complete":
            if graph is None:  # each machine's first rank builds the caches
                graph = world.local_first(lambda: load_dataset(
                    config.run.dataset, config.run.data_root,
                    progress=config.train.runtime.progress and world.is_main))
            train_run(cfg, overwrite=state == "failed", resume=state == "resumable",
                      command=command, graph=graph, world=world)
        if not world.is_main:
            continue
        results = json.loads((run_dir / RunFolder.RESULTS).read_text(encoding="utf-8"))
        per_seed.append(_seed_summary(seed, run_dir, results, role, state))
    if not world.is_main:
        return {"rank": world.rank, "world_size": world.size}
    doc = _submission(config, folder, per_seed, role, command, time.perf_counter() - start)
    atomic_write_json(folder / "submission.json", doc)
    atomic_write_text(folder / "submission.md", submission_markdown(doc))
    return doc


def _seed_summary(seed: int, run_dir: Path, results: dict[str, Any], role: str,
                  state: str) -> dict[str, Any]:
    models = results["models"]
    if role not in models:
        raise RunFolderError(f"{run_dir}/results.json: no {role} results (models: "
                             f"{', '.join(models)})")
    m = models[role]
    comp = results.get("compression", {})
    dtype = results.get("config", {}).get("export_dtype", "fp32")
    artifact = comp.get(dtype, {}).get("bytes") if isinstance(comp.get(dtype), dict) else None
    return {"seed": seed, "run": str(run_dir), "reused": state == "complete",
            "valid_mrr": m["valid"]["mrr"], "test_mrr": m["test"]["mrr"],
            "params": m["params"], "nonzeros": m["nonzeros"], "artifact_bytes": artifact,
            "best_epoch": results["training"]["best_epoch"],
            "wall_time": results["training"].get("wall_time")}


def _submission(config: RunConfig, folder: Path, per_seed: list[dict[str, Any]], role: str,
                command: Sequence[str] | None, wall: float) -> dict[str, Any]:
    valid = [s["valid_mrr"] for s in per_seed]
    test = [s["test_mrr"] for s in per_seed]
    cmd = shlex.join(command) if command else None
    return {
        "format": SUBMISSION_FORMAT, "format_version": 1,
        "dataset": config.run.dataset, "mode": config.train.recipe.mode,
        "submitted_model": role, "seeds": len(per_seed),
        "valid_mrr": {"mean": _mean(valid), "std": _std(valid)},
        "test_mrr": {"mean": _mean(test), "std": _std(test)},
        "params": per_seed[0]["params"], "student_nonzeros": per_seed[0]["nonzeros"],
        "artifact_bytes": per_seed[0]["artifact_bytes"],
        "hardware": hardware(),
        "run_time": {"this_call_s": wall,
                     "seconds_per_seed": [s["wall_time"] for s in per_seed]},
        "hyperparameters": _hyperparameters(config),
        "commands": {"submit": cmd,
                     "per_seed": [f"metasd-pyg train --config {s['run']}/config.json "
                                  f"--out {s['run']}-rerun" for s in per_seed]},
        "per_seed": per_seed,
        "selection": "each run selects its epoch on valid MRR only; the meta step's quiz is "
                     "a held-out slice of train; test labels are read only for the final "
                     "evaluation",
    }


def _fmt(stat: dict[str, Any]) -> str:
    std = stat["std"]
    return f"{stat['mean']:.4f} ± {std:.4f}" if std is not None else f"{stat['mean']:.4f}"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def submission_markdown(doc: dict[str, Any]) -> str:
    """The submission as Markdown: the leaderboard form's fields, then the details.

    Args:
        doc: The content of ``submission.json``.
    """
    hw = doc["hardware"]
    device = hw["gpu"] or f"{hw['cpu']} ({hw['cores']} cores, CPU only)"
    art = doc["artifact_bytes"]
    lines = [
        f"# OGB submission: {doc['dataset']} ({doc['mode']}, {doc['submitted_model']})", "",
        "## Leaderboard form", "",
        "| field | value |", "|---|---|",
        f"| Method | MetaSD ({doc['mode']}, {doc['submitted_model']}) |",
        f"| Test MRR | {_fmt(doc['test_mrr'])} |",
        f"| Validation MRR | {_fmt(doc['valid_mrr'])} |",
        f"| #Params | {doc['params']:,} |",
        f"| Non-zeros of the submitted model | {doc['student_nonzeros']:,} |",
        f"| Exported artifact | {'' if art is None else f'{art:,} bytes'} |",
        f"| Hardware | {device} |",
        f"| Seeds | {doc['seeds']} (0 .. {doc['seeds'] - 1}) |",
        "| Paper | https://aclanthology.org/2022.findings-emnlp.149/ |",
        "| External data | No |", "",
        "## Hyper-parameters (chosen = differs from the library default)", "",
        "| option | value | chosen |", "|---|---|---|",
        *(f"| {h['name']} | {h['value']} | {'yes' if h['chosen'] else ''} |"
          for h in doc["hyperparameters"]),
        "", "## Per seed", "", "| seed | valid MRR | test MRR | best epoch | seconds |",
        "|---|---|---|---|---|",
        *(f"| {s['seed']} | {s['valid_mrr']:.4f} | {s['test_mrr']:.4f} | {s['best_epoch']} | "
          f"{_seconds(s['wall_time'])} |" for s in doc["per_seed"]),
        "", "## Commands", "", "```bash", doc["commands"]["submit"] or "",
        *doc["commands"]["per_seed"], "```", "", doc["selection"] + ".", ""]
    return "\n".join(lines)
