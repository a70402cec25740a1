"""Benchmark of the ogbl-wikikg2 data path at full size: seconds and peak RSS per step.

Steps, each in its own process (so every peak is its own), run one after the other under
``prlimit --as=<cap>`` and ``/usr/bin/time -v`` (peak = "Maximum resident set size"):

1. ``generate``: ``generate_synthetic`` at the ogbl-wikikg2 size (2,500,604 entities,
   535 relations, 17,137,181 triples split exactly 16,109,182 / 429,456 / 598,543), stored
   with ``save_graph`` in a scratch cache (so the next step reads it instead of generating).
2. ``write``: ``write_ogb_wikikg2(graph, root, num_candidates=500)`` from that cache entry.
3. ``load cold``: ``load_dataset("ogbl-wikikg2", root, cache_dir=<fresh>)`` (reader "auto":
   the chunked reader at this size), which also writes our cache.
4. ``load cached``: the same call again, from the cache.
5. ``verify``: the cached graph against the generated one (triples equal; candidates of the
   right shape, dtype and range, never the true entity), and torch's own zip reader
   (``torch._C.PyTorchFileReader``) opens the zip64 split files and finds ``data.pkl`` where
   zipfile does (a full ``torch.load`` would need ogb's memory, see step 6).
6. ``ogb LinkPropPredDataset`` (unless ``--skip-ogb``): ogb's own loader on the same files
   (``ds[0]`` and ``get_edge_split()``), to record what it needs.

Usage (from the repository root)::

    python benchmarks/bench_data_scale.py --out benchmarks/results/data_scale.md
    python benchmarks/bench_data_scale.py --entities 20000 --triples 150000 --skip-ogb  # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PRELUDE = """
import json, sys, time
from pathlib import Path
args = json.loads(sys.argv[1])
work = Path(args["work"])
"""

GENERATE = PRELUDE + """
import torch
from metasd_pyg.data import KnowledgeGraph, generate_synthetic
from metasd_pyg.data.cache import save_graph
t0 = time.perf_counter()
# The generator moves valid/test triples with entities unseen in train to train: ask for 2%
# more, then move the surplus to train too, so that the three splits have exactly the sizes.
g = generate_synthetic(args["entities"], args["relations"], args["triples"], seed=0,
                       valid_fraction=1.02 * args["valid"] / args["triples"],
                       test_fraction=1.02 * args["test"] / args["triples"])
if len(g.valid) >= args["valid"] and len(g.test) >= args["test"]:
    v, te = args["valid"], args["test"]
    g = KnowledgeGraph(g.name, torch.cat([g.train, g.valid[v:], g.test[te:]]), g.valid[:v],
                       g.test[:te], g.num_entities, g.num_relations,
                       relation_names=g.relation_names, num_duplicates=g.num_duplicates,
                       source=g.source)
t1 = time.perf_counter()
save_graph(g, work / "graph", "generated")
print(json.dumps({"seconds": t1 - t0, "save_s": time.perf_counter() - t1, "graph": repr(g)}))
"""

WRITE = PRELUDE + """
from metasd_pyg.data import write_ogb_wikikg2
from metasd_pyg.data.cache import load_graph
g = load_graph(work / "graph", "generated")
t1 = time.perf_counter()  # the step's seconds: the write alone
out = write_ogb_wikikg2(g, work / "root", num_candidates=args["candidates"], seed=0)
sizes = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
print(json.dumps({"seconds": time.perf_counter() - t1, "files": sizes}))
"""

LOAD = PRELUDE + """
from metasd_pyg.data import load_dataset
t0 = time.perf_counter()
g = load_dataset("ogbl-wikikg2", work / "root", cache_dir=work / "cache", progress=False)
t1 = time.perf_counter()
c = g.candidates["test"]["head_neg"]
print(json.dumps({"seconds": t1 - t0, "graph": repr(g), "candidates": f"{c.dtype} {list(c.shape)}",
                  "triples": str(g.train.dtype)}))
