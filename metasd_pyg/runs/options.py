"""Typed dataclass options from files and command-line flags.

One dataclass field = one flag and one key of a YAML/TOML/JSON configuration
file. The key is the field's flat key (:func:`metasd_pyg.sections.option`,
default: the field name): ``MetaConfig.every`` is ``--meta-every`` and the
file key ``meta_every`` (or ``meta-every``). Help texts come from the
``Args:`` section of the dataclass docstring and value sets from ``Literal``
types, so the flags stay in sync with the documented options. Values from
files and flags go through the same coercion (:func:`coerce`), so a bad value
gives the same one-line :class:`~metasd_pyg.errors.ConfigError` either way.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import json
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from metasd_pyg.errors import ConfigError
from metasd_pyg.sections import literal_choices

_NONE_WORDS = ("none", "null", "~")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def field_key(f: dataclasses.Field[Any]) -> str:
    """The flat key of a dataclass field (its ``key`` metadata, else its name).

    Args:
        f: A dataclass field.
    """
    return f.metadata.get("key") or f.name


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of the fields of dataclass ``cls``, by flat key.

    Args:
        cls: A dataclass type.
    """
    hints = typing.get_type_hints(cls)
    return {field_key(f): hints[f.name] for f in dataclasses.fields(cls)}


def docstring_args(cls: type) -> dict[str, str]:
    """Parse the ``Args:`` section of ``cls``'s docstring into name -> one-line help.

    Args:
        cls: Any documented class.
    """
    doc = inspect.getdoc(cls) or ""
    out: dict[str, str] = {}
    in_args = False
    current: str | None = None
    for line in doc.splitlines():
        if re.match(r"^(Args|Arguments|Attributes):\s*$", line):
            in_args, current = True, None
            continue
        if in_args and line and not line.startswith(" "):
            in_args = False
        if not in_args:
            continue
        m = re.match(r"^ {4}(\w+)(?: \([^)]*\))?:\s*(.*)$", line)
        if m:
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current and line.strip():
            out[current] += " " + line.strip()
    # Sphinx markup is noise in --help.
    return {k: re.sub(r":\w+:`~?([^`]+)`|``([^`]+)``", lambda m: m.group(1) or m.group(2), v)
                   .replace("\\", "") for k, v in out.items()}


def _optional(tp: Any) -> tuple[Any, bool]:
    """``(inner type, allows None)`` of ``X | None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` (a string from a flag, or a parsed file value) to type ``tp``.

    Args:
        value: The raw value.
        tp: Target type (``int``, ``float``, ``bool``, ``str``, ``X | None``,
            ``tuple[X, ...]``, ``list[X]``).
        where: Names the value in error messages (e.g. ``"--epochs"`` or
            ``"run.yaml: epochs"``).

    Raises:
        ConfigError: One line naming ``where`` and the bad value.
    """
    inner, nullable = _optional(tp)
    if value is None or (nullable and isinstance(value, str)
                         and value.strip().lower() in _NONE_WORDS):
        if nullable:
            return None
        raise ConfigError(f"{where}: a value is required (got none)")
    choices = literal_choices(inner)
    if choices is not None:
        text = value.strip() if isinstance(value, str) else value
        if text not in choices:
            raise ConfigError(f"{where}: expected one of {', '.join(map(str, choices))}, "
                              f"got {value!r}")
        return text
    origin = typing.get_origin(inner)
    if origin in (tuple, list):
        args = typing.get_args(inner)
        item = args[0] if args else str
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        conv = [coerce(v.strip() if isinstance(v, str) else v, item, where) for v in items]
        return tuple(conv) if origin is tuple else conv
    if inner is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if inner is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value) if not isinstance(value, str) else int(value.strip().replace("_", ""))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if inner is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if out != out or out in (float("inf"), float("-inf")):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return out
    if inner is str:
        if isinstance(value, dict | list | tuple):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def flag_name(field: str) -> str:
    """``--batch-size`` for field ``batch_size``.

    Args:
        field: Dataclass field name.
    """
    return "--" + field.replace("_", "-")


