"""Per-step training cost as the graph grows: FB15k-237 vs ogbl-wikikg2-sized graphs.

The work of a sampled step is the same on every graph (``--batch-size`` queries
against their tails plus ``--negatives`` shared negatives); with the row-wise
engine (:mod:`metasd_pyg.training.engine`) its time should not grow with the
number of entities. For every graph and method the script builds the trainer
(ComplEx, ``loss="sampled"``, Adagrad), takes a few warm-up steps, then times
``--steps`` steps in interleaved blocks (``--block`` steps of each trainer per
round, so that load from other processes hits all alike) and reports the
median step time, its ratio to the first graph's, and the time of the step's
score products alone (the ``[B, 2d] x [2d, C]`` products, forward and backward,
of the teacher, and for MetaSD also of the student at its compact width, timed
on random tensors of the same shapes, in every round of the interleaved blocks): the
step / products ratio is the engine's overhead over the arithmetic it cannot avoid.

Example (the recorded run)::

    python benchmarks/bench_scale.py --graphs fb15k-237 \\
        synthetic:entities=250000,relations=535,triples=1600000 --steps 24 \\
        --engines rows dense --out benchmarks/results/scale.md

Graphs are dataset names or specs of :func:`metasd_pyg.data.load_dataset`
(``ogbl-wikikg2`` with ``--root`` at a folder written by
:func:`metasd_pyg.data.write_ogb_wikikg2` reads the ogb layout).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from metasd_pyg.data import load_dataset
from metasd_pyg.runs.submit import cpu_model
from metasd_pyg.training import MetaSDConfig, Trainer, compose


def _methods(args: argparse.Namespace) -> dict[str, MetaSDConfig]:
    base: dict[str, Any] = dict(model="complex", dim=args.dim, batch_size=args.batch_size,
                                loss="sampled", num_negatives=args.negatives,
                                optimizer="adagrad", lr=0.1, progress=False, device="cpu",
                                threads=args.threads, eval_every=10**6)
    out = {}
    for engine in args.engines:
        for mode in args.modes:
            for pages in args.pages:
                name = f"{mode} ({engine}{', 4 KiB pages' if pages == 'small' else ''})"
                out[name] = MetaSDConfig.flat(**base, **MODES[mode], engine=engine,
                                              huge_pages=pages == "huge")
    return out


#: ``--modes`` choices: MetaSD runs without the meta step by default; ``metasd+meta`` adds it.
MODES: dict[str, dict[str, Any]] = {
    "teacher": dict(mode="teacher"), "metasd": dict(mode="metasd"),
    "metasd+meta": dict(mode="metasd", meta=True), "dense_same_nnz": dict(mode="dense_same_nnz")}


def _products(batch: int, width: int, cands: int, repeats: int = 5) -> float:
    """Median seconds of one ``[B, w] x [w, C]`` score product, forward and backward."""
    q = torch.randn(batch, width, requires_grad=True)
    c = torch.randn(cands, width, requires_grad=True)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        (q @ c.t()).sum().backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


PYG = "PyG ComplEx(sparse=True) + Adagrad"


class PygUser:
    """What a PyG user writes: ``ComplEx(..., sparse=True)``, ``model.loader``,
    ``model.loss`` (one random corruption per triple, BCE) and torch's Adagrad."""

    def __init__(self, graph: Any, dim: int, batch_size: int) -> None:
        from torch_geometric.nn.kge import ComplEx

        self.num_entities = graph.num_entities
        self.model = ComplEx(graph.num_entities, graph.num_relations, dim, sparse=True)
        self.opt = torch.optim.Adagrad(self.model.parameters(), lr=0.1)
        tr = graph.train
        self.loader = self.model.loader(tr[:, 0], tr[:, 1], tr[:, 2], batch_size=batch_size,
                                        shuffle=True)
        self.steps_per_epoch = len(self.loader)
        self._it = iter(self.loader)

    def step(self) -> None:
        try:
            h, r, t = next(self._it)
        except StopIteration:
            self._it = iter(self.loader)
            h, r, t = next(self._it)
        self.opt.zero_grad()
        self.model.loss(h, r, t).backward()
        self.opt.step()


#: ``--phases``: the phases of a step, in order.
PHASES = ("candidates", "the view (row gathers)", "objective forward", "backward",
          "sparse gradients", "optimiser")


