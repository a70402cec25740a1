"""The OGB protocol on a whole ogbl-wikikg2-sized split: time, memory, and ogb's own evaluator.

Loads the graph (``load_dataset("ogbl-wikikg2", --root)``), builds ComplEx
(random, or the final weights of a run folder with ``--run``), evaluates the
split with :func:`metasd_pyg.evaluation.evaluate` (OGB protocol, both sides,
long-tail buckets by target degree) and reports its time and the process's
peak RSS. Then it hands ``ogb.linkproppred.Evaluator("ogbl-wikikg2")`` the
scores our evaluator ranks (``score_candidates``, in chunks) and requires its
per-query reciprocal ranks to equal ours exactly; and, as an independent
cross-check, scores computed by PyG's own forward ``model(h, r, t)`` (the same
numbers up to float rounding, so a near-tie may move by half a rank).
``--check`` limits both checks to the first N triples of each side, ``--pyg-check``
the cross-check alone.

Example (the recorded run)::

    python benchmarks/bench_ogb_eval.py --root /work/scratch/wk2/root \\
        --cache-dir /work/scratch/wk2/cache --out benchmarks/results/ogb_eval.md
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from metasd_pyg.data import load_dataset
from metasd_pyg.evaluation import evaluate
from metasd_pyg.evaluation.candidates import score_candidates
from metasd_pyg.models import build_model


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _pyg_scores(model: torch.nn.Module, h: torch.Tensor, r: torch.Tensor, pos: torch.Tensor,
                neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores computed independently of our evaluator: PyG's own ``model(h, r, t)``."""
    c = neg.size(1)
    y_neg = model(h.repeat_interleave(c), r.repeat_interleave(c), neg.reshape(-1).long())
    return model(h, r, pos), y_neg.view(-1, c)


