"""Typed configuration of a run: run options plus the trainer's :class:`MetaSDConfig`.

A run of MetaSD (Li et al., Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/) is described by two
dataclasses: :class:`RunOptions` (what to train on, where to write, what to
produce) and the trainer's :class:`~metasd_pyg.training.config.MetaSDConfig`
(every training option). :class:`RunConfig` holds both and resolves them in
this order, later sources overriding earlier ones:

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

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metasd_pyg.errors import ConfigError
from metasd_pyg.runs.options import build_dataclass, coerce, field_types
from metasd_pyg.training.config import TRAINER_RESUMABLE, MetaSDConfig

#: Values of ``export_dtype``.
EXPORT_DTYPES: tuple[str, ...] = ("fp32", "fp16")

#: Trainer settings of the quick-start main job on the built-in synthetic graph
#: (``metasd-pyg train`` with no options; timed in ``docs/cli.md``).
QUICKSTART: dict[str, Any] = {
    "dim": 64,
    "epochs": 6,
    "batch_size": 2000,
    "lr": 0.2,
    "eval_every": 2,
}

#: Options that may differ from the saved ones when a run is resumed: the
#: trainer's (:data:`~metasd_pyg.training.config.TRAINER_RESUMABLE`) and the
#: run folder's outputs and data location.
RESUMABLE_CHANGES: frozenset[str] = TRAINER_RESUMABLE | frozenset({
    "data_root", "out", "report", "export_dtype", "bucket_by", "bins",
})


@dataclass
class RunOptions:
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
    """

    dataset: str = "synthetic"
    data_root: str | None = None
    out: str | None = None
    report: bool = True
    export_dtype: str = "fp32"
    bucket_by: str = "target"
    bins: str = "log"

    def __post_init__(self) -> None:
        if self.export_dtype not in EXPORT_DTYPES:
            raise ConfigError(f"export_dtype={self.export_dtype!r}: expected one of "
                              f"{', '.join(EXPORT_DTYPES)}")
        from metasd_pyg.evaluation import BUCKET_BY

        if self.bucket_by not in BUCKET_BY:
            raise ConfigError(f"bucket_by={self.bucket_by!r}: expected one of "
                              f"{', '.join(BUCKET_BY)}")
        if not self.dataset.strip():
            raise ConfigError("dataset: must not be empty")


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
        return {**dataclasses.asdict(self.run), **self.train.to_dict()}

    @staticmethod
    def split_keys(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split flat option values into ``(run options, trainer options)``.

        Args:
            values: Option name -> value.

        Raises:
            ConfigError: A key that is neither (with a suggestion).
        """
        run_keys = {f.name for f in dataclasses.fields(RunOptions)}
        train_keys = {f.name for f in dataclasses.fields(MetaSDConfig)}
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
    ) -> RunConfig:
        """Resolve defaults < quick-start profile < file < flags into a config.

        Args:
            file_values: Flat values read from a configuration file.
            flag_values: Flat values given on the command line (strings are coerced).
            file_name: Names the file in error messages.

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
        # Coerce each source separately so the error names where the bad value came from.
        types_ = field_types(MetaSDConfig)
        merged = dict(base)
        merged.update({k: coerce(v, types_[k], f"{file_name}: {k}") for k, v in f_train.items()})
        merged.update({k: coerce(v, types_[k], "--" + k.replace("_", "-"))
                       for k, v in c_train.items()})
        train = build_dataclass(MetaSDConfig, merged, "")
        return cls(run=run, train=train)

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
        return cls(run=build_dataclass(RunOptions, run_v, source),
                   train=build_dataclass(MetaSDConfig, train_v, source))

    def changes_from(self, saved: RunConfig) -> dict[str, tuple[Any, Any]]:
        """Options that differ from ``saved``: name -> (saved value, this value).

        Args:
            saved: The configuration saved in the run folder.
        """
        mine, theirs = self.to_dict(), saved.to_dict()
        return {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
