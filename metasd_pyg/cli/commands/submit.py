"""``metasd-pyg ogb-submit``: N seeds of one configuration, summarised for the OGB leaderboard."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EPILOG = """\
examples:
  metasd-pyg ogb-submit --data-root data --out submissions/metasd     # 10 seeds, MetaSD student
  metasd-pyg ogb-submit --data-root data --out submissions/metasd \\
                        --loss sampled --num-negatives 1024 --dim 100 --epochs 10
  metasd-pyg ogb-submit --out submissions/teacher --mode teacher --seeds 10
  metasd-pyg ogb-submit --out submissions/metasd                      # again: finished seeds
                                                                      # are reused, an
                                                                      # interrupted one resumed

Trains seeds 0 .. N-1 into <out>/seed-<k>/ (ordinary run folders), each selected on
valid only, then writes <out>/submission.json and <out>/submission.md: mean and
unbiased std of valid and test MRR, #Params as OGB counts them with the student's
non-zeros and artifact bytes beside, hardware, run times, hyper-parameters (chosen
values marked), the exact commands, and the leaderboard form's fields. The dataset
defaults to ogbl-wikikg2 (read from --data-root or $METASD_DATA_ROOT).
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``ogb-submit`` subcommand.

    Args:
        sub: The subparsers action of the main parser.
        common: Parent parser with the common output flags.
    """
    from metasd_pyg.cli.commands.train import add_training_options
    from metasd_pyg.runs.options import add_dataclass_flags
    from metasd_pyg.runs.submit import SubmitOptions

    p = sub.add_parser("ogb-submit", parents=[common],
                       help="train N seeds and write an OGB leaderboard submission",
                       description="Train one configuration with seeds 0 .. N-1 (resuming a "
                       "partly finished set) and summarise them for the OGB leaderboard.",
                       epilog=EPILOG)
    group = p.add_argument_group("submission")
    add_dataclass_flags(group, SubmitOptions)
    run = p.add_argument_group("run (--out is the submission folder)")
    add_training_options(p, run)
    p.set_defaults(handler=run_submit, render=render_submit)


def run_submit(args: argparse.Namespace) -> dict[str, Any]:
    """Run the ``ogb-submit`` subcommand and return ``submission.json``'s content."""
    from metasd_pyg.cli.commands.train import resolve_config
    from metasd_pyg.errors import ConfigError
    from metasd_pyg.runs.options import build_dataclass
    from metasd_pyg.runs.submit import SubmitOptions, submit

    config = resolve_config(args, defaults={"dataset": "ogbl-wikikg2"})
    if args.print_config:
        return {"config": config.to_dict()}
    if not config.run.out:
        raise ConfigError("ogb-submit needs the submission folder: give --out FOLDER")
    options = build_dataclass(SubmitOptions, {k: v for k, v in vars(args).items()
                                              if k in SubmitOptions.keys() and v is not None},
                              "")
    return submit(config, config.run.out, options,
                  command=getattr(args, "argv", ["metasd-pyg", *sys.argv[1:]]))


def render_submit(result: dict[str, Any]) -> str:
    """The submission's Markdown (or the resolved configuration)."""
    from metasd_pyg.runs.submit import submission_markdown

    if "config" in result and "format" not in result:
        width = max(len(k) for k in result["config"])
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in result["config"].items())
    return submission_markdown(result)
