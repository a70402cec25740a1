r"""Train one run end to end: run folder, trainer, final results, artifact, report.

:func:`train_run` is what ``metasd-pyg train`` does, usable from Python. It is
a sequence of steps, one function each:

1. check the run folder (and, with ``resume``, the saved configuration) and
   load the dataset, before anything is written (:func:`_check_target`,
   :func:`_load_graph`);
2. create the run folder (or reopen it with ``resume``) and save the resolved
   configuration and the software versions (:func:`_create_run`);
3. train the composition of parts of the mode (:func:`~metasd_pyg.training.recipes.compose`)
   (MetaSD, Li et al., Findings of EMNLP 2022,
   https://aclanthology.org/2022.findings-emnlp.149/, or a baseline mode),
   checkpoints in ``checkpoints/``, logs in ``train.jsonl`` / ``metrics.jsonl``
   (:func:`_train`);
4. evaluate the final results of every model on valid and test, re-bucketed
   as configured, plus relation categories (:func:`_final_results`);
5. store the final (best-valid) weights and masks (``model.safetensors``) and
   the compressed student (``student.safetensors``) (:func:`_write_weights`,
   :func:`_write_student`);
6. rewrite the logs from the checkpointed history, write the long-tail bucket
   table (``buckets.csv``), the relation-category table (``categories.csv``)
   and ``results.json`` (:func:`_write_logs`, :func:`_write_tables`,
   :func:`_write_results`);
7. write ``report.html`` (optional) and mark the run complete
   (:func:`_report_and_complete`).
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from metasd_pyg.data.graph import KnowledgeGraph
from metasd_pyg.errors import MetaSDError, RunFolderError
from metasd_pyg.evaluation import EvaluationResult, build_result
from metasd_pyg.export.artifact import encode_student, export_student
from metasd_pyg.export.names import pack_names
from metasd_pyg.models.factory import model_metadata
from metasd_pyg.runs.config import RESUMABLE_CHANGES, RunConfig, parse_bins
from metasd_pyg.runs.logger import RunLogger
from metasd_pyg.runs.summary import dataset_summary, size_summary
from metasd_pyg.storage.folder import RunFolder
from metasd_pyg.storage.jsonable import to_jsonable
from metasd_pyg.storage.lock import RunLock
from metasd_pyg.training.callbacks import ReleaseOptimizerState
from metasd_pyg.training.checkpoint import check_resume as _check_resume
from metasd_pyg.training.distributed import World
from metasd_pyg.training.memory import MemoryEstimate
from metasd_pyg.training.modes import roles_of

if TYPE_CHECKING:
    from metasd_pyg.training import TrainResult
    from metasd_pyg.training.recipes import Run

logger = logging.getLogger(__name__)

#: Format tag of ``results.json``.
RESULTS_FORMAT = "metasd-pyg-results"
#: Its version: 2 keeps the per-query test ranks in ``ranks.safetensors`` (an
#: evaluation's ``ranks_key``), 1 kept them in ``results.json`` (``ranks``, still read).
RESULTS_FORMAT_VERSION = 2


def default_run_dir(config: RunConfig, root: str | Path = "runs") -> Path:
    """``runs/<dataset>-<mode>-<YYYYmmdd-HHMMSS>`` for a run without ``out``.

    Args:
        config: The run's configuration.
        root: Parent folder.
    """
    data = Path(config.run.dataset).name if ("/" in config.run.dataset) else config.run.dataset
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", data.split(":", 1)[0]).strip("_") or "data"
    return Path(root) / f"{slug}-{config.train.recipe.mode}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_resume(saved: RunConfig, config: RunConfig, run_dir: Path) -> None:
    """Refuse option changes that would break a resumed run's trajectory.

    Args:
        saved: The configuration saved in the run folder.
        config: The configuration asked for now.
        run_dir: The run folder (for the message).

    Raises:
        ConfigError: An option outside :data:`RESUMABLE_CHANGES` differs.
    """
    _check_resume(saved.to_dict(), config.to_dict(), RESUMABLE_CHANGES, str(run_dir))


def _rebucket(result: EvaluationResult, graph: KnowledgeGraph, label: str, split: str,
              bucket_by: str, bins: Any) -> EvaluationResult:
    cfg = result.config
    out = build_result(
        result.ranks.drop(columns=["bucket"], errors="ignore"), graph, label=label,
        ks=cfg.get("ks", (1, 3, 10)), tie=cfg.get("tie", "realistic"),
        filtered=bool(cfg.get("filtered", True)), protocol=cfg.get("protocol", "full"),
        bucket_by=bucket_by, bins=bins,
        extra_config={k: v for k, v in cfg.items()
                      if k not in ("ks", "tie", "filtered", "protocol", "bucket_by", "bins")},
    )
    out.config["split"] = split
    return out


def _table(results: Sequence[tuple[str, str, EvaluationResult]]) -> pd.DataFrame:
    frames = []
    for role, split, res in results:
        frame = res.buckets.copy()
        frame.insert(0, "split", split)
        frame.insert(0, "role", role)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _csv(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format="%.6g")
    return buf.getvalue()


def _teacher_params(model: torch.nn.Module, config: RunConfig) -> int:
    """Parameters of the dense teacher of ``config`` (every table is linear in ``dim``)."""
    total = sum(int(p.numel()) for p in model.parameters())
    dim = int(getattr(model, "hidden_channels", config.train.model.dim))
    return total * config.train.model.dim // max(dim, 1)


def _roles(result: Any, mode: str) -> list[tuple[str, Any, Any, bool]]:
    """``(role, valid, test, masked)`` of every model the run produced (training.modes.ROLES)."""
    out = []
    for role in roles_of(mode):
        valid, test = result.of(role.result, "valid"), result.of(role.result, "test")
        if valid is not None and test is not None:
            out.append((role.name, valid, test, role.masked))
    return out


def _as_result(obj: Any) -> EvaluationResult:
    if isinstance(obj, EvaluationResult):
        return obj
    if isinstance(obj, dict):  # restored from a checkpoint's JSON state
        return EvaluationResult.from_dict(obj)
    raise TypeError(f"not an evaluation result: {type(obj).__name__}")


def train_run(
    config: RunConfig,
    *,
    overwrite: bool = False,
    resume: bool = False,
    command: Sequence[str] | None = None,
    graph: KnowledgeGraph | None = None,
    world: World | None = None,
) -> dict[str, Any]:
    """Train one run into its run folder and return a JSON-serialisable summary.

    Args:
        config: The resolved configuration (``config.run.out`` is the run
            folder; ``None`` picks :func:`default_run_dir`).
        overwrite: Replace an existing run folder.
        resume: Continue the run in ``config.run.out`` from its last checkpoint
            (only options in :data:`RESUMABLE_CHANGES` may differ from the saved ones).
        command: The command line, recorded in ``run.json``.
        graph: An already loaded graph (skips loading ``config.run.dataset``).
        world: The ranks of a data-parallel run, kept open after the run
            (default: the ``torchrun`` world, joined for this run and left after it).

    Returns:
        ``{"run", "dataset", "mode", "models": {role: {"valid", "test", ...}},
        "compression", "training", "files"}``; on ranks other than 0 of a
        data-parallel run, ``{"rank", "world_size", "run", "steps"}``.

    Launched by ``torchrun`` with several processes, the run is data-parallel
    (:mod:`metasd_pyg.training.distributed`): rank 0 checks and creates the run
    folder, validates, checkpoints and writes every file; the other ranks load
    the data themselves, train their shards and write nothing.
    """
    from metasd_pyg.training.runtime import resolve_device

    if world is not None:
        return _train_run(config, world, overwrite=overwrite, resume=resume,
                          command=command, graph=graph)
    world = World.from_env(config.train.distributed,
                           resolve_device(config.train.runtime.device))
    try:
        return _train_run(config, world, overwrite=overwrite, resume=resume,
                          command=command, graph=graph)
    finally:
        world.close()


def _train_run(config: RunConfig, world: World, *, overwrite: bool, resume: bool,
               command: Sequence[str] | None, graph: KnowledgeGraph | None) -> dict[str, Any]:
    """:func:`train_run` in ``world`` (module docstring)."""
    start = time.perf_counter()
    out = Path(config.run.out) if config.run.out else default_run_dir(config)
    out = Path(world.broadcast_object(str(out), "the run folder's name"))
    if not world.is_main:
        return _follow_run(config, world, out, resume=resume, graph=graph)
    return _lead_run(config, world, out, overwrite=overwrite, resume=resume, command=command,
                     graph=graph, start=start)


def _lead_run(config: RunConfig, world: World, out: Path, *, overwrite: bool, resume: bool,
              command: Sequence[str] | None, graph: KnowledgeGraph | None,
              start: float) -> dict[str, Any]:
    """Rank 0 (or the only process): lock, check, create and write the run folder; train."""
    lock = RunLock(out)
    try:
        return _locked_run(config, world, out, lock, overwrite=overwrite, resume=resume,
                           command=command, graph=graph, start=start)
    finally:
        lock.release()


def _locked_run(config: RunConfig, world: World, out: Path, lock: RunLock, *,
                overwrite: bool, resume: bool, command: Sequence[str] | None,
                graph: KnowledgeGraph | None, start: float) -> dict[str, Any]:
    """:func:`_lead_run` once ``lock`` is taken (it is taken first thing)."""
    failure: str | None = "rank 0 stopped while preparing the run"
    try:
        # One writer per folder, then fail fast, and leave nothing behind, on a bad
        # folder or dataset.
        lock.acquire()
        _check_target(out, config, overwrite=overwrite, resume=resume)
        graph = _load_graph(config) if graph is None else graph
        memory = _check_memory(graph, config, _ranks_on_this_machine(world))
        _check_disk(out, memory)
        run = _create_run(out, config, overwrite=overwrite, resume=resume, command=command)
        failure = None
    except MetaSDError as exc:
        failure = str(exc)
        raise
    finally:  # the other ranks wait for the folder (or the reason there is none)
        world.broadcast_object(failure, "rank 0's setup of the run folder")
    world.barrier("loading the data")  # the others load now, after rank 0 built the caches
    logger.info("%s: %s", run.path, graph)
    trainer, result = _train(run, graph, config, resume=resume, world=world)
    if not result.evaluated:  # max_steps ended a smoke run: no final evaluation
        return _steps_only(run, graph, config, result, memory, start)
    final = _final_results(trainer, result, graph, config)
    _write_weights(run, trainer, graph, config, final.params)
    compression = _write_student(run, trainer, graph, config, final)
    _write_logs(run, result, final)
    _write_tables(run, final)
    training = _write_results(run, result, graph, config, final, compression, start)
    files = _report_and_complete(run, config, has_student=trainer.masks is not None,
                                 start=start)
    training = {**training, "wall_time": time.perf_counter() - start}
    summary = _summary(run, graph, config, final, compression, training, files)
    summary["memory"] = {"estimated_bytes": memory.peak_bytes, "peak_rss_bytes": peak_rss_bytes()}
    return summary


def disk_bytes(memory: MemoryEstimate) -> int:
    """Disk a run needs at its peak, from its memory plan's buffers: a checkpoint (model,
    optimiser state, masks) twice while the next one is written beside it, the best
    epoch's snapshot, and the final weights (the export and logs are smaller)."""
    def held(prefix: str) -> int:
        return sum(v for k, v in memory.held.items() if k.startswith(prefix))

    model, masks = held("model"), held("student masks")
    checkpoint = model + held("optimizer state") + held("meta optimizer state") + masks
    return 2 * checkpoint + 2 * (model + masks)


