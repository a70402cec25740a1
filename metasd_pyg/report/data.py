"""Read run folders and assemble the tables of the long-tail report.

Every table is a pandas DataFrame built from what a finished run folder holds
(``results.json``, ``train.jsonl``); the dataset itself is not needed. Models
are labelled ``<run>:<role>`` (roles: ``teacher``, ``student``,
``dense_same_nnz``, ``oneshot``, ``oneshot_no_finetune``), or just ``<role>``
when the report covers one run. Paired differences come from
:func:`metasd_pyg.evaluation.compare` on the stored per-query test ranks
(MetaSD, Li et al. 2022, https://aclanthology.org/2022.findings-emnlp.149/).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from metasd_pyg.errors import RunFolderError
from metasd_pyg.evaluation import EvaluationResult, compare
from metasd_pyg.storage.folder import RunFolder
from metasd_pyg.training.modes import ROLES, Role, has_student, main_role, runs_meta

METRICS: tuple[str, ...] = ("mrr", "mr", "hits@1", "hits@3", "hits@10")


def pretty(metric: str) -> str:
    """Display name of a metric: ``MRR``, ``MR``, ``Hits@10``...

    Args:
        metric: Metric key (``mrr``, ``mr``, ``hits@k``).
    """
    return metric.upper() if metric in ("mrr", "mr") else metric.replace("hits", "Hits")


@dataclass
class RunData:
    """What the report uses of one finished run.

    Attributes:
        path: The run folder.
        name: Its folder name (made unique across the report's runs).
        results: ``results.json``.
        train_log: ``train.jsonl`` records (one per epoch).
        versions: ``versions.json``.
        marker: ``run.json``.
    """

    path: Path
    name: str
    results: dict[str, Any]
    train_log: list[dict[str, Any]]
    versions: dict[str, Any]
    marker: dict[str, Any]
    _tests: dict[str, EvaluationResult] = field(default_factory=dict, repr=False)

    @property
    def dataset(self) -> dict[str, Any]:
        """Dataset summary stored with the results."""
        ds: dict[str, Any] = self.results["dataset"]
        return ds

    @property
    def mode(self) -> str:
        """The run's training mode."""
        return str(self.results.get("mode", "metasd"))

    @property
    def has_student(self) -> bool:
        """Whether the run trained a pruned model."""
        return self.mode in ROLES and has_student(self.mode)

    @property
    def main_role(self) -> str:
        """The role the run is summarised by (:func:`~metasd_pyg.training.modes.main_role`)."""
        return main_role(self.mode).name if self.mode in ROLES else self.roles[0]

    @property
    def roles(self) -> list[str]:
        """Model roles of the run, in order."""
        return list(self.results["models"])

    def evaluation(self, role: str, split: str) -> dict[str, Any]:
        """Stored evaluation (``EvaluationResult.to_dict``) of ``role`` on ``split``."""
        for ev in self.results["evaluations"]:
            if ev["role"] == role and ev["split"] == split:
                return dict(ev)
        raise RunFolderError(f"{self.path}: no {split} evaluation of {role!r} in results.json")

    def test_result(self, role: str, label: str) -> EvaluationResult:
        """Test result of ``role`` with per-query ranks, relabelled ``label``."""
        if role not in self._tests:
            ev = self.evaluation(role, "test")
            ranks = None
            if "ranks_key" in ev:  # results format 2: ranks in ranks.safetensors
                ranks = RunFolder.open(self.path).read_ranks(str(ev["ranks_key"]))
            self._tests[role] = EvaluationResult.from_dict(ev, ranks=ranks)
        res = self._tests[role]
        return EvaluationResult(label, res.summary, res.buckets, res.ranks, res.config)


def load_runs(paths: list[str | Path]) -> list[RunData]:
    """Open finished run folders for the report.

    Args:
        paths: Run folders (at least one).

    Raises:
        RunFolderError: A path is not a finished run folder.
    """
    if not paths:
        raise RunFolderError("no run folder given")
    runs: list[RunData] = []
    names: dict[str, int] = {}
    for p in paths:
        folder = RunFolder.open(p)
        if not folder.has_results():
            raise RunFolderError(
                f"{folder.path} has no results.json (unfinished run?); continue it with "
                f"`metasd-pyg train --out {folder.path} --resume`"
            )
        results = folder.read_results()
        name = folder.name
        if name in names:  # same folder name in different places
            names[name] += 1
            name = f"{name}#{names[name]}"
        else:
            names[name] = 1
        try:
            versions = folder.read_versions()
        except RunFolderError:
            versions = {}
        runs.append(RunData(folder.path, name, results, folder.read_train_log(), versions,
                            folder.marker()))
    return runs


def label(run: RunData, role: str, multi: bool) -> str:
    """Model label in the report: ``<run>:<role>`` with several runs, else ``<role>``."""
    return f"{run.name}:{role}" if multi else role


def dataset_table(runs: list[RunData]) -> pd.DataFrame:
    """One row per distinct dataset: counts and train statistics."""
    rows = []
    seen = set()
    for run in runs:
        ds = run.dataset
        key = (ds["name"], ds["num_entities"], ds["train"])
        if key in seen:
            continue
        seen.add(key)
        st = ds.get("statistics", {})
        cats = st.get("relation_categories", {})
        rows.append({
            "dataset": ds["name"],
            "entities": ds["num_entities"],
            "relations": ds["num_relations"],
            "train": ds["train"],
            "valid": ds["valid"],
            "test": ds["test"],
            "entities in train": st.get("entities_in_train"),
            "mean degree": st.get("degree_mean"),
            "median degree": st.get("degree_median"),
            "max degree": st.get("degree_max"),
            "1-1 / 1-N / N-1 / N-N": " / ".join(str(cats.get(c, 0))
                                                for c in ("1-1", "1-N", "N-1", "N-N")),
            "unseen valid / test": "{} / {}".format(
                *(st.get("unseen_entity_triples", {}).get(s, 0) for s in ("valid", "test"))),
        })
    return pd.DataFrame(rows)


def runs_table(runs: list[RunData]) -> pd.DataFrame:
    """One row per run: dataset, mode, main options, time, versions."""
    rows = []
    for run in runs:
        cfg = run.results.get("config", {})
        tr = run.results.get("training", {})
        rows.append({
            "run": run.name,
            "dataset": run.dataset["name"],
            "mode": run.results.get("mode"),
            "model": cfg.get("model"),
            "dim": cfg.get("dim"),
            "strategy": cfg.get("strategy") if run.has_student
            else "-",
            "sparsity": cfg.get("sparsity") if run.has_student
            else 0.0,
            "meta": cfg.get("meta") if runs_meta(run.mode) else "-",
            "epochs": tr.get("epochs"),
            "best epoch": tr.get("best_epoch"),
            "wall time (s)": tr.get("wall_time"),
            "torch / PyG": f"{run.versions.get('torch', '?')} / "
                           f"{run.versions.get('torch_geometric', '?')}",
        })
    return pd.DataFrame(rows)


def overall_table(runs: list[RunData]) -> pd.DataFrame:
    """Overall filtered metrics of every model on test and valid (both sides pooled)."""
    multi = len(runs) > 1
    rows = []
    for split in ("test", "valid"):
        for run in runs:
            for role, entry in run.results["models"].items():
                s = entry[split]
                rows.append({
                    "split": split,
                    "model": label(run, role, multi),
                    "dataset": run.dataset["name"],
                    **{pretty(m): s.get(m) for m in METRICS},
                    "tail MRR": s.get("tail", {}).get("mrr"),
                    "head MRR": s.get("head", {}).get("mrr"),
                    "queries": s.get("num_queries"),
                })
    return pd.DataFrame(rows)


def _bucket_rows(runs: list[RunData], key: str, split: str) -> pd.DataFrame:
    multi = len(runs) > 1
    frames = []
    for run in runs:
        for ev in run.results[key]:
            if ev["split"] != split:
                continue
            frame = pd.DataFrame.from_records(ev["buckets"])
            frame["model"] = label(run, ev["role"], multi)
            frame["dataset"] = run.dataset["name"]
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def bucket_table(runs: list[RunData], split: str = "test", side: str = "both") -> pd.DataFrame:
    """Per-bucket metrics of every model (long format), without micro/macro rows.

    Args:
        runs: The runs.
        split: ``"test"`` or ``"valid"``.
        side: ``"both"``, ``"tail"`` or ``"head"``.
    """
    frame = _bucket_rows(runs, "evaluations", split)
    if frame.empty:
        return frame
    return frame[(frame["side"] == side)].reset_index(drop=True)


def category_table(runs: list[RunData], split: str = "test") -> pd.DataFrame:
    """Per relation category (1-1, 1-N, N-1, N-N) and side, metrics of every model."""
    frame = _bucket_rows(runs, "categories", split)
    if frame.empty:
        return frame
    return frame[~frame["bucket"].isin(["micro", "macro"])].reset_index(drop=True)


def _roles(run: RunData) -> tuple[Role, ...]:
    return ROLES.get(run.mode, ())


def _pairs(runs: list[RunData]) -> list[tuple[RunData, str, RunData, str]]:
    """Model pairs to compare: student vs teacher in a run, then across runs."""
    pairs: list[tuple[RunData, str, RunData, str]] = []
    for run in runs:
        main = run.main_role
        dense = next((r.name for r in _roles(run) if not r.masked), None)
        if main in run.roles and dense in run.roles and main != dense:
            pairs.append((run, main, run, str(dense)))
    # Across runs on the same test queries: every model against the first run's main model.
    ref = runs[0]
    ref_role = ref.main_role if ref.main_role in ref.roles else ref.roles[0]
    for run in runs[1:]:
        if run.dataset["name"] != ref.dataset["name"] or \
                run.dataset["test"] != ref.dataset["test"]:
            continue
        for role in run.roles:
            pairs.append((ref, ref_role, run, role))
    return pairs


def difference_table(runs: list[RunData], *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Paired per-bucket test MRR differences ``A - B`` with bootstrap 95% CIs.

    Args:
        runs: The runs.
        n_boot: Bootstrap replicates.
        seed: Bootstrap seed.
    """
    multi = len(runs) > 1
    frames = []
    for run_a, role_a, run_b, role_b in _pairs(runs):
        a = run_a.test_result(role_a, label(run_a, role_a, multi))
        b = run_b.test_result(role_b, label(run_b, role_b, multi))
        try:
            diff = compare(a, b, n_boot=n_boot, seed=seed)
        except Exception as exc:  # different queries or buckets: say so, skip the pair
            frames.append(pd.DataFrame([{"model_a": a.label, "model_b": b.label, "side": "both",
                                         "bucket": "n/a", "note": str(exc)}]))
            continue
        frames.append(diff[diff["side"] == "both"])
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def compression_table(runs: list[RunData]) -> pd.DataFrame:
    """Parameters, non-zeros, artifact bytes and ratio to the dense fp32 teacher per model."""
    multi = len(runs) > 1
    rows = []
    for run in runs:
        comp = run.results.get("compression", {})
        teacher_bytes = comp.get("dense_teacher_bytes") or math.nan
        for role, entry in run.results["models"].items():
            fp32 = comp.get("fp32", {}) if entry.get("masked") else {}
            fp16 = comp.get("fp16", {}) if entry.get("masked") else {}
            dense_bytes = 4 * entry["nonzeros"] if not entry.get("masked") else None
            b32 = fp32.get("bytes", dense_bytes)
            rows.append({
                "model": label(run, role, multi),
                "parameters": entry["params"],
                "non-zeros": entry["nonzeros"],
                "density": entry["nonzeros"] / max(entry["params"], 1),
                "bytes fp32": b32,
                "bytes fp16": fp16.get("bytes", None),
                "ratio fp32": (b32 / teacher_bytes) if b32 else math.nan,
                "ratio fp16": (fp16["bytes"] / teacher_bytes) if fp16.get("bytes") else math.nan,
                "storage": ", ".join(sorted(set(fp32.get("encodings", {}).values())))
                if fp32 else "dense",
                "dense teacher bytes": comp.get("dense_teacher_bytes"),
            })
    return pd.DataFrame(rows)


def curves(runs: list[RunData]) -> pd.DataFrame:
    """Training curves (one row per run x epoch): loss, valid MRR, sparsity, mask churn."""
    rows = []
    for run in runs:
        for rec in run.train_log:
            rows.append({
                "run": run.name, "epoch": rec.get("epoch"), "loss": rec.get("loss"),
                "valid_mrr": rec.get("valid_mrr"),
                "teacher_valid_mrr": rec.get("teacher_valid_mrr"),
                "sparsity": rec.get("sparsity"), "mask_churn": rec.get("mask_churn"),
            })
    return pd.DataFrame(rows)
