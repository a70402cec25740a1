"""Benchmark of the data layer.

1. FB15k-237 (and WN18RR) from the archive to tensors in a fresh cache dir, including
   PyG's processing; then the cached reload in a fresh process.
2. The synthetic generator at ogbl-wikikg2 size (2.5M entities, 535 relations, 16.1M
   triples): generation time, statistics time, filter-index time, peak RSS.
3. Learnability of the default ``synthetic`` graph: a 1-N ComplEx (reciprocal relations,
   cross-entropy over all entities, Adagrad) trained a few epochs; filtered test MRR (both
   sides, ties counted optimistically) against a random ranking.

Each measurement runs in its own subprocess so that imports, caches and peak memory do not
leak between them. Usage (from the repository root)::

    python benchmarks/bench_data.py --data-root ../shared/datasets
    python benchmarks/bench_data.py --skip-synthetic          # only the real datasets
    python benchmarks/bench_data.py --entities 100000 --triples 1000000 --skip-real
    python benchmarks/bench_data.py --skip-real --skip-synthetic --complex-epochs 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LOAD = """
import json, resource, sys, time
t0 = time.perf_counter()
from metasd_pyg.data import load_dataset
t1 = time.perf_counter()
g = load_dataset(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3], progress=False, download=False)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "graph": repr(g),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

SYNTH = """
import json, resource, sys, time
import torch
from metasd_pyg.data import generate_synthetic
E, R, N = map(int, sys.argv[1:4])
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out = {"threads": torch.get_num_threads()}
t = time.perf_counter()
g = generate_synthetic(E, R, N, seed=0)
out["generate_s"] = time.perf_counter() - t
out["peak_rss_after_generate_mb"] = rss()
out["graph"] = repr(g)
t = time.perf_counter()
s = g.stats
out["stats_s"] = time.perf_counter() - t
out["peak_rss_after_stats_mb"] = rss()
out["summary"] = s.summary()
t = time.perf_counter()
_ = g.filter_index
out["filter_index_s"] = time.perf_counter() - t
out["peak_rss_after_filter_index_mb"] = rss()
print(json.dumps(out))
"""

LEARN = """
import json, sys, time, torch
import torch.nn.functional as F
from metasd_pyg.data import load_dataset
from metasd_pyg.models.factory import build_model
from metasd_pyg.models.scoring import score_tails
torch.manual_seed(0)
epochs, dim, batch = int(sys.argv[1]), 64, 1000
g = load_dataset("synthetic")
E, R = g.num_entities, g.num_relations
def both_sides(t):  # (h, r, t) and the reciprocal query (t, r + R, h)
    return torch.cat([t, torch.stack([t[:, 2], t[:, 1] + R, t[:, 0]], 1)])
model = build_model("complex", E, R, dim)
opt = torch.optim.Adagrad(model.parameters(), lr=0.1)
q = both_sides(g.train)
t0 = time.perf_counter()
for _ in range(epochs):
    for b in q[torch.randperm(len(q))].split(batch):
        loss = F.cross_entropy(score_tails(model, b[:, 0], b[:, 1]), b[:, 2])
        opt.zero_grad(); loss.backward(); opt.step()
train_s = time.perf_counter() - t0
rr = []
with torch.no_grad():
    for b in both_sides(g.test).split(batch):
        s = score_tails(model, b[:, 0], b[:, 1])
        target = s.gather(1, b[:, 2:3])
        fwd = b[:, 1] < R
        rel = torch.where(fwd, b[:, 1], b[:, 1] - R)
        rows, ents = g.filter_index.tails(b[:, 0], rel)
        keep = fwd[rows]
        s[rows[keep], ents[keep]] = float("-inf")
        rows, ents = g.filter_index.heads(rel, b[:, 0])
        keep = ~fwd[rows]
        s[rows[keep], ents[keep]] = float("-inf")
        rr.append(1.0 / ((s > target).sum(1) + 1).double())
mrr = float(torch.cat(rr).mean())
print(json.dumps({"epochs": epochs, "dim": dim, "train_s": train_s, "test_filtered_mrr": mrr,
                  "random_mrr": sum(1.0 / k for k in range(1, E + 1)) / E}))
"""


def _run(code: str, *args: str) -> dict:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=REPO, check=False)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{proc.stderr}")
    result: dict = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.environ.get(
        "METASD_DATA_ROOT", str(REPO.parent / "shared" / "datasets")))
    parser.add_argument("--entities", type=int, default=2_500_604)
    parser.add_argument("--relations", type=int, default=535)
    parser.add_argument("--triples", type=int, default=16_109_182)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--complex-epochs", type=int, default=5,
                        help="epochs of the learnability check (0 = skip)")
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    args = parser.parse_args()

    results: dict = {"python": platform.python_version(), "machine": platform.machine(),
                     "cpus": os.cpu_count(), "load_average_start": os.getloadavg()}
    print(f"{os.cpu_count()} CPUs, load average at start {os.getloadavg()[0]:.1f}", flush=True)
    if not args.skip_real:
        for name in ("fb15k-237", "wn18rr"):
            with tempfile.TemporaryDirectory() as cache:
                first = _run(LOAD, name, args.data_root, cache)
                reload = _run(LOAD, name, args.data_root, cache)
            results[name] = {"first": first, "cached_reload": reload}
            print(f"{name}: first load {first['load_s']:.2f} s (process "
                  f"{first['process_wall_s']:.2f} s), cached reload {reload['load_s']:.2f} s "
                  f"(process {reload['process_wall_s']:.2f} s) -> {first['graph']}", flush=True)
    if not args.skip_synthetic:
        syn = _run(SYNTH, str(args.entities), str(args.relations), str(args.triples))
        results["synthetic"] = syn
        print(f"synthetic: generate {syn['generate_s']:.1f} s (peak RSS "
              f"{syn['peak_rss_after_generate_mb']:.0f} MB), stats {syn['stats_s']:.1f} s "
              f"(peak RSS {syn['peak_rss_after_stats_mb']:.0f} MB), filter index "
              f"{syn['filter_index_s']:.1f} s (peak RSS "
              f"{syn['peak_rss_after_filter_index_mb']:.0f} MB) -> {syn['graph']}", flush=True)
    if args.complex_epochs > 0:
        learn = _run(LEARN, str(args.complex_epochs))
        results["learnability"] = learn
        print(f"synthetic learnability: ComplEx dim {learn['dim']}, {learn['epochs']} epochs "
              f"({learn['train_s']:.0f} s): filtered test MRR {learn['test_filtered_mrr']:.3f} "
              f"vs random {learn['random_mrr']:.4f}", flush=True)
    results["load_average_end"] = os.getloadavg()
    print(f"load average at end {os.getloadavg()[0]:.1f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