def _check_disk(out: Path, memory: MemoryEstimate) -> None:
    """Refuse, before training, a run whose folder's filesystem has too little space."""
    import shutil

    need = disk_bytes(memory)
    probe = out.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return  # cannot tell: the writes will say
    if free < need:
        raise RunFolderError(
            f"{out}: the run needs about {need / 1e9:.2f} GB of disk (checkpoints, the best "
            f"epoch's snapshot, the final weights) and {probe} has {free / 1e9:.2f} GB free; "
            "free some space or choose another --out")


def _ranks_on_this_machine(world: World) -> int:
    """Processes of this run on rank 0's machine (``torchrun``'s ``LOCAL_WORLD_SIZE``)."""
    import os

    if not world.distributed:
        return 1
    return int(os.environ.get("LOCAL_WORLD_SIZE", world.size))


def _follow_run(config: RunConfig, world: World, out: Path, *, resume: bool,
                graph: KnowledgeGraph | None) -> dict[str, Any]:
    """A rank other than 0: wait for rank 0's run folder, load the data, train its shards.

    It reads the checkpoint it resumes from (the run folder must be visible to
    every rank) and writes nothing.
    """
    from metasd_pyg.training.recipes import Built, compose

    failure = world.broadcast_object(None, "rank 0's setup of the run folder")
    if failure is not None:
        raise RunFolderError(f"{world.describe()}: rank 0 refused the run: {failure}")
    quiet = config.train.replace(progress=False)
    if graph is None:
        from metasd_pyg.data import load_dataset

        graph = world.local_first(lambda: load_dataset(config.run.dataset,
                                                       config.run.data_root, progress=False))
    else:
        world.barrier("loading the data")  # the same one wait as local_first's
    trainer = compose(graph, quiet, Built(checkpoint_dir=out / RunFolder.CHECKPOINTS,
                                          world=world))
    result = trainer.fit(resume=resume)
    return {"rank": world.rank, "world_size": world.size, "run": str(out),
            "steps": result.steps}