def _evaluator_scores(model: torch.nn.Module, h: torch.Tensor, r: torch.Tensor, pos: torch.Tensor,
                      neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The scores our evaluator ranks: ``score_candidates`` on ``[answer, candidates]``."""
    s = score_candidates(model, h, r, torch.cat([pos.unsqueeze(1), neg.long()], dim=1))
    return s[:, 0], s[:, 1:]


Scorer = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                  tuple[torch.Tensor, torch.Tensor]]


def _ogb_mrr(model: torch.nn.Module, h: torch.Tensor, r: torch.Tensor, pos: torch.Tensor,
             neg: torch.Tensor, chunk: int, scorer: Scorer) -> torch.Tensor:
    """ogb's per-query reciprocal ranks of ``(h, r)`` (answer ``pos``, candidates ``neg``)
    on the scores ``scorer`` gives."""
    from ogb.linkproppred import Evaluator

    ev = Evaluator("ogbl-wikikg2")
    out = []
    with torch.no_grad():
        for s in range(0, h.numel(), chunk):
            sl = slice(s, s + chunk)
            y_pos, y_neg = scorer(model, h[sl], r[sl], pos[sl], neg[sl])
            out.append(ev.eval({"y_pred_pos": y_pos, "y_pred_neg": y_neg})["mrr_list"])
    return torch.cat(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=os.environ.get("METASD_DATA_ROOT", "../shared/datasets"))
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--split", default="test", choices=["valid", "test"])
    p.add_argument("--run", default=None, help="run folder whose final weights to evaluate")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--chunk", type=int, default=1000, help="rows per ogb-evaluator chunk")
    p.add_argument("--check", type=int, default=None,
                   help="compare with ogb on the first N triples of each side (default all)")
    p.add_argument("--pyg-check", type=int, default=None, metavar="N",
                   help="triples per side of the PyG-forward cross-check (default: --check's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    graph = load_dataset("ogbl-wikikg2", args.root, cache_dir=args.cache_dir, progress=False)
    load_s, load_rss = time.perf_counter() - t0, _rss_gb()
    E, R = graph.num_entities, graph.num_relations
    torch.manual_seed(0)
    model = build_model("complex", E, R, args.dim, reciprocal=True)
    source = "random ComplEx (seed 0)"
    if args.run:
        from metasd_pyg.storage.folder import RunFolder

        params, _, _, _ = RunFolder.open(args.run).read_model()
        model.load_state_dict(params)  # strict: every table of the run, nothing else
        source = f"the final weights of {args.run}"
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        res = evaluate(model, graph, args.split, reciprocal=True, bins="log", progress=True)
    eval_s, eval_rss = time.perf_counter() - t0, _rss_gb()
    queries = int(res.summary["num_queries"])

    split = graph.split(args.split)
    n = split.size(0) if args.check is None else min(args.check, split.size(0))
    ranks = res.ranks
    worst: dict[str, float] = {}
    check_s: dict[str, float] = {}
    sizes = {"evaluator": n,
             "pyg": n if args.pyg_check is None else min(args.pyg_check, split.size(0))}
    for name, scorer in (("evaluator", _evaluator_scores), ("pyg", _pyg_scores)):
        worst[name] = 0.0
        t0 = time.perf_counter()
        n = sizes[name]
        for side in ("tail", "head"):
            h, r, t = split[:n, 0], split[:n, 1], split[:n, 2]
            if side == "tail":
                ref = _ogb_mrr(model, h, r, t, graph.tail_neg(args.split)[:n], args.chunk,
                               scorer)
            else:  # reciprocal head query (t, r + R, ?) against the head candidates
                ref = _ogb_mrr(model, t, r + R, h, graph.head_neg(args.split)[:n], args.chunk,
                               scorer)
            ours = ranks[(ranks["side"] == side) & (ranks["triple"] < n)].sort_values("triple")
            # ogb reports 1 / rank in float32; ranks are half-integers, exact in float32
            mine = 1.0 / torch.tensor(ours["rank"].to_numpy(), dtype=torch.float32)
            worst[name] = max(worst[name], float((mine - ref.double()).abs().max()))
        check_s[name] = time.perf_counter() - t0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    lines = [
        "# The OGB protocol at ogbl-wikikg2 size", "",
        f"Graph: {graph.num_entities:,} entities, {split.size(0):,} {args.split} triples, "
        f"{graph.tail_neg(args.split).size(1)} + {graph.head_neg(args.split).size(1)} "
        f"candidates; model: {source}, dim {args.dim}; {args.threads} thread(s).", "",
        "| step | seconds | peak RSS (GB, process so far) |", "|---|---|---|",
        f"| load (cache) | {load_s:.1f} | {load_rss:.2f} |",
        f"| evaluate, both sides, buckets ({queries:,} queries) | {eval_s:.1f} | "
        f"{eval_rss:.2f} |",
        f"| ogb's Evaluator on the scores our evaluator ranks, {sizes['evaluator']:,} triples "
        "x 2 sides | "
        f"{check_s['evaluator']:.1f} | {_rss_gb():.2f} |",
        f"| ogb's Evaluator on PyG forward scores, {sizes['pyg']:,} triples x 2 sides | "
        f"{check_s['pyg']:.1f} | {_rss_gb():.2f} |", "",
        f"- **{queries / eval_s:,.0f} queries/s**; MRR {res.summary['mrr']:.6f}.",
        f"- Largest per-query difference of the reciprocal rank against ogb's, on the same "
        f"scores: {worst['evaluator']:.2e} "
        f"({'equal, bit for bit' if worst['evaluator'] == 0 else 'DIFFERENT'}).",
        f"- The same against ogb on scores computed independently (PyG's forward: the same "
        f"numbers up to float rounding, so near-ties may move by a half rank): "
        f"{worst['pyg']:.2e}.", "",
        f"Commit `{commit}`. Command: `python " + " ".join(sys.argv) + "`"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    if worst["evaluator"] != 0:
        raise SystemExit("bench_ogb_eval: ranks differ from ogb's evaluator on the same scores")


if __name__ == "__main__":
    main()
