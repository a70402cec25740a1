"""Argument parser with one-line errors and example epilogs."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

PROG = "metasd-pyg"


class UsageError(Exception):
    """A command-line usage error (exit code 2), reported as one line."""


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line on stderr, exit code 2.

    argparse prints the usage block and the message; here the message alone
    is printed (with a pointer to ``--help``) so scripts and users get exactly
    one line, as for every other error of the CLI.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        """Raise :class:`UsageError` (printed as one line by ``main``)."""
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        """Exit, printing ``message`` (one line) to stderr."""
        if message:
            sys.stderr.write(message if message.endswith("\n") else message + "\n")
        raise SystemExit(status)


def common_flags() -> argparse.ArgumentParser:
    """Flags every subcommand takes: ``--json``, ``--quiet``, ``--verbose``, ``--debug``."""
    parent = argparse.ArgumentParser(add_help=False)
    out = parent.add_argument_group("output")
    out.add_argument("--json", action="store_true",
                     help="print exactly one JSON document on stdout (logs go to stderr)")
    out.add_argument("-q", "--quiet", action="store_true",
                     help="no progress bars on stderr (warnings and errors only)")
    out.add_argument("-v", "--verbose", action="store_true",
                     help="info logs and Python warnings on stderr")
    out.add_argument("--debug", action="store_true",
                     help="debug logs, and the Python traceback of an error")
    return parent