def _steps_only(run: RunFolder, graph: KnowledgeGraph, config: RunConfig, result: TrainResult,
                memory: MemoryEstimate, start: float) -> dict[str, Any]:
    """Finish a run that ``max_steps`` stopped without ``final_eval``: its logs and
    ``results.json`` (training and memory only), no evaluation, export or report."""
    run.truncate_logs(after_epoch=-1)
    for rec in result.history:
        run.append_train_log(to_jsonable(rec))
    training = _training_summary(result, start)
    out = {"run": str(run.path), "dataset": graph.name, "mode": config.train.recipe.mode,
           "models": {}, "compression": {}, "training": training,
           "memory": {"estimated_bytes": memory.peak_bytes, "peak_rss_bytes": peak_rss_bytes()},
           "files": {"run": str(run.path), "results": str(run.path / run.RESULTS)}}
    run.write_results(to_jsonable({"dataset": dataset_summary(graph), "training": training,
                                   "memory": out["memory"], "config": config.to_dict()}))
    run.mark_complete(wall_time=time.perf_counter() - start)
    return out


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (``ru_maxrss``; KiB on Linux)."""
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


#: Bytes per ranked test query and model of the run's final phase: the final evaluations'
#: per-query ranks, the candidates they page in and the student's export. Measured at
#: ogbl-wikikg2 size, 1,197,086 ranked test queries (both sides) of two models: the final
#: phase peaked 3.06 GB (with the meta step, 15.64 GB in all) and 2.95 GB (the default,
#: resumed, 13.53 GB) above the held buffers (``benchmarks/results/scale.md``).
RESULTS_BYTES_PER_QUERY = 1280
#: Name of that item in the memory estimate.
FINAL_RESULTS_ITEM = "final phase (every query's rank, the export)"


def final_results_bytes(graph: KnowledgeGraph, config: RunConfig) -> int:
    """Memory of the run's final phase (:data:`RESULTS_BYTES_PER_QUERY` per test query, both
    directions, and model); 0 for a ``max_steps`` run without a final evaluation. The
    optimisers' state is freed before it (``ReleaseOptimizerState``).

    Args:
        graph: The run's graph.
        config: The run's configuration.
    """
    trainer = config.train.trainer
    if trainer.max_steps is not None and not trainer.final_eval:
        return 0
    queries = 2 * int(graph.test.size(0))
    return RESULTS_BYTES_PER_QUERY * queries * len(roles_of(config.train.recipe.mode))


def _check_memory(graph: KnowledgeGraph, config: RunConfig,
                  ranks_here: int = 1) -> MemoryEstimate:
    """Estimate the run's peak memory, print it (with progress output) and refuse a run
    above ``config.run.memory_limit`` before anything is written or allocated.

    Args:
        ranks_here: Processes of a data-parallel run on this machine (each holds the
            tables, the optimiser state and the data: the machine needs this many times
            one process's peak, planned on rank 0's, the largest).
    """
    import sys

    from metasd_pyg.training.memory import estimate_memory

    memory = estimate_memory(config.train, graph, checkpoints=True)  # the run folder's
    # not counted against the optimisers' freed state: the allocator keeps much of it
    final = final_results_bytes(graph, config)
    if final > 0:
        memory = MemoryEstimate(memory.held, {**memory.transient, FINAL_RESULTS_ITEM: final})
    limit = config.run.memory_limit_bytes()
    machine = memory
    if ranks_here > 1:
        machine = MemoryEstimate({f"{ranks_here} ranks on this machine, "
                                  f"{memory.peak_bytes / 1e9:.2f} GB each, together":
                                  ranks_here * memory.peak_bytes})
    if config.train.runtime.progress:
        stated = "no limit" if limit is None else f"limit {limit / 1e9:.2f} GB"
        per = f" per rank, {ranks_here * memory.peak_bytes / 1e9:.2f} GB for the {ranks_here} " \
              "ranks on this machine" if ranks_here > 1 else ""
        print(f"{memory.describe()}{per}; {stated}", file=sys.stderr)
    machine.check(limit, where="memory limit (memory_limit, --memory-limit)")
    return memory


@dataclass
class _FinalResults:
    """The final results of every model of a run (see :func:`_final_results`).

    Attributes:
        params: The trained model's parameters (detached).
        teacher_params: Parameters of the dense teacher of the run's configuration.
        models: Role -> ``{"masked", "valid", "test"}`` summaries plus the size summary.
        evaluated: ``(role, split, result)``, re-bucketed as configured.
        categories: ``(role, split, result)``, bucketed by relation category.
    """

    params: dict[str, torch.Tensor]
    teacher_params: int
    models: dict[str, Any] = field(default_factory=dict)
    evaluated: list[tuple[str, str, EvaluationResult]] = field(default_factory=list)
    categories: list[tuple[str, str, EvaluationResult]] = field(default_factory=list)


def _check_target(out: Path, config: RunConfig, *, overwrite: bool, resume: bool) -> None:
    """Refuse, before anything is written, a bad run folder or a breaking resume.

    Raises:
        ConfigError: ``resume`` with a changed option outside :data:`RESUMABLE_CHANGES`.
        RunFolderError: ``out`` cannot be created, replaced or resumed as asked.
    """
    if resume:
        saved = RunConfig.from_saved(out)
        check_resume(saved, config, out)
    RunFolder.check_target(out, overwrite=overwrite, resume=resume)


def _load_graph(config: RunConfig) -> KnowledgeGraph:
    """Load the run's dataset (``config.run.dataset`` from ``config.run.data_root``)."""
    from metasd_pyg.data import load_dataset

    return load_dataset(config.run.dataset, config.run.data_root,
                        progress=config.train.runtime.progress)


