"""Quality protocol (CPU): teacher, MetaSD students and baselines, several seeds.

Every method is a configuration of the same :class:`metasd_pyg.training.Trainer`
(see ``docs/training.md``, "CPU protocol"). For each dataset x method x seed
the script trains, selects the epoch on the student's VALID MRR, and records
the final test metrics and the long-tail bucket table (quantile buckets of
the target entity's train degree, from :func:`metasd_pyg.evaluation.evaluate`).

Example (the recorded run)::

    nohup python benchmarks/bench_quality.py --datasets kinship umls --seeds 0 1 2 \\
        --out benchmarks/results/quality > /tmp/quality.log 2>&1 &

Writes ``<out>.md`` (tables, mean +- std over seeds), ``<out>_runs.csv`` (one
row per run) and ``<out>_buckets.csv`` (bucket MRR per run). Runs already in
``<out>_runs.csv`` are skipped, so an interrupted protocol can be continued.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from metasd_pyg.data import load_dataset
from metasd_pyg.evaluation import evaluate
from metasd_pyg.training import Built, MetaSDConfig, compose

#: Shared settings of the CPU protocol (rank 100, 90% sparsity).
PROTOCOL: dict[str, Any] = dict(
    model="complex", dim=100, sparsity=0.9, batch_size=256, lr=0.5, optimizer="adagrad",
    regularizer="dura", regularizer_weight=0.01, student_weight=3.0,
    student_regularizer_weight=0.0, meta_every=4, epochs=50, eval_every=5, progress=False,
    device="cpu", threads=1, finetune_epochs=30,
)

#: Per-dataset overrides of the protocol.
#: FB15k-237 and WN18RR are 50-400x larger than Kinship/UMLS: a MetaSD epoch
#: of rank-100 ComplEx takes 5-15 min on one CPU thread there, so the CPU
#: protocol is a short budget: 2 epochs at the official batch size and
#: learning rate, validation on a fixed 2,000-query subset every epoch, full
#: valid/test at the end; one-shot pruning fine-tunes for 1 epoch.
LARGE: dict[str, Any] = dict(batch_size=1000, lr=0.1, epochs=2, eval_every=1,
                             valid_max_queries=2000, finetune_epochs=1)
DATASET_OVERRIDES: dict[str, dict[str, Any]] = {"fb15k-237": LARGE, "wn18rr": LARGE}

#: The equal-wall-time protocol for FB15k-237 and WN18RR (``--protocol wall``,
#: issue 11): every method gets the same training budget, about 27 min at one
#: thread, stated as a number of epochs per method so that runs reproduce.
#: Epoch costs measured side by side (``bench_train_cost.py --steps 24``,
#: batch 1000, 1 thread, both graphs): MetaSD ~390-420 s, mutual learning
#: without the meta step within 10% of it (so both get 4 epochs), the dense
#: model with the student's non-zeros (ComplEx dim 10) ~92 s, so 17 epochs at
#: the student's wall time, with early stopping on valid (patience 3). The
#: teacher alone runs the student's epochs (the target compares at "same rank
#: and epochs"), which is half the budget.
WALL: dict[str, Any] = dict(LARGE, epochs=4, finetune_epochs=2)
WALL_METHODS: dict[str, dict[str, Any]] = {
    "dense-same-nnz": dict(epochs=17, patience=3),
    "dense-same-nnz-sampled": dict(patience=5),
    # the student's wall time for the dense model (its sampled epoch costs about a sixth of
    # the student's on WN18RR: 181 vs 1189 s for 40 epochs), early stopping on valid
    "dense-same-nnz-sampled-wall": dict(epochs=260, patience=5),
}
#: The sampled-loss budget protocol (``--protocol sampled``, issue 11): the
#: ``-sampled`` methods (row-wise engine) with a budget of about 45 min per run
#: at one thread, stated as epochs. Epoch costs measured in ``quality_sampled.md``
#: (1 thread, two runs side by side, validation included): the student with its
#: teacher ~28 s on WN18RR and ~90 s on FB15k-237, so 90 and 30 epochs; the
#: teacher alone runs the student's epochs (the target compares at "same rank and
#: epochs"); the dense model of the student's size costs a sixth of the
#: student's epoch on both graphs (184 vs 1,130 s on WN18RR, 290 vs 1,790 s on
#: FB15k-237), so six times its epochs, with early stopping on valid (patience 5).
SAMPLED: dict[str, dict[str, Any]] = {"wn18rr": dict(LARGE, epochs=90, finetune_epochs=2),
                                      "fb15k-237": dict(LARGE, epochs=30, finetune_epochs=2)}
SAMPLED_METHODS: dict[str, dict[str, Any]] = {
    "dense-same-nnz-sampled": dict(epochs_factor=6, patience=5)}
PROTOCOLS: dict[str, tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]] = {
    "epochs": (DATASET_OVERRIDES, {}),
    "wall": ({"fb15k-237": WALL, "wn18rr": WALL}, WALL_METHODS),
    "sampled": (SAMPLED, SAMPLED_METHODS),
}

#: Method name -> configuration overrides (they win over the dataset's);
#: ``epochs_factor`` multiplies the epochs (a compute-matched dense baseline:
#: its epoch costs a fifth of a MetaSD epoch).
METHODS: dict[str, dict[str, Any]] = {
    "teacher": dict(mode="teacher"),
    "metasd-global": dict(mode="metasd", meta=True, strategy="global"),
    "metasd-aligned": dict(mode="metasd", meta=True, strategy="aligned", importance="magnitude"),
    "metasd-degree": dict(mode="metasd", meta=True, strategy="degree", k_max_factor=None,
                          importance="magnitude"),
    "metasd-degree-kmax": dict(mode="metasd", meta=True, strategy="degree", k_max=32,
                               importance="magnitude"),
    "metasd-degree-index": dict(mode="metasd", meta=True, strategy="degree", k_max=32,
                                importance="index"),
    "metasd-degree-index-alpha025": dict(mode="metasd", meta=True, strategy="degree", k_max=32,
                                         importance="index", alpha=0.25),
    "metasd-degree-index-warmup": dict(mode="metasd", meta=True, strategy="degree", k_max=32,
                                       importance="index", teacher_distill_warmup_epochs=1),
    "nometa-degree": dict(mode="metasd", strategy="degree", k_max_factor=None, meta=False,
                          importance="magnitude"),
    "nometa-degree-kmax": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                               importance="magnitude"),
    "nometa-degree-index": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                                importance="index"),
    # issue 11: the long tail starves under degree-aware prefixes (WN18RR's 0-1 bucket: 0.000)
    "nometa-degree-index-kmin8": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                                      importance="index", k_min=8),
    "nometa-degree-index-alpha0": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                                       importance="index", alpha=0.0),
    # issue 11: the meta step (its virtual step now the student's real loss) and its settings
    "meta-lr1e-3": dict(mode="metasd", meta=True, strategy="degree", k_max=32, importance="index",
                        meta_lr=1e-3),
    "meta-lr1e-2": dict(mode="metasd", meta=True, strategy="degree", k_max=32, importance="index",
                        meta_lr=1e-2),
    "meta-full": dict(mode="metasd", meta=True, strategy="degree", k_max=32, importance="index",
                      meta_path="full"),
    "meta-every1": dict(mode="metasd", meta=True, strategy="degree", k_max=32, importance="index",
                        meta_every=1),
    "meta-quiz1024-vlr1": dict(mode="metasd", meta=True, strategy="degree", k_max=32,
                               importance="index", quiz_batch_size=1024, virtual_lr=1.0),
    # the teacher's loss from co-training
    "nometa-teacher-distill0": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                                    importance="index", teacher_distill=0.0),
    "nometa-student-weight1": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                                   importance="index", student_weight=1.0),
    # dynamic masks
    # (the ramp starts dense: the cap is relative, k_max_factor, not k_max=32)
    "nometa-ramp10": dict(mode="metasd", strategy="degree", meta=False, importance="index",
                          ramp_epochs=10),
    "nometa-ramp10-magnitude": dict(mode="metasd", strategy="degree", meta=False,
                                    importance="magnitude", ramp_epochs=10),
    "nometa-magnitude": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                             importance="magnitude"),
    "nometa-magnitude-hyst": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                                  importance="magnitude", hysteresis=0.5),
    "dense-same-nnz": dict(mode="dense_same_nnz"),
    # issue 11: the dense model of the student's size at the student's epochs (not its wall
    # time): is the student behind per epoch, or only per second?
    "dense-same-nnz-equal-epochs": dict(mode="dense_same_nnz"),
    # issue 11: the sampled loss (row-wise engine) for the large graphs: an epoch of a few
    # seconds instead of minutes, so the equal-wall-time budget buys many more epochs
    "nometa-sampled": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                           importance="index", loss="sampled"),
    # issue 11, FB15k-237: the student's own regulariser (0 by default, tuned on the small graphs)
    # and its weight on the shared coordinates
    "nometa-sampled-sreg": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                                importance="index", loss="sampled",
                                student_regularizer_weight=0.01),
    "nometa-sampled-sw1": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                               importance="index", loss="sampled", student_weight=1.0),
    "nometa-sampled-sreg-sw1": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                                    importance="index", loss="sampled",
                                    student_regularizer_weight=0.01, student_weight=1.0),
    # issue 11: the student's logits scaled (student_logit_scale): sharp student probabilities
    # without large shared coordinates
    "nometa-degree-index-g3": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                                   importance="index", student_logit_scale=3.0),
    "nometa-sampled-g3": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                              importance="index", loss="sampled", student_logit_scale=3.0),
    "nometa-sampled-sreg-g3": dict(mode="metasd", strategy="degree", k_max=32, meta=False,
                                   importance="index", loss="sampled",
                                   student_regularizer_weight=0.01, student_logit_scale=3.0),
    "dense-same-nnz-sampled": dict(mode="dense_same_nnz", loss="sampled"),
    "teacher-sampled": dict(mode="teacher", loss="sampled"),
    "dense-same-nnz-sampled-wall": dict(mode="dense_same_nnz", loss="sampled"),
    "dense-same-nnz-5x": dict(mode="dense_same_nnz", epochs_factor=5),
    "oneshot-global": dict(mode="oneshot", strategy="global"),
}
#: The methods recorded before ``student_logit_scale`` existed ran with unscaled student
#: logits; they keep that meaning (the ``-g3`` methods and the default scale 3 since).
for _opts in METHODS.values():
    if _opts.get("mode") == "metasd":
        _opts.setdefault("student_logit_scale", 1.0)

METRICS = ("mrr", "hits@1", "hits@3", "hits@10")


def _evaluator(buckets: str) -> Any:
    def run(model: Any, graph: Any, split: str, **kw: Any) -> Any:
        return evaluate(model, graph, split, bins=buckets, **kw)

    return run


def _row(dataset: str, method: str, seed: int, res: Any, wall: float,
         protocol: str) -> dict[str, Any]:
    churn = [h["mask_churn"] for h in res.history if "mask_churn" in h]
    # training + validation time summed over the epochs: the same figure for a
    # run resumed from its checkpoint (wall_s is this process only)
    train_s = sum(float(h.get("time_total", 0.0)) for h in res.history)
    row: dict[str, Any] = {"dataset": dataset, "method": method, "seed": seed,
                           "best_epoch": res.best_epoch, "wall_s": round(wall, 1),
                           "epochs_run": len(res.history),
                           "mask_churn": sum(churn) / len(churn) if churn else ""}
    for k in METRICS:
        row[f"test_{k}"] = res.final_test.summary[k]
        row[f"valid_{k}"] = res.final_valid.summary[k]
        row[f"teacher_test_{k}"] = res.teacher_test.summary[k]
    row["train_s"] = round(train_s, 1)
    row["protocol"] = protocol
    if "oneshot_test" in res.extra:
        for k in METRICS:
            row[f"oneshot_nofinetune_test_{k}"] = res.extra["oneshot_test"].summary[k]
    return row


def _bucket_rows(dataset: str, method: str, seed: int, res: Any) -> list[dict[str, Any]]:
    out = []
    df = res.final_test.buckets
    for rec in df[df["side"] == "both"].to_dict(orient="records"):
        out.append({"dataset": dataset, "method": method, "seed": seed,
                    "bucket": rec["bucket"], "lower": rec["lower"], "upper": rec["upper"],
                    "num_queries": rec["num_queries"], "mrr": rec["mrr"],
                    "hits@10": rec["hits@10"]})
    return out


ONESHOT_KEYS = [f"oneshot_nofinetune_test_{k}" for k in METRICS]


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append rows; rewrite the file when they bring new columns (header stays complete)."""
    old = _read(path)
    fields: list[str] = []
    for r in [*old, *rows]:
        fields += [k for k in r if k not in fields]
    header = list(old[0]) if old else []
    if old and fields == header:
        with path.open("a", newline="", encoding="utf-8") as fh:
            csv.DictWriter(fh, fieldnames=fields).writerows(rows)
        return
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows([*old, *rows])
    os.replace(tmp, path)