"""

VERIFY = PRELUDE + """
import torch
from metasd_pyg.data import load_dataset
from metasd_pyg.data.cache import load_graph
t0 = time.perf_counter()
ref = load_graph(work / "graph", "generated")
g = load_dataset("ogbl-wikikg2", work / "root", cache_dir=work / "cache", progress=False)
ok = all(torch.equal(g.split(s), ref.split(s)) for s in ("train", "valid", "test"))
ok &= (g.num_entities, g.num_relations) == (ref.num_entities, ref.num_relations)
for s in ("valid", "test"):
    for k, col in (("head_neg", 0), ("tail_neg", 2)):
        c = g.candidates[s][k]
        ok &= c.dtype == torch.int32 and tuple(c.shape) == (len(ref.split(s)), args["candidates"])
        for start in range(0, len(c), 65536):  # in slices: the mapped file is paged in once
            part = c[start:start + 65536]
            ok &= int(part.min()) >= 0 and int(part.max()) < g.num_entities
            ok &= not bool((part == ref.split(s)[start:start + 65536, col:col + 1]).any())
# torch's own zip reader parses the (zip64) containers and finds data.pkl where zipfile does
import struct, zipfile
for s in ("valid", "test"):
    pt = work / "root" / "ogbl_wikikg2" / "split" / "time" / f"{s}.pt"
    offset = torch._C.PyTorchFileReader(str(pt)).get_record_offset("data.pkl")
    with zipfile.ZipFile(pt) as zf, open(pt, "rb") as fh:
        info = zf.getinfo(f"{s}/data.pkl")
        fh.seek(info.header_offset + 26)
        n_name, n_extra = struct.unpack("<HH", fh.read(4))
        ok &= offset == info.header_offset + 30 + n_name + n_extra
print(json.dumps({"seconds": time.perf_counter() - t0, "ok": bool(ok)}))
"""

OGB = PRELUDE + """
import torch
from ogb.linkproppred import LinkPropPredDataset
from metasd_pyg.data.ogb_source import _numpy_allowlist
root = work / "ogbroot"
t0 = time.perf_counter()
with torch.serialization.safe_globals(list(_numpy_allowlist().values())):
    ds = LinkPropPredDataset("ogbl-wikikg2", root=str(root))
    t1 = time.perf_counter()
    import resource
    print(json.dumps({"stage": "raw CSV files read", "seconds": t1 - t0, "peak_rss_mb":
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}),
          file=sys.stderr, flush=True)
    split = ds.get_edge_split()
print(json.dumps({"seconds": time.perf_counter() - t0, "raw_s": t1 - t0,
                  "test_head_neg": list(split["test"]["head_neg"].shape)}))