def _create_run(out: Path, config: RunConfig, *, overwrite: bool, resume: bool,
                command: Sequence[str] | None) -> RunFolder:
    """Create (or reopen) the run folder and save the configuration and versions.

    ``config.run.out`` is set to ``out``, so the saved configuration names its folder.
    """
    run = RunFolder.create(out, overwrite=overwrite, resume=resume, command=command)
    config.run.out = str(out)
    run.write_config(config.to_dict())
    if resume:  # a new run folder records them on creation
        run.write_versions()
    return run


def _train(run: RunFolder, graph: KnowledgeGraph, config: RunConfig, *,
           resume: bool, world: World | None = None) -> tuple[Run, TrainResult]:
    """Train (or continue training) with checkpoints and logs in ``run``.

    A run that fails before its first checkpoint leaves no run folder behind
    (there is nothing to resume from); a resumed one is never deleted.
    """
    from metasd_pyg.training.checkpoint import has_checkpoint
    from metasd_pyg.training.recipes import Built, compose

    try:
        # the optimisers' state goes once training ends: the final phase
        # (evaluation, export, report) needs its memory more
        parts = [RunLogger(run), ReleaseOptimizerState()]
        trainer = compose(graph, config.train, Built(callbacks=parts,
                                                     checkpoint_dir=run.checkpoint_dir,
                                                     world=world))
        result = trainer.fit(resume=resume)
    except BaseException:
        # Failed before the first checkpoint (e.g. an option the trainer refuses):
        # nothing to resume from, so leave no half-made run folder behind.
        if not resume and not has_checkpoint(run.checkpoint_dir):
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    return trainer, result


