"""User-facing errors.

Every error that a user can cause with bad input (a file, a value, an option)
is a :class:`MetaSDError`. Its message is one line that names the file, line
or value at fault; the CLI prints it to stderr without a traceback and exits
with a non-zero code. Programming errors stay ordinary Python exceptions.
"""

from __future__ import annotations


class MetaSDError(Exception):
    """Base class of all user-facing errors (one-line message, no traceback).

    The message is kept on one line whatever it quotes (a library's multi-line
    error, a file's content): line breaks and runs of spaces become one space.
    """

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(" ".join(str(message).split()), *args)


class DataError(MetaSDError):
    """A dataset is missing, malformed, or fails verification."""


class ConfigError(MetaSDError):
    """An option, configuration file or value is invalid."""


class RunFolderError(MetaSDError):
    """A run folder is missing, incomplete, or would be overwritten."""


class TrainingDiverged(MetaSDError):
    """Training produced a non-finite loss, gradient or weight (the run stops; its last
    complete checkpoint is kept)."""