"""

STEPS = [
    ("generate", GENERATE, "generate_synthetic at full size + save_graph (scratch cache)"),
    ("write", WRITE, "write_ogb_wikikg2 (CSV + split .pt files, 500 + 500 candidates)"),
    ("load cold", LOAD, "load_dataset('ogbl-wikikg2'), fresh cache (chunked reader + cache write)"),
    ("load cached", LOAD, "load_dataset('ogbl-wikikg2') again (cache reload)"),
    ("verify", VERIFY, "cached graph == generated graph; candidates checked; torch's zip "
                       "reader opens valid.pt / test.pt"),
    ("ogb loader", OGB, "ogb's LinkPropPredDataset + get_edge_split on the same files"),
]


def _time_field(text: str, label: str) -> str | None:
    m = re.search(rf"^\s*{re.escape(label)}: (.+)$", text, re.M)
    return m.group(1).strip() if m else None


def run_step(name: str, code: str, args: dict, cap: int) -> dict:
    """Run one step in its own capped process; its peak RSS, wall time and JSON output."""
    cmd = ["prlimit", f"--as={cap}", "/usr/bin/time", "-v", sys.executable, "-c", code,
           json.dumps(args)]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t
    rss_kb = _time_field(proc.stderr, "Maximum resident set size (kbytes)")
    out: dict = {"step": name, "process_s": wall, "returncode": proc.returncode,
                 "peak_rss_mb": int(rss_kb) / 1024 if rss_kb else None}
    out["stages"] = [json.loads(ln) for ln in proc.stderr.splitlines() if ln.startswith('{"stage"')]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        out.update(json.loads(lines[-1]))
    else:
        own = proc.stderr.split("\tCommand being timed")[0]  # before /usr/bin/time's report
        tail = [ln.strip() for ln in own.splitlines() if ln.strip()][-2:]
        out["error"] = "; ".join(tail) or (proc.stderr.splitlines() or [""])[0]
    print(json.dumps(out), file=sys.stderr, flush=True)
    return out


def _ogb_root(work: Path) -> None:
    """A fresh ogb root whose raw/ and split/ link to the written files (processed/ empty)."""
    src, dst = work / "root" / "ogbl_wikikg2", work / "ogbroot" / "ogbl_wikikg2"
    shutil.rmtree(dst.parent, ignore_errors=True)
    (dst / "processed").mkdir(parents=True)
    for name in ("raw", "split", "mapping"):
        os.symlink(src / name, dst / name)
    shutil.copy2(src / "RELEASE_v1.txt", dst / "RELEASE_v1.txt")


def _gb(mb: float | None) -> str:
    """MiB (ru_maxrss / time -v report KiB) as GiB."""
    return "—" if mb is None else f"{mb / 1024:.2f} GiB"


def report(results: list[dict], args: argparse.Namespace, command: str) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=REPO).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, cwd=REPO).stdout.strip()
    import torch

    lines = [
        "# ogbl-wikikg2 data path at full size",
        "",
        "Command (from the repository root, at commit "
        f"`{commit}`{' plus uncommitted changes' if dirty else ''}):",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, torch "
        f"{torch.__version__}; every step in its own process under `prlimit --as={args.cap}` "
        "(address space) and `/usr/bin/time -v` (peak = maximum resident set size); load "
        f"average at the start {os.getloadavg()[0]:.1f} (other jobs were running).",
        "",
        "| step | what | seconds (step) | seconds (process) | peak RSS | result |",
        "|---|---|---:|---:|---:|---|",
    ]
    what = {name: desc for name, _, desc in STEPS}
    for r in results:
        sec = f"{r['seconds']:.1f}" if "seconds" in r else "—"
        if r["returncode"] != 0:
            result = f"**failed** (exit {r['returncode']}): {r.get('error', '')}"
        elif r["step"] == "verify":
            result = "ok" if r.get("ok") else "**mismatch**"
        elif "graph" in r:
            result = r["graph"] + (f"; candidates {r['candidates']}" if "candidates" in r else "")
        elif "files" in r:
            total = sum(r["files"].values())
            result = f"{total / 1e9:.2f} GB on disk"
        else:
            result = "ok"
        for st in r.get("stages", []):
            result += (f"; {st['stage']} after {st['seconds']:.0f} s "
                       f"(peak RSS then {_gb(st['peak_rss_mb'])})")
        lines.append(f"| {r['step']} | {what[r['step']]} | {sec} | {r['process_s']:.1f} | "
                     f"{_gb(r['peak_rss_mb'])} | {result} |")
    files = next((r["files"] for r in results if "files" in r), None)
    if files:
        lines += ["", "Files written:", "", "| file | bytes |", "|---|---:|"]
        lines += [f"| `{k}` | {v:,} |" for k, v in files.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--entities", type=int, default=2_500_604)
    p.add_argument("--relations", type=int, default=535)
    p.add_argument("--triples", type=int, default=17_137_181)
    p.add_argument("--valid", type=int, default=429_456)
    p.add_argument("--test", type=int, default=598_543)
    p.add_argument("--candidates", type=int, default=500)
    p.add_argument("--cap", type=int, default=15_000_000_000, help="prlimit --as in bytes")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--skip-ogb", action="store_true", help="skip ogb's own loader")
    p.add_argument("--steps", nargs="+", default=None, metavar="STEP",
                   help="run only these steps (names as in the table, e.g. 'ogb loader'), "
                        "on the files of an earlier --work --keep run")
    p.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    command = "python benchmarks/bench_data_scale.py " + " ".join(sys.argv[1:])
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_data_scale."))
    work.mkdir(parents=True, exist_ok=True)
    step_args = {"work": str(work), "entities": args.entities, "relations": args.relations,
                 "triples": args.triples, "valid": args.valid, "test": args.test,
                 "candidates": args.candidates}
    results = []
    try:
        for name, code, _ in STEPS:
            if args.steps is not None and name not in args.steps:
                continue
            if name == "ogb loader":
                if args.skip_ogb:
                    continue
                _ogb_root(work)
            r = run_step(name, code, step_args, args.cap)
            results.append(r)
            if r["returncode"] != 0 and name != "ogb loader":
                break
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    text = report(results, args, command)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