def _final_results(trainer: Run, result: TrainResult, graph: KnowledgeGraph,
                   config: RunConfig) -> _FinalResults:
    """Every model's valid and test results, re-bucketed as configured, plus categories.

    Each model's entry in :attr:`_FinalResults.models` holds whether it is
    masked, its valid and test summaries, and its size against the dense teacher.
    """
    bins = parse_bins(config.run.bins)
    params = {n: p.detach() for n, p in trainer.model.named_parameters()}
    final = _FinalResults(params=params,
                          teacher_params=_teacher_params(trainer.model, config))
    for role, valid, test, masked in _roles(result, config.train.recipe.mode):
        entry: dict[str, Any] = {"masked": masked}
        for split, res in (("valid", valid), ("test", test)):
            res = _rebucket(_as_result(res), graph, role, split, config.run.bucket_by, bins)
            final.evaluated.append((role, split, res))
            final.categories.append((role, split, _rebucket(res, graph, role, split,
                                                            "category", "log")))
            entry[split] = res.summary
        entry.update(size_summary(params, trainer.masks if masked else None,
                                  final.teacher_params))
        final.models[role] = entry
    return final


def _write_weights(run: RunFolder, trainer: Run, graph: KnowledgeGraph,
                   config: RunConfig, params: dict[str, torch.Tensor]) -> None:
    """Write the final weights, the student's masks and the names to ``model.safetensors``."""
    extra: dict[str, torch.Tensor] = {}
    meta = {
        **model_metadata(trainer.model, graph.num_relations),
        "dataset": graph.name, "mode": config.train.recipe.mode,
        "entity_names": pack_names(graph.entity_names, "entity_names", extra),
        "relation_names": pack_names(graph.relation_names, "relation_names", extra),
    }
    run.write_model(params, trainer.masks, meta, extra)


