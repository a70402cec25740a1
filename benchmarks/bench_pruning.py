"""Time and peak extra memory of every pruning strategy on large embedding tables.

Usage (from the repository root)::

    python benchmarks/bench_pruning.py                         # FB15k-237 size
    python benchmarks/bench_pruning.py --entities 2500604 --relations 535 --dim 200  # wikikg2

Builds a randomly initialised PyG model (reciprocal relations), a synthetic
power-law degree vector, and times ``Pruner.compute`` at 90% sparsity per
strategy. "peak extra" is the growth of the process's peak resident memory
(VmHWM, reset before each strategy through /proc/self/clear_refs) over the
resident memory before the call; it includes the returned bool masks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from metasd_pyg.models import build_model
from metasd_pyg.pruning import STRATEGIES, Pruner, mask_density


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="complex")
    parser.add_argument("--entities", type=int, default=14541)
    parser.add_argument("--relations", type=int, default=237)
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.model, args.entities, args.relations, args.dim)
    model.requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    # power-law-ish train degrees
    degree = (torch.rand(args.entities, generator=gen) ** -1.5).long().clamp(max=100_000)
    params = sum(p.numel() for p in model.parameters())
    rows = []
    for strategy in args.strategies.split(","):
        pruner = Pruner(strategy, args.sparsity)
        before = _status("VmRSS")
        has_peak = _reset_peak()
        t0 = time.perf_counter()
        masks = pruner.compute(model, degree=degree)
        seconds = time.perf_counter() - t0
        peak = _status("VmHWM") - before if has_peak else float("nan")
        rows.append(
            {
                "strategy": strategy,
                "seconds": round(seconds, 2),
                "peak_extra_mb": round(peak / 2**20, 1),
                "mask_mb": round(sum(m.numel() for m in masks.values()) / 2**20, 1),
                "density": round(mask_density(masks), 6),
            }
        )
        del masks
        print(json.dumps(rows[-1]), file=sys.stderr)
    result = {
        "command": " ".join(["python", "benchmarks/bench_pruning.py", *(argv or sys.argv[1:])]),
        "model": args.model,
        "entities": args.entities,
        "relations": args.relations,
        "dim": args.dim,
        "parameters": params,
        "threads": torch.get_num_threads(),
        "results": rows,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
