"""``metasd-pyg evaluate``: filtered metrics and the long-tail bucket table of a run or file."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import torch

from metasd_pyg.cli.output import check_output, text_table
from metasd_pyg.errors import ConfigError, RunFolderError

EPILOG = """\
examples:
  metasd-pyg evaluate runs/quickstart                       # test split, teacher and student
  metasd-pyg evaluate runs/umls --split valid --model student --bucket-by relation
  metasd-pyg evaluate runs/umls --bins quantile:4 --tie pessimistic --csv buckets.csv
  metasd-pyg evaluate runs/umls/checkpoints --split valid   # last checkpoint of a run
  metasd-pyg evaluate student.safetensors --dataset umls --data-root ../shared/datasets --json

TARGET is a finished run folder, a run's checkpoints/ folder (its last checkpoint),
or an exported student file (its dataset is the one recorded at export unless
--dataset is given). Ranking is filtered
(all known true triples of train, valid and test removed) unless --raw.
"""


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` subcommand.

    Args:
        sub: The subparsers action of the main parser.
        common: Parent parser with the common output flags.
    """
    from metasd_pyg.evaluation import BUCKET_BY, SIDE_CHOICES, TIE_POLICIES

    p = sub.add_parser("evaluate", parents=[common], help="metrics and long-tail buckets",
                       description="Evaluate a run, checkpoint or exported student on a split: "
                       "filtered MRR, MR, Hits@k and the long-tail bucket table.",
                       epilog=EPILOG)
    p.add_argument("target", metavar="TARGET", help="run folder, checkpoints folder or "
                   "student .safetensors")
    p.add_argument("--split", default="test", choices=("valid", "test"),
                   help="split (default: test)")
    p.add_argument("--model", default="all", choices=("all", "teacher", "student"),
                   help="which model of a run: the dense model, the masked student or all "
                   "(default: all)")
    p.add_argument("--bucket-by", default="target", choices=BUCKET_BY,
                   help="what the long-tail buckets are over (default: target)")
    p.add_argument("--bins", default="log",
                   help="log, log:B, quantile, quantile:Q, or comma-separated lower edges "
                   "(default: log)")
    p.add_argument("--tie", default="realistic", choices=TIE_POLICIES,
                   help="tie policy (default: realistic)")
    p.add_argument("--raw", action="store_true", help="raw instead of filtered ranking")
    p.add_argument("--sides", default="both", choices=SIDE_CHOICES,
                   help="query sides (default: both)")
    p.add_argument("--ks", default="1,3,10", help="Hits@k cut-offs (default: 1,3,10)")
    p.add_argument("--max-queries", type=int, metavar="N",
                   help="evaluate a fixed seeded subset of N triples")
    p.add_argument("--dataset", help="dataset (default: the one of the run or student file)")
    p.add_argument("--data-root", metavar="DIR", help="data root (default: the run's, else "
                   "$METASD_DATA_ROOT)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default: auto)")
    p.add_argument("--csv", metavar="FILE", help="write the bucket table as CSV")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")
    p.set_defaults(handler=run_evaluate, render=render_evaluate)


def _run_config(path: Path) -> dict[str, Any]:
    from metasd_pyg.storage.folder import RunFolder

    return RunFolder.open(path).read_config()