def _write_student(run: RunFolder, trainer: Run, graph: KnowledgeGraph,
                   config: RunConfig, final: _FinalResults) -> dict[str, Any]:
    """Export the compressed student (if the run has one) and return the compression summary.

    The student is written in ``config.run.export_dtype``; the other value type
    is encoded only to report its size. A dense run reports its parameter ratio.
    """
    teacher_params = final.teacher_params
    compression: dict[str, Any] = {"teacher_params": teacher_params,
                                   "dense_teacher_bytes": 4 * teacher_params}
    if trainer.masks is None:
        total = sum(int(p.numel()) for p in final.params.values())
        compression["model_params"] = total
        compression["ratio_params"] = total / max(teacher_params, 1)
        return compression
    provenance = {"source_run": str(run.path.resolve()), "dataset": graph.name,
                  "mode": config.train.recipe.mode}
    info = export_student(run.student_path, trainer.model, trainer.masks,
                          dtype=config.run.export_dtype, entity_names=graph.entity_names,
                          relation_names=graph.relation_names, metadata=provenance)
    compression[config.run.export_dtype] = info.to_dict()
    other = "fp16" if config.run.export_dtype == "fp32" else "fp32"
    _, alt = encode_student(trainer.model, trainer.masks, dtype=other,
                            entity_names=graph.entity_names,
                            relation_names=graph.relation_names, metadata=provenance)
    compression[other] = alt.to_dict()  # size only: nothing written
    compression["artifact"] = run.STUDENT
    compression["student_nonzeros"] = info.nonzeros
    compression["ratio_fp32"] = compression["fp32"]["ratio"]
    compression["ratio_fp16"] = compression["fp16"]["ratio"]
    return compression


def _write_logs(run: RunFolder, result: TrainResult, final: _FinalResults) -> None:
    """Rewrite ``train.jsonl`` / ``metrics.jsonl`` from the checkpointed history.

    The history is authoritative (the live logs may hold epochs a resume
    replayed); the final valid/test results of every model follow (``final: true``).
    """
    history = [to_jsonable(h) for h in result.history]
    run.truncate_logs(after_epoch=-1)
    for rec in history:
        run.append_train_log(rec)
        if "valid_mrr" in rec:
            run.append_metrics({"epoch": rec["epoch"], "split": "valid", "final": False,
                                **{k: v for k, v in rec.items()
                                   if k.startswith(("valid_", "teacher_valid"))}})
    for role, split, res in final.evaluated:
        run.append_metrics({"epoch": result.best_epoch, "split": split, "final": True,
                            "model": role, **{k: v for k, v in res.summary.items()
                                              if not isinstance(v, dict)}})