def _read(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, restkey="_rest"))
    for r in rows:  # files written before the header rewrite: extra one-shot columns
        rest = r.pop("_rest", None)
        if rest:
            r.update(dict(zip(ONESHOT_KEYS, rest)))  # type: ignore[arg-type]
    return rows


def _fmt(vals: list[float]) -> str:
    t = torch.tensor(vals, dtype=torch.float64)
    std = float(t.std()) if len(vals) > 1 else 0.0
    return f"{float(t.mean()):.3f} ± {std:.3f}"


#: Hand-written text from this line on in ``<out>.md`` survives regeneration.
NOTES_MARKER = "<!-- notes: kept when bench_quality regenerates the tables above -->"


def write_report(out: Path, command: str) -> str:
    """Aggregate ``<out>_runs.csv`` / ``<out>_buckets.csv`` into ``<out>.md``.

    An existing ``<out>.md`` keeps its title (first line, if a heading) and
    everything from :data:`NOTES_MARKER` on: the tables are regenerated, the
    text people wrote around them is not lost.
    """
    runs = _read(out.with_name(out.name + "_runs.csv"))
    buckets = _read(out.with_name(out.name + "_buckets.csv"))
    md = out.with_suffix(".md")
    old = md.read_text(encoding="utf-8") if md.exists() else ""
    first = old.splitlines()[0] if old else ""
    title = first if first.startswith("# ") else \
        "# Quality: MetaSD students vs baselines (CPU protocol)"
    notes = old[old.index(NOTES_MARKER):] if NOTES_MARKER in old else ""
    lines = [title, "",
             "Protocol: `docs/training.md` (CPU protocol). Shared settings: "
             + ", ".join(f"{k}={v}" for k, v in PROTOCOL.items() if k != "progress"), "",
             "Test metrics of the model selected on VALID MRR (the student's for "
             "MetaSD / one-shot), filtered, realistic ties, both directions; mean ± std over "
             "seeds.", ""]
    for ds in sorted({r["dataset"] for r in runs}):
        lines += [f"## {ds}", ""]
        protocols = sorted({r.get("protocol") or "epochs" for r in runs if r["dataset"] == ds})
        for name in protocols:
            datasets, methods = PROTOCOLS[name]
            if ds in datasets:
                lines += [f"Overrides for this dataset (protocol `{name}`): " + ", ".join(
                    f"{k}={v}" for k, v in datasets[ds].items()), ""]
            if methods and ds in datasets:
                lines += ["Per-method overrides: " + "; ".join(
                    f"{m}: " + ", ".join(f"{k}={v}" for k, v in o.items())
                    for m, o in methods.items()), ""]
        lines += ["| method | seeds | MRR | Hits@1 | Hits@3 | Hits@10 | teacher MRR, same run |"
                  " mask churn / epoch | wall (s) | best epoch / epochs run |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for method in _labels(runs):
            rs = [r for r in runs if r["dataset"] == ds and r["method"] == method]
            if not rs:
                continue
            cells = [_fmt([float(r[f"test_{k}"]) for r in rs]) for k in METRICS]
            cells.append(_fmt([float(r["teacher_test_mrr"]) for r in rs])
                         if _mode(method) in ("metasd", "oneshot") else "")
            churns = [float(r["mask_churn"]) for r in rs if r.get("mask_churn")]
            cells.append(f"{sum(churns) / len(churns):.4f}" if churns else "")
            wall = f"{sum(float(r.get('train_s') or r['wall_s']) for r in rs) / len(rs):.0f}"
            # epochs run, not the protocol's: --epochs and early stopping change them
            be = ",".join(f"{r['best_epoch']}/{r['epochs_run']}" if r.get("epochs_run")
                          else r["best_epoch"] for r in rs)
            lines.append(f"| {method} | {len(rs)} | " + " | ".join(cells) + f" | {wall} | {be} |")
            if method.startswith("oneshot") and rs[0].get("oneshot_nofinetune_test_mrr"):
                cells = [_fmt([float(r[f"oneshot_nofinetune_test_{k}"]) for r in rs])
                         for k in METRICS]
                lines.append(f"| {method} (no fine-tune) | {len(rs)} | " + " | ".join(cells)
                             + " | | | | |")
        teach = [float(r["test_mrr"]) for r in runs
                 if r["dataset"] == ds and r["method"] == "teacher"]
        if teach:
            t = sum(teach) / len(teach)
            lines += ["", "Student / teacher MRR ratio (target >= 0.9): " + ", ".join(
                f"{m}: {sum(v) / len(v) / t:.3f}" for m in _labels(runs)
                if _mode(m) != "teacher"
                for v in [[float(r['test_mrr']) for r in runs
                           if r['dataset'] == ds and r['method'] == m]] if v)]
        lines += _paired(runs, buckets, ds)
        bs = [b for b in buckets if b["dataset"] == ds and b["bucket"] not in ("micro", "macro")]
        names = []
        for b in bs:
            if b["bucket"] not in names:
                names.append(b["bucket"])
        if bs:
            lines += ["", f"Long tail ({ds}): test MRR per bucket of the target entity's train "
                      "degree (quantile buckets; both directions), mean ± std over seeds.", "",
                      "| method | " + " | ".join(names) + " |",
                      "|---|" + "---|" * len(names)]
            counts = {n: next(b["num_queries"] for b in bs if b["bucket"] == n) for n in names}
            lines.append("| queries | " + " | ".join(str(counts[n]) for n in names) + " |")
            for method in _labels(runs):
                cells = []
                for n in names:
                    v = [float(b["mrr"]) for b in bs if b["method"] == method
                         and b["bucket"] == n and b["mrr"] not in ("", "nan")]
                    cells.append(_fmt(v) if v else "")
                if any(cells):
                    lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Command: `" + command + "`", ""]
    text = "\n".join(lines) + ("\n" + notes if notes else "")
    md.write_text(text, encoding="utf-8")
    return text


#: (method, baseline) pairs compared seed by seed when both ran.
PAIRS = [("metasd-degree-index", "nometa-degree-index"),
         ("metasd-degree-index", "dense-same-nnz"), ("nometa-degree-index", "dense-same-nnz"),
         ("nometa-degree-index-g3", "nometa-degree-index"),
         ("nometa-degree-index-g3", "dense-same-nnz"),
         ("nometa-degree-index-g3", "dense-same-nnz-5x"),
         ("nometa-sampled", "dense-same-nnz-sampled"),
         ("nometa-sampled-g3", "nometa-sampled"),
         ("nometa-sampled-g3", "dense-same-nnz-sampled")]


def _pairs(labels: set[str]) -> list[tuple[str, str]]:
    """:data:`PAIRS`, then every variant ``NAME+key=value`` against ``NAME`` and against the
    dense model of the student's size of its protocol (and that model given the student's
    wall time, where it ran)."""
    pairs = list(PAIRS)
    for label in sorted(labels):
        base = method_spec(label)[0]
        if label != base:
            dense = "dense-same-nnz-sampled" if "sampled" in base else "dense-same-nnz"
            pairs += [(label, base), (label, dense)]
            if "sampled" not in base and "dense-same-nnz-5x" in labels:
                pairs.append((label, "dense-same-nnz-5x"))
    return pairs


def method_spec(label: str) -> tuple[str, dict[str, Any]]:
    """``"base+key=value+..."`` -> ``(base, overrides)``: a method of :data:`METHODS` with
    settings of its own (a sweep without a new entry), e.g.
    ``nometa-sampled+student_logit_scale=5``. Values are read as Python literals
    (numbers, ``True``/``False``/``None``), else kept as strings."""
    base, *pairs = label.split("+")
    if base not in METHODS:
        raise SystemExit(f"bench_quality: unknown method {base!r} in {label!r}; "
                         f"known: {', '.join(METHODS)}")
    extra: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"bench_quality: {pair!r} in {label!r} is not key=value")
        try:
            extra[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            extra[key] = raw
    return base, extra


def _mode(label: str) -> Any:
    base, extra = method_spec(label)
    return extra.get("mode", METHODS[base].get("mode"))


def _labels(runs: list[dict[str, str]]) -> list[str]:
    """The methods of ``runs`` in the order of :data:`METHODS` (variants after their base)."""
    order = {m: i for i, m in enumerate(METHODS)}
    labels = {r["method"] for r in runs}
    return sorted(labels, key=lambda m: (order[method_spec(m)[0]], m))


def _paired(runs: list[dict[str, str]], buckets: list[dict[str, str]], ds: str) -> list[str]:
    """Seed-by-seed test-MRR differences (overall and lowest-degree bucket)."""
    lowest = next((b["bucket"] for b in buckets if b["dataset"] == ds
                   and b["bucket"] not in ("micro", "macro")), None)

    def by_seed(method: str) -> dict[str, tuple[float, float | None]]:
        out = {}
        for r in runs:
            if r["dataset"] == ds and r["method"] == method:
                low = [float(b["mrr"]) for b in buckets if b["dataset"] == ds
                       and b["method"] == method and b["seed"] == r["seed"]
                       and b["bucket"] == lowest and b["mrr"] not in ("", "nan")]
                out[r["seed"]] = (float(r["test_mrr"]), low[0] if low else None)
        return out

    rows = []
    for a, b in _pairs({r["method"] for r in runs if r["dataset"] == ds}):
        ra, rb = by_seed(a), by_seed(b)
        seeds = sorted(set(ra) & set(rb), key=int)
        if not seeds:
            continue
        d = [ra[s][0] - rb[s][0] for s in seeds]
        lo = [ra[s][1] - rb[s][1] for s in seeds  # type: ignore[operator]
              if ra[s][1] is not None and rb[s][1] is not None]
        rows.append(f"| {a} - {b} | {','.join(seeds)} | "
                    + " / ".join(f"{x:+.4f}" for x in d) + f" | {_fmt(d)} | "
                    + (_fmt(lo) if lo else "") + " |")
    if not rows:
        return []
    return ["", f"Paired test-MRR differences, seed by seed (lowest-degree bucket `{lowest}`):",
            "", "| comparison | seeds | per seed | mean ± std | lowest bucket, mean ± std |",
            "|---|---|---|---|---|", *rows]


def merge_runs(out: Path, other: Path) -> int:
    """Append the runs of ``other`` missing from ``out`` (by dataset, method, seed)."""
    source = other.with_name(other.name + "_runs.csv")
    if not source.is_file():
        raise SystemExit(f"bench_quality: --merge {other}: {source} does not exist")
    runs = out.with_name(out.name + "_runs.csv")
    have = {(r["dataset"], r["method"], r["seed"]) for r in _read(runs)}
    new = [r for r in _read(source)
           if (r["dataset"], r["method"], r["seed"]) not in have]
    keys = {(r["dataset"], r["method"], r["seed"]) for r in new}
    if new:
        _append(runs, new)
        _append(out.with_name(out.name + "_buckets.csv"),
                [b for b in _read(other.with_name(other.name + "_buckets.csv"))
                 if (b["dataset"], b["method"], b["seed"]) in keys])
    return len(new)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["kinship", "umls"])
    p.add_argument("--methods", nargs="+", default=list(METHODS),
                   help="names of METHODS, each optionally with settings of its own: "
                        "NAME+key=value[+key=value...] (e.g. nometa-sampled+student_logit_scale=5)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--root", default=os.environ.get("METASD_DATA_ROOT", "../shared/datasets"))
    p.add_argument("--epochs", type=int, default=None, help="override the protocol's epochs")
    p.add_argument("--buckets", default="quantile:4")
    p.add_argument("--out", default="benchmarks/results/quality")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--merge", nargs="+", metavar="OUT", default=[],
                   help="first append the runs of these outputs (<OUT>_runs.csv and "
                        "<OUT>_buckets.csv) that --out does not have yet, then report")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--protocol", choices=list(PROTOCOLS), default="epochs",
                   help="epochs: the short 2-epoch protocol on the large graphs; wall: equal "
                        "wall time per method (WALL, WALL_METHODS); sampled: the sampled "
                        "loss at about 45 min per run (SAMPLED, SAMPLED_METHODS)")
    p.add_argument("--checkpoints", default=None, metavar="DIR",
                   help="checkpoint every run under DIR/<dataset>/<method>/seed<k> and resume "
                        "an interrupted run from there (the folder is removed once recorded)")
    args = p.parse_args()
    out = Path(args.out)
    command = "python " + " ".join(sys.argv)
    for other in args.merge:
        merge_runs(out, Path(other))
    if args.report_only or args.merge:
        print(write_report(out, command))
        return
    torch.set_num_threads(args.threads)
    runs_csv = out.with_name(out.name + "_runs.csv")
    done = {(r["dataset"], r["method"], r["seed"]) for r in _read(runs_csv)}
    for ds in args.datasets:
        graph = load_dataset(ds, root=args.root, progress=False)
        for seed in args.seeds:
            for method in args.methods:
                if (ds, method, str(seed)) in done:
                    continue
                datasets, methods = PROTOCOLS[args.protocol]
                base, extra = method_spec(method)
                opts = {**PROTOCOL, **datasets.get(ds, {}), **METHODS[base],
                        **(methods.get(base, {}) if ds in datasets else {}), **extra,
                        "seed": seed, "threads": args.threads}
                if args.epochs is not None:
                    opts["epochs"] = args.epochs
                opts["epochs"] *= opts.pop("epochs_factor", 1)
                cfg = MetaSDConfig.flat(**opts)
                folder = (Path(args.checkpoints) / ds / method / f"seed{seed}"
                          if args.checkpoints else None)
                t0 = time.perf_counter()
                res = compose(graph, cfg, Built(evaluator=_evaluator(args.buckets),
                                                checkpoint_dir=folder)).fit(resume=True)
                wall = time.perf_counter() - t0
                _append(runs_csv, [_row(ds, method, seed, res, wall, args.protocol)])
                _append(out.with_name(out.name + "_buckets.csv"),
                        _bucket_rows(ds, method, seed, res))
                print(json.dumps({"dataset": ds, "method": method, "seed": seed,
                                  "test_mrr": round(res.final_test.summary["mrr"], 4),
                                  "teacher_test_mrr": round(res.teacher_test.summary["mrr"], 4),
                                  "best_epoch": res.best_epoch, "wall_s": round(wall, 1)}),
                      flush=True)
                write_report(out, command)
                if folder is not None:
                    shutil.rmtree(folder)
                    for parent in (folder.parent, folder.parent.parent):
                        if not any(parent.iterdir()):
                            parent.rmdir()
    print(write_report(out, command))


if __name__ == "__main__":
    main()
