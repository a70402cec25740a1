"""Size of the exported MetaSD student at 90% sparsity, per mask strategy, and round trip.

Usage::

    METASD_DATA_ROOT=../shared/datasets python benchmarks/bench_export.py \
        [--dataset fb15k-237] [--dims 100,200] [--out benchmarks/results/export.md]

For each dimension and mask strategy of :class:`metasd_pyg.pruning.Pruner`
(global and row_topk: unstructured; aligned and degree: nested prefixes), the
ComplEx model of the dataset (reciprocal relations, the dataset's entity and
relation names) is pruned to 90% sparsity and exported with
:func:`metasd_pyg.export.export_student` in fp32 and fp16. The table gives the
file size, its ratio to the dense fp32 teacher (4 bytes x parameters), the
encodings chosen, the time to export and load, and the largest absolute score
difference between the loaded fp32 student and the masked student over 500
tail queries against all entities. Weights are the model's initialisation
scaled like a trained model (the size depends on the masks, not on the values).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from metasd_pyg.data import load_dataset
from metasd_pyg.export import export_student, load_student
from metasd_pyg.models import build_model, score_tails
from metasd_pyg.pruning import Pruner, apply_masks


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and optionally write) a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fb15k-237")
    parser.add_argument("--dims", default="100,200")
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--out", type=Path, help="write the Markdown table here")
    args = parser.parse_args(argv)
    graph = load_dataset(args.dataset, progress=False)
    degree = graph.stats.degree
    lines = [
        f"Exported student at {args.sparsity:.0%} sparsity, {graph.name} "
        f"({graph.num_entities:,} entities, {graph.num_relations} relations x 2 reciprocal), "
        "ComplEx.",
        "",
        "| dim | strategy | encodings | fp32 bytes | fp32 ratio | fp16 bytes | fp16 ratio | "
        "fp32 export s | load s | max abs score diff (fp32) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    h = torch.randint(0, graph.num_entities, (500,), generator=torch.Generator().manual_seed(0))
    r = torch.randint(0, 2 * graph.num_relations, (500,),
                      generator=torch.Generator().manual_seed(1))
    with tempfile.TemporaryDirectory() as tmp:
        for dim in (int(d) for d in args.dims.split(",")):
            torch.manual_seed(0)
            model = build_model("complex", graph.num_entities, graph.num_relations, dim)
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(0.3)
            params = {n: p.detach() for n, p in model.named_parameters()}
            for strategy in ("global", "row_topk", "aligned", "degree"):
                masks = Pruner(strategy, args.sparsity).compute(model, degree=degree)
                row = [str(dim), strategy]
                sizes, seconds = {}, {}
                for dtype in ("fp32", "fp16"):
                    t0 = time.perf_counter()
                    info = export_student(Path(tmp) / f"{dtype}.safetensors", model, masks,
                                          dtype=dtype, entity_names=graph.entity_names,
                                          relation_names=graph.relation_names)
                    seconds[dtype] = time.perf_counter() - t0
                    sizes[dtype] = info
                t0 = time.perf_counter()
                student = load_student(Path(tmp) / "fp32.safetensors")
                t_load = time.perf_counter() - t0
                ref = score_tails(model, h, r, weights=apply_masks(params, masks))
                with torch.no_grad():
                    got = score_tails(student.model, h, r)
                diff = float((got - ref).abs().max())
                enc = ", ".join(sorted(set(sizes["fp32"].encodings.values())))
                row += [enc, f"{sizes['fp32'].bytes:,}", f"{sizes['fp32'].ratio:.4f}",
                        f"{sizes['fp16'].bytes:,}", f"{sizes['fp16'].ratio:.4f}",
                        f"{seconds['fp32']:.2f}", f"{t_load:.2f}", f"{diff:.1e}"]
                lines.append("| " + " | ".join(row) + " |")
                print(lines[-1], file=sys.stderr, flush=True)
            lines.append(f"| {dim} | dense teacher | - | {info.dense_teacher_bytes:,} | 1.0000 | "
                         "| | | | |")
    lines += ["", f"Command: `METASD_DATA_ROOT=../shared/datasets python "
              f"benchmarks/bench_export.py --dataset {args.dataset} --dims {args.dims}`", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
