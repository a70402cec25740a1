"""Typed configuration of a run: the run section plus the training tree :class:`MetaSDConfig`.

A run of MetaSD (Li et al., Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/) is described by
:class:`RunOptions` (the application layer's section: what to train on, where
to write, what to produce) and the training configuration tree
:class:`~metasd_pyg.training.config.MetaSDConfig` (one section per part).
:class:`RunConfig` holds both and resolves them in this order, later sources
overriding earlier ones:

1. the trainer's defaults;
2. the quick-start profile of the built-in ``synthetic`` dataset
   (:data:`QUICKSTART`: small enough for the main job to finish in about two
   minutes on a laptop CPU), applied only when the dataset is ``synthetic``;
3. the configuration file (YAML, TOML or JSON; flat keys or sections);
4. the command-line flags.

The resolved configuration is saved flat (``config.json`` in the run folder)
and can be given back as a configuration file.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from metasd_pyg.errors import ConfigError, RunFolderError
from metasd_pyg.evaluation.buckets import BucketBy
from metasd_pyg.runs.options import build_dataclass, coerce
from metasd_pyg.sections import Section, check, option
from metasd_pyg.training.config import MetaSDConfig, resumable_keys, saved_config_values

#: Value types of the exported student.
ExportDtype = Literal["fp32", "fp16"]
#: Values of ``export_dtype``.
EXPORT_DTYPES: tuple[str, ...] = typing.get_args(ExportDtype)

#: Trainer settings of the quick-start main job on the built-in synthetic graph
#: (``metasd-pyg train`` with no options; timed in ``docs/cli.md``).
QUICKSTART: dict[str, Any] = {
    "dim": 64,
    "epochs": 6,
    "batch_size": 2000,
    "lr": 0.2,
    "eval_every": 2,
}

@dataclass
class RunOptions(Section):
    """What a run trains on, where it writes, and what it produces.

    Args:
        dataset: Dataset name (synthetic, fb15k-237, wn18rr, ogbl-wikikg2, umls,
            kinship, nations), a synthetic spec such as
            synthetic:entities=5000,triples=60000,seed=1, or a path to a folder,
            .tar.gz or .zip holding train.txt, valid.txt and test.txt.
        data_root: Folder of dataset archives (default: $METASD_DATA_ROOT, else
            ~/.cache/metasd-pyg-data).
        out: Run folder (default: runs/<dataset>-<mode>-<date>-<time>).
        report: Write report.html into the run folder at the end.
        export_dtype: Value type of the exported student in the run folder (fp32 or fp16).
        bucket_by: Long-tail buckets of the final results: target, query,
            relation or category.
        bins: Bucket edges: log, log:B, quantile, quantile:Q, or comma-separated lower edges.
        memory_limit: Refuse to start a run whose estimated peak memory
            (metasd_pyg.training.memory) passes this many GB (default: 90% of
            this machine's physical memory; 0 = no check).
    """

    #: Runs saved before the memory check existed.
    ADDED_LATER: ClassVar[Mapping[str, Any]] = {"memory_limit": None}

    dataset: str = "synthetic"
    data_root: str | None = option(None, resumable=True)
    out: str | None = option(None, resumable=True)
    report: bool = option(True, resumable=True)
    export_dtype: ExportDtype = option("fp32", resumable=True)
    bucket_by: BucketBy = option("target", resumable=True)
    bins: str = option("log", resumable=True)
    memory_limit: float | None = option(None, resumable=True)

    def validate(self) -> None:
        check(bool(self.dataset.strip()), "dataset: must not be empty")
        check(self.memory_limit is None or self.memory_limit >= 0,
              f"memory_limit={self.memory_limit}: must be >= 0 GB (0 = no check)")

    def memory_limit_bytes(self) -> int | None:
        """The memory limit in bytes (``None``: no check)."""
        from metasd_pyg.training.memory import physical_memory_bytes

        if self.memory_limit is None:
            phys = physical_memory_bytes()
            return None if phys is None else int(0.9 * phys)
        return None if self.memory_limit == 0 else int(self.memory_limit * 1e9)


#: Options that may differ from the saved ones when a run is resumed: the
#: trainer's resumable options and the run folder's outputs and data location.
RESUMABLE_CHANGES: frozenset[str] = resumable_keys() | frozenset(
    o.key for o in RunOptions.options() if o.resumable)


def parse_bins(bins: str) -> str | list[float]:
    """The evaluator's ``bins`` argument from its text form.

    Args:
        bins: ``"log"``, ``"log:4"``, ``"quantile:5"``, ``"5"`` or ``"1,4,16,64"``.
    """
    text = bins.strip()
    if "," in text:
        try:
            return [float(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"bins={bins!r}: edges must be numbers") from None
    return text


@dataclass
class RunConfig:
    """Run options and trainer configuration of one run.

    Args:
        run: The :class:`RunOptions`.
        train: The trainer's :class:`~metasd_pyg.training.config.MetaSDConfig`.
    """

    run: RunOptions = field(default_factory=RunOptions)
    train: MetaSDConfig = field(default_factory=MetaSDConfig)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-serialisable dict (run options first, then trainer options)."""
        return {**self.run.to_flat(), **self.train.to_dict()}

    @staticmethod
    def file_sections() -> dict[str, tuple[str, ...] | None]:
        """The sections a configuration file may group options in, with their keys: one
        per trainer section (``[model]``, ``[optim]``, ``[meta]``...), which holds only
        its own options, and the free groups ``[run]``, ``[train]`` and ``[trainer]``
        (the layouts documented before the typed sections), which may hold any."""
        out: dict[str, tuple[str, ...] | None] = {
            name: sec.keys() for name, sec in MetaSDConfig.section_types().items()}
        out.update({"run": None, "train": None, "trainer": None})
        return out

    @staticmethod
    def split_keys(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split flat option values into ``(run options, trainer options)``.

        Args:
            values: Option name -> value.

        Raises:
            ConfigError: A key that is neither (with a suggestion).
        """
        run_keys = set(RunOptions.keys())
        train_keys = set(MetaSDConfig.keys())
        run_v: dict[str, Any] = {}
        train_v: dict[str, Any] = {}
        for key, value in values.items():
            if key in run_keys:
                run_v[key] = value
            elif key in train_keys:
                train_v[key] = value
            else:
                import difflib

                close = difflib.get_close_matches(key, sorted(run_keys | train_keys), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown option {key!r}{hint}")
        return run_v, train_v

    @classmethod
    def resolve(
        cls,
        file_values: Mapping[str, Any] | None = None,
        flag_values: Mapping[str, Any] | None = None,
        *,
        file_name: str = "config file",
        preset: str | None = None,
    ) -> RunConfig:
        """Resolve defaults < quick-start profile < preset < file < flags into a config.

        Args:
            file_values: Flat values read from a configuration file.
            flag_values: Flat values given on the command line (strings are coerced).
            file_name: Names the file in error messages.
            preset: A named preset (:mod:`metasd_pyg.training.presets`).

        Raises:
            ConfigError: Unknown option, bad value, or invalid combination (one line).
        """
        try:
            f_run, f_train = cls.split_keys(file_values or {})
        except ConfigError as exc:
            raise ConfigError(f"{file_name}: {exc}") from None
        c_run, c_train = cls.split_keys(flag_values or {})
        run = build_dataclass(RunOptions, {**f_run, **c_run}, "")
        base: dict[str, Any] = {}
        if run.dataset.strip().lower() == "synthetic":
            base.update(QUICKSTART)
        if preset is not None:
            from metasd_pyg.training.presets import preset_values

            base.update(preset_values(preset))
        # Coerce each source separately so the error names where the bad value came from.
        types_ = {o.key: o.type for o in MetaSDConfig.options()}
        merged = dict(base)
        merged.update({k: coerce(v, types_[k], f"{file_name}: {k}") for k, v in f_train.items()})
        merged.update({k: coerce(v, types_[k], "--" + k.replace("_", "-"))
                       for k, v in c_train.items()})
        return cls(run=run, train=MetaSDConfig.from_dict(merged))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> RunConfig:
        """Rebuild a config from :meth:`to_dict` output (e.g. a run's ``config.json``).

        Args:
            values: Flat values.
            source: Names the origin in error messages.
        """
        try:
            run_v, train_v = cls.split_keys(values)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        types_ = {o.key: o.type for o in MetaSDConfig.options()}
        try:
            train = MetaSDConfig.from_dict({k: coerce(v, types_[k], f"{source}: {k}")
                                            for k, v in train_v.items()})
        except ConfigError as exc:
            msg = str(exc)
            raise ConfigError(msg if msg.startswith(source) else f"{source}: {msg}") from None
        return cls(run=build_dataclass(RunOptions, run_v, source), train=train)

    @classmethod
    def saved_values(cls, out: str | Path) -> dict[str, Any]:
        """The flat configuration saved in run folder ``out``, options added later filled in.

        Args:
            out: The run folder.
        """
        from metasd_pyg.storage.folder import RunFolder

        folder = RunFolder.open(out)
        if not (folder.path / folder.CONFIG).is_file():
            raise RunFolderError(
                f"{folder.path}: the run stopped before it saved its configuration, so there "
                "is nothing to resume; start it again with --overwrite")
        return saved_config_values(folder.read_config())

    @classmethod
    def from_saved(cls, out: str | Path) -> RunConfig:
        """The configuration saved in run folder ``out`` (:meth:`saved_values`).

        Args:
            out: The run folder.
        """
        return cls.from_dict(cls.saved_values(out), f"{out}/config.json")

    def changes_from(self, saved: RunConfig) -> dict[str, tuple[Any, Any]]:
        """Options that differ from ``saved``: name -> (saved value, this value).

        Args:
            saved: The configuration saved in the run folder.
        """
        mine, theirs = self.to_dict(), saved.to_dict()
        return {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
