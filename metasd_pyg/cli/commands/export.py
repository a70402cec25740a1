"""``metasd-pyg export``: the compressed student of a run as one safetensors file."""

from __future__ import annotations

import argparse
from typing import Any

from metasd_pyg.cli.output import check_output, human_bytes

EPILOG = """\
examples:
  metasd-pyg export runs/quickstart --out student.safetensors
  metasd-pyg export runs/quickstart --out student-fp16.safetensors --dtype fp16 --json

The file holds the student alone (no teacher, no pickle): each table stored dense,
as CSR with 8/16-bit column indices (unstructured masks) or as row prefixes of one
shared dimension order without column indices (nested masks), whichever is
smallest, plus JSON metadata (model, dimensions, names, sparsity, source run).
Load it with metasd_pyg.export.load_student or query it with `metasd-pyg predict`.
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``export`` subcommand.

    Args:
        sub: The subparsers action of the main parser.
        common: Parent parser with the common output flags.
    """
    p = sub.add_parser("export", parents=[common], help="export the compressed student",
                       description="Export the pruned student of a finished run to a "
                       "compressed safetensors file and print its size against the dense "
                       "fp32 teacher.", epilog=EPILOG)
    p.add_argument("run", metavar="RUN", help="finished run folder")
    p.add_argument("--out", required=True, metavar="FILE.safetensors", help="file to write")
    p.add_argument("--dtype", choices=("fp32", "fp16"), default="fp32",
                   help="value type (default: fp32)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(handler=run_export, render=render_export)


def run_export(args: argparse.Namespace) -> dict[str, Any]:
    """Run the ``export`` subcommand."""
    from metasd_pyg.export import export_run

    out = check_output(args.out, args.overwrite, (".safetensors",))
    info = export_run(args.run, out, dtype=args.dtype)
    result = info.to_dict()
    result["run"] = args.run
    return result


def render_export(result: dict[str, Any]) -> str:
    """Human-readable summary of an ``export`` result."""
    enc = ", ".join(f"{k}: {v}" for k, v in result["encodings"].items())
    return "\n".join([
        f"wrote     {result['path']} ({result['dtype']})",
        f"size      {result['bytes']:,} bytes ({human_bytes(result['bytes'])}) = "
        f"{result['ratio']:.4f}x the dense fp32 teacher "
        f"({result['dense_teacher_bytes']:,} bytes)",
        f"weights   {result['nonzeros']:,} non-zero of {result['total_params']:,} "
        f"(sparsity {result['sparsity']:.4f})",
        f"tables    {enc}",
    ])