def _write_tables(run: RunFolder, final: _FinalResults) -> None:
    """Write the long-tail bucket and relation-category tables (CSV)."""
    run.write_table(run.BUCKETS, _csv(_table(final.evaluated)))
    run.write_table(run.CATEGORIES, _csv(_table(final.categories)))


def _write_results(run: RunFolder, result: TrainResult, graph: KnowledgeGraph,
                   config: RunConfig, final: _FinalResults, compression: dict[str, Any],
                   start: float) -> dict[str, Any]:
    """Write ``ranks.safetensors`` (every test query's rank, per model), then
    ``results.json`` (which refers to it), and return the training summary.

    Args:
        start: :func:`time.perf_counter` at the start of the run (for ``wall_time``).
    """
    training = _training_summary(result, start)
    run.write_ranks({_ranks_key(role, split): res.ranks
                     for role, split, res in final.evaluated if split == "test"})
    run.write_results({
        "format": RESULTS_FORMAT,
        "format_version": RESULTS_FORMAT_VERSION,
        "run": run.name,
        "mode": config.train.recipe.mode,
        "dataset": dataset_summary(graph),
        "config": config.to_dict(),
        "models": final.models,
        "training": training,
        "compression": compression,
        "evaluations": [
            {"role": role, "split": split, **res.to_dict(),
             **({"ranks_key": _ranks_key(role, split)} if split == "test" else {})}
            for role, split, res in final.evaluated
        ],
        "categories": [
            {"role": role, "split": split, **res.to_dict()}
            for role, split, res in final.categories
        ],
    })
    return training


def _ranks_key(role: str, split: str) -> str:
    """Key of a model's per-query ranks in ``ranks.safetensors``."""
    return f"{role}/{split}"


def _training_summary(result: TrainResult, start: float) -> dict[str, Any]:
    """Epochs, best epoch and valid MRR, early stop, and wall times of the run so far."""
    return {
        "best_epoch": result.best_epoch,
        "best_valid_mrr": result.best_valid_mrr,
        "epochs": len(result.history),
        "stopped_early": result.stopped_early,
        "steps": result.steps,
        "step_seconds_median": result.step_seconds_median,
        "train_wall_time": result.wall_time,
        "wall_time": time.perf_counter() - start,
    }


def _report_and_complete(run: RunFolder, config: RunConfig, *, has_student: bool,
                         start: float) -> dict[str, str]:
    """Write ``report.html`` (if asked), mark the run complete, return the run's files."""
    files = {"run": str(run.path), "results": str(run.path / run.RESULTS),
             "buckets": str(run.path / run.BUCKETS),
             "categories": str(run.path / run.CATEGORIES)}
    if has_student:
        files["student"] = str(run.student_path)
    if config.run.report:
        from metasd_pyg.report import write_report

        write_report([run.path], run.report_path)
        files["report"] = str(run.report_path)
    run.mark_complete(wall_time=time.perf_counter() - start)
    return files


def _summary(run: RunFolder, graph: KnowledgeGraph, config: RunConfig, final: _FinalResults,
             compression: dict[str, Any], training: dict[str, Any],
             files: dict[str, str]) -> dict[str, Any]:
    """The JSON-serialisable summary :func:`train_run` returns (flat metrics only)."""
    return {
        "run": str(run.path),
        "dataset": graph.name,
        "mode": config.train.recipe.mode,
        "models": {role: {"valid": _flat(m["valid"]), "test": _flat(m["test"]),
                          "params": m["params"], "nonzeros": m["nonzeros"]}
                   for role, m in final.models.items()},
        "compression": {k: v for k, v in compression.items()
                        if not isinstance(v, dict)},
        "training": training,
        "files": files,
    }


def _flat(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if not isinstance(v, dict)}