class PhaseTimer:
    """Times the phases of a trainer's steps by wrapping its methods (``--phases``).

    While :attr:`active` names a trainer, every call of a wrapped method adds its
    wall time to that trainer's list for the phase; ``Tensor.backward`` is wrapped
    for the whole process (the benchmark's only backward passes are the steps').
    """

    def __init__(self, trainers: dict[tuple[str, str], Any]) -> None:
        self.active: tuple[str, str] | None = None
        self.times: dict[tuple[str, str], dict[str, list[float]]] = {
            k: {ph: [] for ph in PHASES} for k, tr in trainers.items() if isinstance(tr, Trainer)}
        classes = set()
        for tr in trainers.values():
            if not isinstance(tr, Trainer):
                continue
            tr.objective.candidates = self._wrap(tr.objective.candidates, PHASES[0])  # type: ignore[method-assign]
            tr.engine.view = self._wrap(tr.engine.view, PHASES[1])  # type: ignore[method-assign]
            classes.add(type(tr.objective))  # called through its class: wrapped there
            tr.engine.scatter = self._wrap(tr.engine.scatter, PHASES[4])  # type: ignore[method-assign]
            tr.optimizer.step = self._wrap(tr.optimizer.step, PHASES[5])  # type: ignore[method-assign]
        for cls in classes:
            cls.__call__ = self._wrap(cls.__call__, PHASES[2])  # type: ignore[method-assign]
        torch.Tensor.backward = self._wrap(torch.Tensor.backward, PHASES[3])  # type: ignore

    def _wrap(self, fn: Any, phase: str) -> Any:
        def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            out = fn(*a, **kw)
            if self.active is not None and self.active in self.times:
                self.times[self.active][phase].append(time.perf_counter() - t0)
            return out
        return timed

    def lines(self, steps: dict[tuple[str, str], list[float]]) -> list[str]:
        """A Markdown table of the phases' medians (ms) per trainer."""
        keys = list(self.times)
        out = ["| phase | " + " | ".join(f"{spec}, {name}" for spec, name in keys) + " |",
               "|---|" + "---|" * len(keys)]
        for ph in PHASES:
            cells = [f"{statistics.median(self.times[k][ph]) * 1e3:.2f} ms"
                     if self.times[k][ph] else "-" for k in keys]
            out.append(f"| {ph} | " + " | ".join(cells) + " |")
        out.append("| whole step | " + " | ".join(
            f"{statistics.median(steps[k]) * 1e3:.2f} ms" for k in keys) + " |")
        return out


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--graphs", nargs="+", default=["fb15k-237"],
                   help="datasets or synthetic specs; the first is the reference")
    p.add_argument("--root", default=os.environ.get("METASD_DATA_ROOT", "../shared/datasets"))
    p.add_argument("--cache-dir", default=None, help="processed-graph cache (load_dataset)")
    p.add_argument("--modes", nargs="+", default=["teacher", "metasd", "metasd+meta"],
                   choices=list(MODES),
                   help="metasd: the default (no meta step); metasd+meta: with the meta step")
    p.add_argument("--engines", nargs="+", default=["rows"], choices=["rows", "dense"])
    p.add_argument("--pages", nargs="+", default=["huge"], choices=["huge", "small"],
                   help="huge: the default runtime.huge_pages=True (large tables on transparent "
                        "huge pages); small: huge_pages=False; both: the two side by side")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--negatives", type=int, default=1024)
    p.add_argument("--steps", type=int, default=24, help="timed steps per trainer")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--block", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pyg", action="store_true",
                   help="also time what a PyG user would write: ComplEx(sparse=True), its "
                        "loader and loss (1 random negative per triple), torch's Adagrad")
    p.add_argument("--phases", action="store_true",
                   help="also time the phases of every trainer's timed steps (candidates, "
                        "row gathers, objective, backward, sparse gradients, optimiser) by "
                        "wrapping the trainer's methods, and print their medians")
    p.add_argument("--out", default=None, help="Markdown file to write")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    trainers: dict[tuple[str, str], Any] = {}
    load_s: dict[str, float] = {}
    for spec in args.graphs:
        t0 = time.perf_counter()
        graph = load_dataset(spec, root=args.root, cache_dir=args.cache_dir, progress=False)
        load_s[spec] = time.perf_counter() - t0
        for name, cfg in _methods(args).items():
            tr = compose(graph, cfg)
            assert isinstance(tr, Trainer)
            tr.start()
            trainers[(spec, name)] = tr
        if args.pyg:
            trainers[(spec, PYG)] = PygUser(graph, args.dim, args.batch_size)
        print(f"{spec}: {graph.num_entities:,} entities, {graph.train.size(0):,} train; "
              f"loaded in {load_s[spec]:.1f} s; peak RSS {_rss_gb():.1f} GB", flush=True)

    # mask recomputation (once per epoch by default): over the whole table, vectorised
    from metasd_pyg.training import DynamicPruning

    recompute_s: dict[tuple[str, str], float] = {}
    for key, tr in trainers.items():
        pruning = tr.part(DynamicPruning) if isinstance(tr, Trainer) else None
        if pruning is not None:
            t0 = time.perf_counter()
            pruning.recompute(tr, 0, 0)
            recompute_s[key] = time.perf_counter() - t0

    gen = torch.Generator().manual_seed(0)
    times: dict[tuple[str, str], list[float]] = {k: [] for k in trainers}
    phases = PhaseTimer(trainers) if args.phases else None

    def run(key: tuple[str, str], n: int, record: bool) -> None:
        tr = trainers[key]
        if isinstance(tr, PygUser):
            for _ in range(n):
                t0 = time.perf_counter()
                tr.step()
                if record:
                    times[key].append(time.perf_counter() - t0)
            return
        if phases is not None:
            phases.active = key if record else None
        for _ in range(n):
            idx = torch.randint(tr.stream.size(0), (args.batch_size,), generator=gen)
            batch = tr.stream[idx]
            t0 = time.perf_counter()
            tr.train_step(batch)
            if record:
                times[key].append(time.perf_counter() - t0)

    B, C = args.batch_size, args.batch_size + args.negatives
    # the score products are timed in every round too, so that the step / products ratio
    # compares times taken under the same load
    widths = {2 * args.dim} | {2 * int(tr.units.numel()) for tr in trainers.values()
                               if isinstance(tr, Trainer) and tr.units is not None}
    product_times: dict[int, list[float]] = {w: [] for w in widths}
    for key in trainers:
        run(key, args.warmup, False)
    for _ in range(max(1, args.steps // args.block)):
        for key in trainers:
            run(key, args.block, True)
        for w in widths:
            product_times[w].append(_products(B, w, C, repeats=3))
    products_of = {w: statistics.median(t) for w, t in product_times.items()}
    teacher_products = products_of[2 * args.dim]
    ref = args.graphs[0]
    lines = ["# Training step cost as the graph grows (row-wise engine)", "",
             f"ComplEx dim {args.dim}, batch {B}, loss=sampled with {args.negatives} shared "
             f"negatives, Adagrad, {args.steps} timed steps per trainer (interleaved blocks of "
             f"{args.block}), {args.threads} thread(s); score products of the teacher "
             f"([{B}, {2 * args.dim}] x [{2 * args.dim}, ~{C}], forward + backward): "
             f"{teacher_products * 1000:.1f} ms", "",
             "| graph | entities | method | step median (s) | step mean (s) | vs first graph "
             "(mean) | mean vs score products | steps/epoch | epoch (min) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (spec, name), tr in trainers.items():
        med = statistics.median(times[(spec, name)])
        mean = statistics.fmean(times[(spec, name)])
        base = statistics.fmean(times[(ref, name)])
        if isinstance(tr, PygUser):
            lines.append(f"| {spec} | {tr.num_entities:,} | {name} | {med:.4f} | {mean:.4f} | "
                         f"{mean / base:.2f}x | | {tr.steps_per_epoch:,} | "
                         f"{mean * tr.steps_per_epoch / 60:.1f} |")
            continue
        products = teacher_products
        if tr.masks is not None and tr.units is not None:
            products += products_of[2 * int(tr.units.numel())]
        elif tr.masks is not None:
            products *= 2
        lines.append(f"| {spec} | {tr.graph.num_entities:,} | {name} | {med:.4f} | "
                     f"{mean:.4f} | {mean / base:.2f}x | {mean / products:.2f}x | "
                     f"{tr.steps_per_epoch:,} | {mean * tr.steps_per_epoch / 60:.1f} |")
    if phases is not None:
        lines += ["", "Phases of the timed steps (medians; each phase timed by wrapping the "
                  "trainer's method):", "", *phases.lines(times)]
    if recompute_s:
        lines += ["", "Mask recomputation (whole tables, once per epoch): " + "; ".join(
            f"{name} on {spec}: {sec:.2f} s" for (spec, name), sec in recompute_s.items())]
    per_triple = [f"{name} on {spec}: {1e6 * statistics.fmean(times[(spec, name)]) / B:.1f} us"
                  for (spec, name) in trainers]
    lines += ["", "Seconds per training triple (one row of a batch; ours: a query against "
              f"~{C} shared candidates, softmax; PyG's: the triple and one corrupted triple, "
              "binary cross-entropy): " + "; ".join(per_triple) + "."]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    lines += ["", f"Peak RSS of the benchmark process: {_rss_gb():.1f} GB. Machine: "
              f"{cpu_model()}, {os.cpu_count()} cores, "
              f"{torch.backends.cpu.get_cpu_capability()} kernels, torch {torch.__version__}; "
              f"commit `{commit}`.", "", "Command: `python " + " ".join(sys.argv) + "`"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
