"""The ``metasd-pyg`` console script: train, evaluate, report, export, predict, datasets.

Conventions of every subcommand: results go to stdout (``--json``: exactly one
JSON document), logs and progress bars to stderr; an invalid option, file or
value prints one line on stderr and exits non-zero (2 for usage errors, 1 for
everything else), never a traceback (``--debug`` shows it for unexpected
errors); nothing asks questions; no file is replaced without ``--overwrite``.
Method: MetaSD (Li et al., Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
import warnings
from collections.abc import Sequence

from metasd_pyg.cli.parser import PROG, Parser, UsageError, common_flags
from metasd_pyg.errors import MetaSDError

EPILOG = """\
examples:
  metasd-pyg train                                   # MetaSD on the built-in synthetic graph
  metasd-pyg train --dataset umls --epochs 60 --out runs/umls
  metasd-pyg evaluate runs/umls --split test --bucket-by target --json
  metasd-pyg report runs/umls runs/umls-dense --out umls.html
  metasd-pyg export runs/umls --out umls-student.safetensors --dtype fp16
  metasd-pyg predict umls-student.safetensors --head acquired_abnormality --relation \\
      location_of --k 5
  metasd-pyg ogb-submit --data-root data --out submissions/metasd --seeds 10
  metasd-pyg datasets list

Run `metasd-pyg COMMAND --help` for the options and examples of a command.
Datasets are read from --data-root or $METASD_DATA_ROOT.
"""


def build_parser() -> Parser:
    """The argument parser of ``metasd-pyg`` with all subcommands."""
    from metasd_pyg import __version__
    from metasd_pyg.cli.commands import (
        datasets,
        evaluate,
        export,
        predict,
        report,
        submit,
        train,
    )

    parser = Parser(prog=PROG, description="MetaSD: compressed knowledge-graph embeddings by "
                    "self-distillation with meta learning, on PyTorch Geometric, with "
                    "long-tail link-prediction analysis.", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=Parser)
    common = common_flags()
    for module in (train, submit, evaluate, report, export, predict, datasets):
        module.register(sub, common)
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(message: str, code: int) -> int:
    sys.stderr.write(_one_line(message) + "\n")
    sys.stderr.flush()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``metasd-pyg`` command line; return the exit status.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).
    """
    from metasd_pyg.cli.output import dump_json

    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(args_list)
    except UsageError as exc:
        return _fail(str(exc), 2)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0) if not isinstance(exc.code, str) else _fail(exc.code, 2)

    args.argv = [PROG, *args_list]  # recorded by `train` in run.json
    debug = bool(getattr(args, "debug", False))
    handler = logging.StreamHandler(sys.stderr)  # the current stderr of this call
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    pkg_logger = logging.getLogger("metasd_pyg")
    old_level = pkg_logger.level
    pkg_logger.addHandler(handler)
    pkg_logger.setLevel(logging.DEBUG if debug else
                        logging.INFO if getattr(args, "verbose", False) else logging.WARNING)
    real_stdout = sys.stdout
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            if not getattr(args, "verbose", False):
                warnings.simplefilter("ignore")
            result = args.handler(args)
    except MetaSDError as exc:
        if debug:
            traceback.print_exc()
        return _fail(f"{PROG}: error: {exc}", 1)
    except OSError as exc:
        if debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        return _fail(f"{PROG}: error: {where}{exc.strerror or exc}", 1)
    except (ValueError, KeyError) as exc:
        if debug:
            traceback.print_exc()
        return _fail(f"{PROG}: error: {exc}", 1)
    except KeyboardInterrupt:
        return _fail(f"{PROG}: interrupted", 130)
    except Exception as exc:  # an unexpected error: still one line unless --debug
        if debug:
            traceback.print_exc()
        return _fail(f"{PROG}: internal error: {type(exc).__name__}: {exc} "
                     f"(rerun with --debug for the traceback)", 1)
    finally:
        pkg_logger.removeHandler(handler)
        pkg_logger.setLevel(old_level)
    if isinstance(result, dict) and result.get("rank", 0) != 0:
        return 0  # a data-parallel run's other ranks: rank 0 reports
    if args.json:
        dump_json(result, real_stdout)
    else:
        real_stdout.write(args.render(result) + "\n")
        real_stdout.flush()
    return 1 if isinstance(result, dict) and result.get("ok") is False else 0


if __name__ == "__main__":
    sys.exit(main())