def _models(args: argparse.Namespace) -> tuple[list[tuple[str, Any, Any]], dict[str, Any]]:
    """``[(role, model, weights)]`` of the target and the run config (or ``{}``)."""
    from metasd_pyg.models.factory import model_from_metadata
    from metasd_pyg.pruning import apply_masks
    from metasd_pyg.training.checkpoint import has_checkpoint
    from metasd_pyg.training.modes import roles_of

    target = Path(args.target)
    if target.is_file():
        from metasd_pyg.export import load_student

        student = load_student(target)
        # The artifact names its dataset (export records it); --dataset overrides.
        return [("student", student.model, None)], {"dataset": student.metadata.get("dataset")}
    if has_checkpoint(target):
        from metasd_pyg.training.checkpoint import TrainingState

        cfg = _run_config(target.parent)
        state = TrainingState.read(target)
        params, masks = state.model, state.masks
        ent = params["node_emb.weight"]
        # run folders hold the pipeline's models: reciprocal, default margin and norm
        model = model_from_metadata({
            "model": cfg["model"], "num_entities": ent.size(0), "dim": ent.size(1),
            "num_relations": params["rel_emb.weight"].size(0) // 2, "reciprocal": True})
        model.load_state_dict(params, strict=True)
        mode = cfg.get("mode", "metasd")
        cfg = {**cfg, "checkpoint_epoch": state.epoch}
    elif target.is_dir():
        from metasd_pyg.export import model_from_run
        from metasd_pyg.storage.folder import RunFolder

        run = RunFolder.open(target)
        cfg = run.read_config()
        model, masks, _ = model_from_run(run)
        mode = cfg.get("mode", "metasd")
    else:
        raise RunFolderError(f"{target} does not exist")
    model.eval()
    # the run's main dense and masked models (training.modes.ROLES)
    roles = roles_of(mode)
    dense_role = next((r.name for r in roles if not r.masked), None)
    sparse_role = next((r.name for r in roles if r.masked), "student")
    out: list[tuple[str, Any, Any]] = []
    if dense_role and args.model in ("all", "teacher"):
        out.append((dense_role, model, None))
    if masks and args.model in ("all", "student"):
        weights = apply_masks({n: p.detach() for n, p in model.named_parameters()}, masks)
        out.append((sparse_role, model, weights))
    if not out:
        raise ConfigError(f"{target} has no {args.model} model (mode {mode})")
    return out, cfg


def run_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the ``evaluate`` subcommand."""
    from metasd_pyg.data import load_dataset
    from metasd_pyg.evaluation import evaluate
    from metasd_pyg.runs.config import parse_bins
    from metasd_pyg.training.runtime import resolve_device

    try:
        ks = tuple(int(k) for k in args.ks.split(",") if k.strip())
    except ValueError:
        raise ConfigError(f"--ks must be comma-separated integers, got {args.ks!r}") from None
    if args.max_queries is not None and args.max_queries < 1:
        raise ConfigError(f"--max-queries must be >= 1, got {args.max_queries}")
    csv_path = check_output(args.csv, args.overwrite, (".csv",)) if args.csv else None
    models, cfg = _models(args)
    dataset = args.dataset or cfg.get("dataset")
    if not dataset:
        raise ConfigError(f"{args.target} does not name its dataset: give --dataset NAME")
    graph = load_dataset(dataset, args.data_root or cfg.get("data_root"),
                         progress=not args.quiet)
    device = resolve_device(args.device)
    bins = parse_bins(args.bins)
    results: dict[str, Any] = {}
    frames = []
    for role, model, weights in models:
        model = model.to(device)
        if weights is not None:
            weights = {k: v.to(device) for k, v in weights.items()}
        with torch.no_grad():
            res = evaluate(model, graph, args.split, weights=weights, reciprocal=True,
                           filtered=not args.raw, tie=args.tie, ks=ks,
                           bucket_by=args.bucket_by, bins=bins, sides=args.sides,
                           max_queries=args.max_queries, label=role,
                           progress=not args.quiet)
        results[role] = {"summary": res.summary,
                         "buckets": json.loads(res.buckets.to_json(orient="records"))}
        frames.append(res.buckets)
    if csv_path is not None:
        import pandas as pd

        from metasd_pyg.storage.atomic import atomic_write_text

        buf = io.StringIO()
        pd.concat(frames, ignore_index=True).to_csv(buf, index=False, float_format="%.6g")
        atomic_write_text(csv_path, buf.getvalue())
    return {
        "target": args.target, "dataset": graph.name, "split": args.split,
        "filtered": not args.raw, "tie": args.tie, "bucket_by": args.bucket_by,
        "bins": args.bins, "models": results, "csv": str(csv_path) if csv_path else None,
    }


def render_evaluate(result: dict[str, Any]) -> str:
    """Human-readable metrics and bucket tables of an ``evaluate`` result."""
    models = result["models"]
    ks = [k for k in next(iter(models.values()))["summary"] if k.startswith("hits@")]
    rows = [[role, m["summary"]["mrr"], m["summary"]["mr"],
             *(m["summary"][k] for k in ks), m["summary"]["num_queries"]]
            for role, m in models.items()]
    kind = "filtered" if result["filtered"] else "raw"
    lines = [f"{result['dataset']} {result['split']}, {kind}, tie {result['tie']}",
             text_table(rows, ["model", "MRR", "MR", *ks, "queries"]), "",
             f"buckets by {result['bucket_by']} ({result['bins']}), both sides:"]
    header = ["bucket", "queries"]
    table: dict[str, list[Any]] = {}
    for role, m in models.items():
        header += [f"{role} MRR", f"{role} H@10" if "hits@10" in ks else f"{role} {ks[-1]}"]
        side = "both" if any(b["side"] == "both" for b in m["buckets"]) else \
            m["buckets"][0]["side"]
        for b in m["buckets"]:
            if b["side"] != side:
                continue
            row = table.setdefault(b["bucket"], [b["bucket"], b["num_queries"]])
            row += [b["mrr"], b.get("hits@10", b.get(ks[-1]))]
    lines.append(text_table(list(table.values()), header))
    if result.get("csv"):
        lines.append(f"\nbucket table written to {result['csv']}")
    return "\n".join(lines)
