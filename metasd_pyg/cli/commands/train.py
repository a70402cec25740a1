"""``metasd-pyg train``: MetaSD or a baseline into a run folder (config, logs, results, report)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from metasd_pyg.cli.output import human_bytes, text_table
from metasd_pyg.errors import ConfigError

EPILOG = """\
examples:
  metasd-pyg train                                 # main job: MetaSD on the built-in synthetic
                                                   # graph, run folder + report in ~2 minutes
  metasd-pyg train --out runs/quickstart --overwrite
  metasd-pyg train --dataset umls --data-root ../shared/datasets --epochs 60 --dim 100 \\
                   --strategy aligned --sparsity 0.9 --out runs/umls-aligned
  metasd-pyg train --dataset fb15k-237 --mode dense_same_nnz --out runs/fb-small
  metasd-pyg train --config run.yaml --seed 2       # flags override the file
  metasd-pyg train --out runs/umls-aligned --resume --epochs 80   # continue a run
  metasd-pyg train --dataset kinship --print-config --json         # resolved config, no run

Options come from, lowest priority first: the trainer's defaults, the quick-start
profile on the synthetic dataset (dim 64, 6 epochs, batch 2000, lr 0.2), --config
FILE (YAML, TOML or JSON, flat keys as in the flags, '-' or '_'), then the flags.
The resolved
configuration is saved as config.json in the run folder (usable as --config).
An existing run folder is never replaced without --overwrite; --resume continues
it from its last checkpoint (only epochs, patience, device, threads, progress and
output options may change).
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``train`` subcommand.

    Args:
        sub: The subparsers action of the main parser.
        common: Parent parser with the common output flags.
    """
    p = sub.add_parser("train", parents=[common], help="train MetaSD or a baseline into a run",
                       description="Train MetaSD (teacher + pruned student) or a baseline, "
                       "writing a run folder with the resolved configuration, versions, "
                       "metrics log, checkpoints, results, compressed student and report.",
                       epilog=EPILOG)
    run = p.add_argument_group("run")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--overwrite", action="store_true",
                      help="replace an existing run folder")
    mode.add_argument("--resume", action="store_true",
                      help="continue the run in --out from its last checkpoint")
    add_training_options(p, run)
    p.set_defaults(handler=run_train, render=render_train)


def add_training_options(p: argparse.ArgumentParser, run: Any) -> None:
    """The configuration flags of a training command: --config, --preset, --print-config,
    the run options and every section's options (one group per section).

    Args:
        p: The command's parser.
        run: Its "run" argument group.
    """
    from metasd_pyg.runs.config import QUICKSTART, RunOptions
    from metasd_pyg.runs.options import add_dataclass_flags
    from metasd_pyg.training.config import MetaSDConfig
    from metasd_pyg.training.presets import PRESETS

    run.add_argument("--config", metavar="FILE",
                     help="configuration file (.yaml, .yml, .toml or .json)")
    run.add_argument("--preset", choices=list(PRESETS), metavar="NAME",
                     help="start from a named configuration (the file and the flags still "
                     "override it): " + "; ".join(f"{p.name}: {p.description}"
                                                   for p in PRESETS.values()))
    run.add_argument("--print-config", action="store_true",
                     help="print the resolved configuration and exit (no training)")
    add_dataclass_flags(run, RunOptions)
    notes = {k: f"{v} on the synthetic quick start" for k, v in QUICKSTART.items()}
    for name, section in MetaSDConfig.section_types().items():
        doc = (section.__doc__ or "").strip().splitlines()[0].rstrip(".")
        group = p.add_argument_group(f"{name} ({section.__name__}): {doc[:1].lower()}{doc[1:]}")
        add_dataclass_flags(group, section, notes=notes)


def resolve_config(args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> Any:
    """The :class:`~metasd_pyg.runs.config.RunConfig` of ``args`` (file < flags; resume-aware).

    Args:
        args: The parsed flags.
        defaults: The command's own defaults (below the file and the flags).
    """
    from metasd_pyg.runs.config import RunConfig, RunOptions
    from metasd_pyg.runs.options import read_config_file
    from metasd_pyg.training.config import MetaSDConfig

    names = set(RunOptions.keys()) | set(MetaSDConfig.keys())
    flags = {k: v for k, v in vars(args).items() if k in names}
    if args.quiet and "progress" not in flags:
        flags["progress"] = False
    file_values = {**(defaults or {}),
                   **(read_config_file(args.config, RunConfig.file_sections())
                      if args.config else {})}
    file_name = args.config or "config file"
    if getattr(args, "resume", False):
        out = flags.get("out") or file_values.get("out")
        if not out:
            raise ConfigError("--resume needs the run folder: give --out RUN")
        file_values = {**RunConfig.saved_values(out), **file_values}
        file_name = args.config or f"{out}/config.json"
    return RunConfig.resolve(file_values, flags, file_name=file_name,
                             preset=getattr(args, "preset", None))


def run_train(args: argparse.Namespace) -> dict[str, Any]:
    """Run the ``train`` subcommand and return its result."""
    config = resolve_config(args)
    if args.print_config:
        return {"config": config.to_dict()}
    from metasd_pyg.runs.pipeline import train_run

    return train_run(config, overwrite=args.overwrite, resume=args.resume,
                     command=getattr(args, "argv", ["metasd-pyg", *sys.argv[1:]]))


def render_train(result: dict[str, Any]) -> str:
    """Human-readable summary of a ``train`` result."""
    if "config" in result and "models" not in result:
        width = max(len(k) for k in result["config"])
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in result["config"].items())
    rows = []
    for role, m in result["models"].items():
        v, t = m["valid"], m["test"]
        rows.append([role, v["mrr"], t["mrr"], t["hits@1"], t["hits@10"], m["nonzeros"]])
    lines = [f"run       {result['run']}  ({result['mode']} on {result['dataset']})",
             text_table(rows, ["model", "valid MRR", "test MRR", "test H@1", "test H@10",
                               "non-zeros"])]
    comp = result.get("compression", {})
    if "ratio_fp32" in comp:
        lines.append(f"student   {result['files'].get('student')}: "
                     f"{comp['ratio_fp32']:.3f}x the dense fp32 teacher "
                     f"({human_bytes(comp['dense_teacher_bytes'])}); fp16 "
                     f"{comp['ratio_fp16']:.3f}x")
    tr = result["training"]
    lines.append(f"training  {tr['epochs']} epochs, best epoch {tr['best_epoch']}, "
                 f"{tr['wall_time']:.1f} s")
    if "report" in result["files"]:
        lines.append(f"report    {result['files']['report']}")
    return "\n".join(lines)
