"""``metasd-pyg predict``: top-k answers of a query from an exported student."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from metasd_pyg.cli.output import text_table
from metasd_pyg.errors import ConfigError

EPILOG = """\
examples:
  metasd-pyg predict student.safetensors --head /m/0dgw9r --relation /people/person/gender
  metasd-pyg predict runs/umls --relation causes --tail disease_or_syndrome --k 5 --json

--head NAME predicts tails (NAME, relation, ?); --tail NAME predicts heads
(?, relation, NAME). Names are those of the dataset (ids as text for datasets
without names). RUN folders are read through their student.safetensors.
Answers are ranked by the student alone (raw: known true triples are not removed).
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``predict`` subcommand.

    Args:
        sub: The subparsers action of the main parser.
        common: Parent parser with the common output flags.
    """
    p = sub.add_parser("predict", parents=[common], help="top-k answers from a student file",
                       description="Answer a link-prediction query with an exported student "
                       "(no teacher, no dataset needed).", epilog=EPILOG)
    p.add_argument("artifact", metavar="STUDENT",
                   help="student .safetensors file (or a run folder holding one)")
    side = p.add_mutually_exclusive_group(required=True)
    side.add_argument("--head", metavar="NAME", help="head entity: predict tails")
    side.add_argument("--tail", metavar="NAME", help="tail entity: predict heads")
    p.add_argument("--relation", required=True, metavar="NAME", help="relation name")
    p.add_argument("--k", type=int, default=10, help="number of answers (default: 10)")
    p.set_defaults(handler=run_predict, render=render_predict)


def run_predict(args: argparse.Namespace) -> dict[str, Any]:
    """Run the ``predict`` subcommand."""
    from metasd_pyg.export import load_student

    path = Path(args.artifact)
    if path.is_dir():
        path = path / "student.safetensors"
        if not path.is_file():
            raise ConfigError(f"{args.artifact} holds no student.safetensors (dense run?); "
                              "give a student file")
    if args.k < 1:
        raise ConfigError(f"--k must be >= 1, got {args.k}")
    student = load_student(path)
    answers = student.predict(head=args.head, tail=args.tail, relation=args.relation, k=args.k)
    return {
        "artifact": str(path),
        "query": {"head": args.head, "relation": args.relation, "tail": args.tail,
                  "predict": "tail" if args.head is not None else "head"},
        "answers": answers,
    }


def render_predict(result: dict[str, Any]) -> str:
    """Human-readable answers of a ``predict`` result."""
    q = result["query"]
    query = (f"({q['head']}, {q['relation']}, ?)" if q["predict"] == "tail"
             else f"(?, {q['relation']}, {q['tail']})")
    rows = [[str(a["rank"]), a["entity"], a["score"]] for a in result["answers"]]
    return f"query {query}\n" + text_table(rows, ["rank", "entity", "score"])
