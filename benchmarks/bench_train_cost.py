"""Per-epoch cost of MetaSD vs the dense teacher alone, side by side in one run.

Same data, batch and rank for every method: each method's trainer is built on
the same graph and runs real training steps on the same batches. Methods are
timed in interleaved rounds (``--block`` steps of each method per round) so
that load from other processes affects all of them alike. The per-epoch time
is the mean step time x steps per epoch, plus the mask recomputation (once
per epoch by default) for the methods with a student.

Example (the issue's setting; a few hundred steps are enough)::

    python benchmarks/bench_train_cost.py --dataset fb15k-237 --dim 100 \\
        --batch-size 1000 --steps 80 --threads 1 --variant degree degree-kmax32 aligned \\
        --out benchmarks/results/train_cost.md

Prints a table and the ratio MetaSD / teacher (target <= 4x, goal <= 2.5x).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from metasd_pyg.data import load_dataset
from metasd_pyg.training import DynamicPruning, MetaSDConfig, Trainer, compose


def _methods(args: argparse.Namespace) -> dict[str, MetaSDConfig]:
    """Teacher, then per ``--variant`` the mutual step alone and MetaSD per ``--meta-every``."""
    base = dict(model="complex", dim=args.dim, batch_size=args.batch_size, epochs=1,
                progress=False, seed=0, device="cpu", sparsity=0.9, threads=args.threads)
    out = {"teacher": MetaSDConfig.flat(mode="teacher", **base)}
    for variant in args.variant:
        opts = dict(VARIANTS[variant], **base)
        out[f"{variant}: mutual (no meta)"] = MetaSDConfig.flat(
            mode="metasd", meta=False, **opts)
        for k in args.meta_every:
            out[f"{variant}: metasd meta_every={k}"] = MetaSDConfig.flat(
                mode="metasd", meta=True, meta_every=k, **opts)
    return out


#: Student configurations compared with the teacher (all at 90% sparsity).
VARIANTS: dict[str, dict[str, object]] = {
    "degree": dict(strategy="degree"),  # the default cap, k_max_factor=3.2
    "degree-uncapped": dict(strategy="degree", k_max_factor=None),
    "degree-kmax32": dict(strategy="degree", k_max=32),
    "degree-kmax32-full-width": dict(strategy="degree", k_max=32, compact_student=False),
    "aligned": dict(strategy="aligned"),
    "global": dict(strategy="global"),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="fb15k-237")
    p.add_argument("--root", default=os.environ.get("METASD_DATA_ROOT", "../shared/datasets"))
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--steps", type=int, default=120, help="timed steps per method")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--block", type=int, default=4, help="steps per method per round")
    p.add_argument("--meta-every", type=int, nargs="+", default=[4])
    p.add_argument("--variant", nargs="+", default=["degree", "degree-kmax32"],
                   choices=list(VARIANTS), help="student configurations to time")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="Markdown file to write")
    p.add_argument("--json", default=None, help="JSON file to write")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    graph = load_dataset(args.dataset, root=args.root, progress=False)
    trainers: dict[str, Trainer] = {}
    for name, cfg in _methods(args).items():
        tr = compose(graph, cfg)
        assert isinstance(tr, Trainer)
        tr.start()
        trainers[name] = tr
    # The same batches for every method (the first rows of one shuffled stream).
    perm = torch.randperm(graph.train.size(0) * 2, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {n: [] for n in trainers}
    mask_time: dict[str, float] = {}
    for name, tr in trainers.items():
        pruning = tr.part(DynamicPruning)
        if pruning is not None:
            t0 = time.perf_counter()
            pruning.recompute(tr, 0, 0)
            mask_time[name] = time.perf_counter() - t0
    cursor = {n: 0 for n in trainers}

    def run(name: str, n: int, record: bool) -> None:
        tr = trainers[name]
        stream = tr.stream
        for _ in range(n):
            i = cursor[name]
            idx = perm[(i * args.batch_size) % perm.numel():][: args.batch_size]
            idx = idx[idx < stream.size(0)]
            batch = stream[idx]
            t0 = time.perf_counter()
            tr.train_step(batch)
            dt = time.perf_counter() - t0
            cursor[name] += 1
            if record:
                times[name].append(dt)

    for name in trainers:
        run(name, args.warmup, False)
        trainers[name].global_step = 0
    rounds = max(1, args.steps // args.block)
    for _ in range(rounds):
        for name in trainers:
            run(name, args.block, True)

    rows = []
    teacher = trainers["teacher"]
    base_epoch = None
    for name, tr in trainers.items():
        ts = torch.tensor(times[name])
        step = float(ts.mean())
        epoch = step * tr.steps_per_epoch + mask_time.get(name, 0.0)
        if name == "teacher":
            base_epoch = epoch
        rows.append({"method": name, "steps": len(ts), "step_mean_s": step,
                     "step_median_s": float(ts.median()), "steps_per_epoch": tr.steps_per_epoch,
                     "mask_recompute_s": mask_time.get(name, 0.0), "epoch_s": epoch})
    assert base_epoch is not None
    for r in rows:
        r["ratio_vs_teacher"] = r["epoch_s"] / base_epoch
    header = (f"{args.dataset}, ComplEx dim {args.dim}, batch {args.batch_size}, "
              f"{args.steps} timed steps per method (interleaved blocks of {args.block}), "
              f"threads {args.threads}, teacher steps/epoch {teacher.steps_per_epoch}")
    lines = ["# Training cost: MetaSD vs dense teacher\n", header, "",
             "| method | step mean (s) | step median (s) | steps/epoch | mask recompute (s) |"
             " epoch (s) | ratio vs teacher |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['step_mean_s']:.4f} | {r['step_median_s']:.4f} | "
                     f"{r['steps_per_epoch']} | {r['mask_recompute_s']:.2f} | "
                     f"{r['epoch_s']:.1f} | {r['ratio_vs_teacher']:.2f}x |")
    lines += ["", f"Machine: {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cores (shared), torch {torch.__version__}", "",
              "Command: `python " + " ".join(sys.argv) + "`"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps({"setting": header, "rows": rows}, indent=1),
                                   encoding="utf-8")


if __name__ == "__main__":
    main()
