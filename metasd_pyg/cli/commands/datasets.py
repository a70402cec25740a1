"""``metasd-pyg datasets``: list known datasets, show one's statistics, verify a data root."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from metasd_pyg.cli.output import text_table
from metasd_pyg.errors import DataError, MetaSDError

EPILOG = """\
examples:
  metasd-pyg datasets list
  metasd-pyg datasets info umls --data-root ../shared/datasets
  metasd-pyg datasets info synthetic:entities=20000,triples=200000 --json
  metasd-pyg datasets verify ../shared/datasets      # checksums + a test load of each

The data root (--data-root, else $METASD_DATA_ROOT) holds archives or folders
such as FB15k-237.tar.gz, WN18RR.tar.gz, umls.tar.gz; it is only read.
`verify` exits with status 1 if any file fails its checksum or does not load.
"""

#: One-line description of every known dataset.
DESCRIPTIONS: dict[str, str] = {
    "synthetic": "built-in long-tailed generator (default of `train`); "
                 "synthetic:entities=..,triples=..,seed=..",
    "fb15k-237": "Freebase subset without inverse leakage (Toutanova & Chen 2015), via PyG",
    "wn18rr": "WordNet subset without inverse leakage (Dettmers et al. 2018), via PyG",
    "ogbl-wikikg2": "Wikidata, 2.5M entities, given candidates (OGB protocol), via ogb",
    "umls": "Unified Medical Language System, small (Kok & Domingos 2007)",
    "kinship": "Alyawarra kinship, small (Kok & Domingos 2007)",
    "nations": "Nations, tiny (Kok & Domingos 2007)",
}


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``datasets`` subcommand and its ``list`` / ``info`` / ``verify`` actions.

    Args:
        sub: The subparsers action of the main parser.
        common: Parent parser with the common output flags.
    """
    from metasd_pyg.cli.parser import Parser

    p = sub.add_parser("datasets", help="list, inspect or verify datasets",
                       description="Known datasets, their statistics, and offline data roots.",
                       epilog=EPILOG)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True,
                               parser_class=Parser)
    lst = actions.add_parser("list", parents=[common], help="known datasets", epilog=EPILOG)
    lst.add_argument("--data-root", metavar="DIR", help="data root to look in")
    lst.set_defaults(handler=run_list, render=render_list)
    info = actions.add_parser("info", parents=[common], help="statistics of one dataset",
                              epilog=EPILOG)
    info.add_argument("name", metavar="NAME", help="dataset name, synthetic spec or path")
    info.add_argument("--data-root", metavar="DIR", help="data root")
    info.set_defaults(handler=run_info, render=render_info)
    ver = actions.add_parser("verify", parents=[common], help="verify an offline data root",
                             epilog=EPILOG)
    ver.add_argument("root", metavar="ROOT", help="data root folder")
    ver.add_argument("--no-load", action="store_true",
                     help="only check checksums, do not test-load the datasets")
    ver.set_defaults(handler=run_verify, render=render_verify)


def _root(path: str | None) -> Path:
    from metasd_pyg.data.paths import resolve_data_root

    return resolve_data_root(path)


