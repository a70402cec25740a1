"""Typed configuration sections: one frozen dataclass per part, validated once.

Every part of a run (the model, the pruner, the meta step, the evaluator, the
trainer, ...) owns one :class:`Section` in its own package: the fields, their
value sets (``Literal[...]``), defaults, help texts (the ``Args:`` section of
the docstring) and validation live there and nowhere else. A part is built
from its section and reports the section it was built with, so a recorded
configuration is always the one that ran.

Each field has a *key*: its name in flat form, i.e. the command-line flag
(``--meta-every``) and the key of configuration files and saved ``config.json``
files. The key is the field name unless the field says otherwise with
:func:`option` (``MetaConfig.every`` has the key ``meta_every``), which keeps
the flat names of older releases while the sections use short names.

This module sits below every package (like :mod:`metasd_pyg.errors`): it knows
nothing of models or training.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from metasd_pyg.errors import ConfigError

S = TypeVar("S", bound="Section")


def option(default: Any, *, key: str | None = None, resumable: bool = False) -> Any:
    """A section field with flat ``key`` (default: the field name).

    Args:
        default: The default value (immutable: sections are frozen).
        key: Name of the option in flat form (flags, files, ``config.json``).
        resumable: A resumed run may change it (it does not alter the
            training trajectory up to the checkpoint: epochs, device, ...).
    """
    return dataclasses.field(default=default, metadata={"key": key, "resumable": resumable})


@dataclass(frozen=True)
class OptionInfo:
    """One option of a section, as the flag and file layers see it.

    Attributes:
        key: Flat name (flag ``--<key with dashes>``, file key).
        name: Field name in the section.
        section: The section class that owns it.
        type: Resolved type hint.
        default: Default value.
        resumable: Whether a resumed run may change it.
    """

    key: str
    name: str
    section: type
    type: Any
    default: Any
    resumable: bool

    @property
    def choices(self) -> tuple[Any, ...] | None:
        """The ``Literal[...]`` value set of the option (``None`` if it has none)."""
        return literal_choices(self.type)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def literal_choices(tp: Any) -> tuple[Any, ...] | None:
    """The values of ``Literal[...]`` (or ``Literal[...] | None``); ``None`` otherwise.

    Args:
        tp: A type hint.
    """
    inner, _ = _strip_optional(tp)
    if typing.get_origin(inner) is Literal:
        return typing.get_args(inner)
    return None


class Section:
    """Base of the configuration sections (frozen dataclasses).

    Subclasses validate their own values in :meth:`validate` (ranges,
    relations between their fields); the ``Literal`` value sets are checked
    here for every section. Errors are one-line
    :class:`~metasd_pyg.errors.ConfigError` messages naming the option by its
    flat key.
    """

    #: Options added after runs were first saved, by flat key, with the value
    #: that reproduces those older runs (a saved configuration that lacks one
    #: was written before it existed and ran with that value).
    ADDED_LATER: ClassVar[Mapping[str, Any]] = {}

    def __post_init__(self) -> None:
        for info in self.options():
            choices = info.choices
            value = getattr(self, info.name)
            if choices is not None and value is not None and value not in choices:
                raise ConfigError(f"{info.key}={value!r}: expected one of "
                                  f"{', '.join(map(str, choices))}")
        self.validate()

    def validate(self) -> None:
        """Raise :class:`~metasd_pyg.errors.ConfigError` naming the first invalid value."""

    @classmethod
    def options(cls) -> tuple[OptionInfo, ...]:
        """Every option of the section, in field order."""
        return _options(cls)  # type: ignore[arg-type]  # classes are hashable

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Flat keys of the section's options."""
        return tuple(o.key for o in cls.options())

    @classmethod
    def from_flat(cls: type[S], values: Mapping[str, Any]) -> S:
        """Build from flat ``values`` (by key); keys of other sections are ignored.

        Args:
            values: Flat key -> value (already of the right type).
        """
        kwargs = {o.name: values[o.key] for o in cls.options() if o.key in values}
        return cls(**kwargs)

    def to_flat(self) -> dict[str, Any]:
        """Flat key -> value of every option."""
        return {o.key: getattr(self, o.name) for o in self.options()}

    def replace(self: S, **changes: Any) -> S:
        """A validated copy with field ``changes`` (by field name).

        Args:
            **changes: Field name -> new value.
        """
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@functools.cache
def _options(cls: type) -> tuple[OptionInfo, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        default = f.default if f.default is not dataclasses.MISSING else None
        out.append(OptionInfo(key=meta.get("key") or f.name, name=f.name, section=cls,
                              type=hints[f.name], default=default,
                              resumable=bool(meta.get("resumable", False))))
    return tuple(out)


def check(ok: bool, message: str) -> None:
    """Raise :class:`~metasd_pyg.errors.ConfigError` with ``message`` unless ``ok``.

    Args:
        ok: The condition that must hold.
        message: One line naming the option and its value.
    """
    if not ok:
        raise ConfigError(message)