def add_dataclass_flags(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    *,
    choices: Mapping[str, Iterable[str]] | None = None,
    skip: Iterable[str] = (),
    notes: Mapping[str, str] | None = None,
) -> list[str]:
    """Add one flag per field of dataclass ``cls`` to ``parser`` (or an argument group).

    The flag is named after the field's flat key (:func:`field_key`); its help
    text is the field's entry in the docstring's ``Args:`` section, its choices
    the values of a ``Literal`` type (or ``choices``). Flags default to
    ``argparse.SUPPRESS``: only flags given on the command line appear in the
    parsed namespace (under their key), so they can override a configuration
    file. Booleans get ``--flag`` / ``--no-flag``. Values are kept as strings
    and converted later with :func:`coerce` (same errors as file values).

    Args:
        parser: Parser or argument group.
        cls: Dataclass whose fields become flags.
        choices: Allowed values of some keys without a ``Literal`` type (shown in ``--help``).
        skip: Keys not to expose.
        notes: Extra text appended to the default of some keys.

    Returns:
        The keys that got a flag.
    """
    helps = docstring_args(cls)
    hints = typing.get_type_hints(cls)
    choices = dict(choices or {})
    added = []
    for f in dataclasses.fields(cls):
        key = field_key(f)
        if key in skip:
            continue
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        text = helps.get(f.name, "")
        values = literal_choices(tp) or tuple(choices.get(key, ()))
        if values:
            text += f" Choices: {', '.join(map(str, values))}."
        if "(default" not in text:
            note = (notes or {}).get(key)
            text += f" (default: {default}{'; ' + note if note else ''})"
        text = text.replace("%", "%%")
        if _optional(tp)[0] is bool:
            parser.add_argument(flag_name(key), dest=key, default=argparse.SUPPRESS,
                                action=argparse.BooleanOptionalAction, help=text)
        else:
            parser.add_argument(flag_name(key), dest=key, default=argparse.SUPPRESS,
                                metavar=key.upper(), help=text)
        added.append(key)
    return added


def read_config_file(path: str | Path,
                     sections: Mapping[str, Iterable[str] | None] | None = None
                     ) -> dict[str, Any]:
    """Read a configuration file: YAML (``.yaml``/``.yml``), TOML (``.toml``) or JSON.

    The top level must be a mapping. Nested tables/mappings (e.g. ``[meta]``)
    are flattened into the top level, so sectioned and flat files both work.
    Keys may use dashes or underscores. An option given twice (at the top
    level and in a section, or in two sections) is refused.

    Args:
        path: The file.
        sections: The sections a file may have: name -> the flat keys it holds
            (a key may also be written without the section's prefix:
            ``every`` in ``[meta]`` is ``meta_every``), or ``None`` for a
            section that may hold any option. ``None``: any section, any key.

    Raises:
        ConfigError: Unreadable file, unknown suffix, syntax error (with its
            line), a top level that is not a mapping, an option given twice, an
            unknown section or an option in a section that does not hold it.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    suffix = path.suffix.lower()
    data: Any
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise ConfigError(f"{path}{line}: {problem}") from None
    elif suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ImportError:
                raise ConfigError(f"{path}: TOML needs Python >= 3.11 or the 'tomli' "
                                  "package; use YAML or JSON instead") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {str(exc).splitlines()[0]}") from None
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: {exc.msg}") from None
    else:
        raise ConfigError(f"config file {path}: unknown format {suffix or '(no suffix)'}; "
                          "use .yaml, .yml, .toml or .json")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of option: value")
    flat: dict[str, Any] = {}

    def put(key: Any, value: Any) -> None:
        name = str(key).replace("-", "_")
        if name in flat:
            raise ConfigError(f"{path}: option {name!r} is given twice")
        flat[name] = value

    for key, value in data.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                put(_section_key(path, key, sub, sections), v)
        else:
            put(key, value)
    return flat


def _section_key(path: Path, section: Any, key: Any,
                 sections: Mapping[str, Iterable[str] | None] | None) -> str:
    """The flat key of option ``key`` in ``[section]`` of ``path`` (:func:`read_config_file`)."""
    name = str(key).replace("-", "_")
    if sections is None:
        return name
    sec = str(section).replace("-", "_")
    if sec not in sections:
        close = difflib.get_close_matches(sec, sorted(sections), n=1)
        hint = f" (did you mean [{close[0]}]?)" if close else ""
        raise ConfigError(f"{path}: option {name!r} is in an unknown section [{section}]{hint}; "
                          f"sections: {', '.join(sorted(sections))}")
    allowed = sections[sec]
    if allowed is None:
        return name
    keys = set(allowed)
    for candidate in (name, f"{sec}_{name}"):
        if candidate in keys:
            return candidate
    home = [s for s, k in sections.items() if k is not None and name in set(k)]
    where = f"; it belongs in [{home[0]}]" if home else ""
    raise ConfigError(f"{path}: section [{section}] has no option {name!r}{where}")


def build_dataclass(cls: type, values: Mapping[str, Any], source: str) -> Any:
    """Instantiate dataclass ``cls`` from raw ``values`` with coercion and checks.

    Args:
        cls: The dataclass.
        values: Flat key -> raw value (strings from flags or parsed file values).
        source: Names the origin for error messages (e.g. ``"run.yaml"``; empty:
            no prefix).

    Raises:
        ConfigError: Unknown key (with suggestions) or invalid value.
    """
    types_ = field_types(cls)
    prefix = f"{source}: " if source else ""
    unknown = [k for k in values if k not in types_]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(types_), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{prefix}unknown option {key!r}{hint}")
    names = {field_key(f): f.name for f in dataclasses.fields(cls)}
    kwargs = {names[k]: coerce(v, types_[k], f"{prefix}{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix}{exc}") from None