def run_list(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``datasets list``."""
    from metasd_pyg.data import DATASET_NAMES
    from metasd_pyg.data.loader import _FILE_STEMS as FILE_STEMS
    from metasd_pyg.data.sources import find_in_root

    root = _root(args.data_root)
    rows = []
    for name in DATASET_NAMES:
        if name == "synthetic":
            where: str | None = "built-in"
        elif name in FILE_STEMS:
            found = find_in_root(root, FILE_STEMS[name], name)
            where = str(found.path) if found is not None else None
        else:
            where = None
        rows.append({"name": name, "description": DESCRIPTIONS.get(name, ""),
                     "available": where})
    return {"data_root": str(root), "datasets": rows}


def render_list(result: dict[str, Any]) -> str:
    """Human-readable ``datasets list``."""
    rows = [[d["name"], d["available"] or "-", d["description"]] for d in result["datasets"]]
    return (f"data root: {result['data_root']}\n"
            + text_table(rows, ["name", "available", "description"]))


def _summary(graph: Any) -> dict[str, Any]:
    return {
        "name": graph.name, "source": graph.source, "entities": graph.num_entities,
        "relations": graph.num_relations, "train": len(graph.train),
        "valid": len(graph.valid), "test": len(graph.test),
        "has_candidates": graph.has_candidates,
        "duplicates_dropped": dict(graph.num_duplicates),
        "statistics": graph.stats.summary(),
    }


def run_info(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``datasets info``."""
    from metasd_pyg.data import load_dataset

    graph = load_dataset(args.name, args.data_root, progress=not args.quiet)
    return _summary(graph)


def render_info(result: dict[str, Any]) -> str:
    """Human-readable ``datasets info``."""
    st = result["statistics"]
    cats = st["relation_categories"]
    lines = [
        f"{result['name']}  ({result['source'] or 'built-in'})",
        f"entities {result['entities']:,}  relations {result['relations']:,}  "
        f"train {result['train']:,}  valid {result['valid']:,}  test {result['test']:,}",
        f"entities in train {st['entities_in_train']:,}; degree mean {st['degree_mean']:.1f}, "
        f"median {st['degree_median']:.0f}, max {st['degree_max']:,}",
        "relation categories " + ", ".join(f"{k}: {v}" for k, v in cats.items()),
        "valid/test triples with an entity unseen in train: "
        f"{st['unseen_entity_triples'].get('valid', 0)} / "
        f"{st['unseen_entity_triples'].get('test', 0)}",
    ]
    return "\n".join(lines)


def _sha_file(root: Path) -> dict[str, str]:
    sums = root / "SHA256SUMS"
    if not sums.is_file():
        return {}
    out = {}
    for lineno, line in enumerate(sums.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{sums}:{lineno}: expected '<sha256>  <file>'")
        out[parts[1].lstrip("*")] = parts[0].lower()
    return out


def run_verify(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``datasets verify``: checksums of known/listed files, then a test load."""
    from metasd_pyg.data import load_dataset
    from metasd_pyg.data.checksums import ARCHIVE_SHA256, sha256_file
    from metasd_pyg.data.loader import _FILE_STEMS as FILE_STEMS
    from metasd_pyg.data.sources import find_in_root

    root = Path(args.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data root {root} does not exist or is not a folder")
    listed = _sha_file(root)
    checks: list[dict[str, Any]] = []
    names = sorted(set(listed) | {p.name for p in root.iterdir() if p.name in ARCHIVE_SHA256})
    for name in names:
        path = root / name
        expected = listed.get(name) or ARCHIVE_SHA256.get(name)
        if not path.is_file():
            checks.append({"file": name, "ok": False, "error": "listed in SHA256SUMS but "
                           "missing"})
            continue
        actual = sha256_file(path)
        ok = actual == expected
        checks.append({"file": name, "ok": ok, "sha256": actual,
                       **({} if ok else {"error": f"checksum mismatch (expected {expected})"})})
    loads: list[dict[str, Any]] = []
    if not args.no_load:
        for dataset, stems in FILE_STEMS.items():
            if find_in_root(root, stems, dataset) is None:
                continue
            try:
                graph = load_dataset(dataset, root, progress=not args.quiet, download=False)
            except MetaSDError as exc:
                loads.append({"dataset": dataset, "ok": False, "error": str(exc)})
                continue
            loads.append({"dataset": dataset, "ok": True, "entities": graph.num_entities,
                          "relations": graph.num_relations, "train": len(graph.train),
                          "valid": len(graph.valid), "test": len(graph.test)})
    ok = all(c["ok"] for c in checks) and all(x["ok"] for x in loads) and bool(checks or loads)
    return {"root": str(root), "ok": ok, "files": checks, "datasets": loads,
            **({} if checks or loads else {"error": "no known dataset files found"})}


def render_verify(result: dict[str, Any]) -> str:
    """Human-readable ``datasets verify``."""
    lines = [f"data root {result['root']}: {'OK' if result['ok'] else 'FAILED'}"]
    for c in result["files"]:
        lines.append(f"  {'ok  ' if c['ok'] else 'FAIL'}  {c['file']}"
                     + ("" if c["ok"] else f": {c['error']}"))
    for d in result["datasets"]:
        if d["ok"]:
            lines.append(f"  ok    {d['dataset']} loads: {d['entities']:,} entities, "
                         f"{d['relations']:,} relations, {d['train']:,} / {d['valid']:,} / "
                         f"{d['test']:,} triples")
        else:
            lines.append(f"  FAIL  {d['dataset']}: {d['error']}")
    if "error" in result:
        lines.append(f"  {result['error']}")
    return "\n".join(lines)
