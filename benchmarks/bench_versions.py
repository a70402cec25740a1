"""One training step of two versions of the library, side by side, in alternating rounds.

Each (version, configuration) runs in its own process whose ``sys.path`` starts at
the version's source tree (a ``git worktree`` of another commit, or this checkout),
builds the trainer through :func:`metasd_pyg.training.compose` on the dataset,
takes ``--warmup`` steps and times ``--steps`` ones (the median is kept). The
versions alternate within every round, and the rounds repeat, so that load from
anything else on the machine hits both alike. Printed: the median step of each
version per configuration and round, and the ratio old / new per round.

Example (the recorded comparison)::

    git worktree add /tmp/old 835d8eb
    python benchmarks/bench_versions.py --old /tmp/old --new . --rounds 3 \\
        --out benchmarks/results/versions.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

#: Runs in the child process: build the trainer from the tree first on sys.path, time steps.
CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import torch
from metasd_pyg.data import load_dataset
from metasd_pyg.training import Built, MetaSDConfig, compose
from metasd_pyg.training.distributed import World
import metasd_pyg
assert metasd_pyg.__file__.startswith(sys.argv[1]), metasd_pyg.__file__
a = json.loads(sys.argv[2])
cfg = MetaSDConfig.flat(mode=a["mode"], loss=a["loss"], dim=a["dim"], batch_size=a["batch"],
                        num_negatives=a["negatives"], epochs=1, progress=False, device="cpu",
                        threads=a["threads"], seed=0)
graph = load_dataset(a["dataset"], a["data_root"], progress=False)
tr = compose(graph, cfg, Built(world=World.single()))
tr.start()
torch.set_num_threads(a["threads"])
perm = torch.randperm(tr.stream.size(0), generator=torch.Generator().manual_seed(1))
b = a["batch"]
def step(i):
    j = (i * b) % max(1, tr.stream.size(0) - b)
    tr.train_step(tr.stream[perm[j:j + b]])
for i in range(a["warmup"]):
    step(i)
times = []
for i in range(a["warmup"], a["warmup"] + a["steps"]):
    t = time.perf_counter()
    step(i)
    times.append(time.perf_counter() - t)
print(json.dumps({"median": statistics.median(times)}))
"""


def _run(tree: str, conf: dict[str, object]) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, str(Path(tree).resolve()),
                          json.dumps(conf)], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["median"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", required=True, help="source tree of the reference version")
    p.add_argument("--new", default=".", help="source tree of the version measured")
    p.add_argument("--dataset", default="fb15k-237")
    p.add_argument("--data-root", default=os.environ.get("METASD_DATA_ROOT"))
    p.add_argument("--configs", nargs="+",
                   default=["teacher:sampled:1", "metasd:sampled:1", "teacher:sampled:2",
                            "metasd:sampled:2", "teacher:1-n:1"],
                   help="mode:loss:threads")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--negatives", type=int, default=1024)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    rows: dict[str, list[tuple[float, float]]] = {c: [] for c in args.configs}
    for r in range(args.rounds):
        for c in args.configs:
            mode, loss, threads = c.split(":")
            conf = dict(mode=mode, loss=loss, threads=int(threads), dim=args.dim,
                        batch=args.batch_size, negatives=args.negatives,
                        steps=args.steps if loss == "sampled" else max(5, args.steps // 4),
                        warmup=args.warmup, dataset=args.dataset, data_root=args.data_root)
            old, new = _run(args.old, conf), _run(args.new, conf)
            rows[c].append((old, new))
            print(f"round {r + 1} {c}: old {old * 1000:.1f} ms, new {new * 1000:.1f} ms",
                  file=sys.stderr, flush=True)

    def commit(tree: str) -> str:
        return subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()

    lines = [f"# One training step, two versions side by side ({args.dataset})", "",
             f"Old `{commit(args.old)}`, new `{commit(args.new)}`; ComplEx dim {args.dim}, "
             f"batch {args.batch_size}, {args.negatives} shared negatives for the sampled "
             f"loss; median of {args.steps} steps (a quarter for 1-N) after {args.warmup}, "
             f"{args.rounds} alternating rounds.", "",
             "| mode : loss : threads | old step (per round) | new step (per round) "
             "| old / new (per round) |", "|---|---|---|---|"]
    for c, pairs in rows.items():
        olds = ", ".join(f"{o * 1000:.1f}" for o, _ in pairs)
        news = ", ".join(f"{n * 1000:.1f}" for _, n in pairs)
        ratios = [o / n for o, n in pairs]
        lines.append(f"| {c} | {olds} ms | {news} ms | "
                     f"{', '.join(f'{x:.2f}x' for x in ratios)} "
                     f"(median {statistics.median(ratios):.2f}x) |")
    lines += ["", "Command: `python " + " ".join(["benchmarks/bench_versions.py",
                                                 *sys.argv[1:]]) + "`", ""]
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
