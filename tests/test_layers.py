"""The packages of ``metasd_pyg`` are layers: data flows one way, upward.

From bottom to top (a package may import only packages of lower layers;
packages of one layer do not import each other)::

    errors, system        user-facing errors | facts about the machine
    storage               atomic writes, JSON values, versions, the run-folder layout
    data                  datasets -> KnowledgeGraph
    models                PyG KGE models, scoring
    pruning, evaluation   masks and schedules | filtered ranking, buckets
    training              MetaSD trainer (prunes; evaluates, lazily, while training)
    export, report        compressed student | long-tail HTML report
    runs                  train_run: one run end to end into its run folder
    cli                   the metasd-pyg command

Every ``import`` is checked, at module level or inside a function (and under
``TYPE_CHECKING``) alike. The package root ``metasd_pyg/__init__.py`` is the
public facade: it sits just above ``training`` (it re-exports data to
training), and a subpackage imports from the root only ``__version__``, never
a re-exported name (import it from its own package instead).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "metasd_pyg"

#: Layers from bottom to top.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "system"),
    ("sections", "storage"),
    ("data",),
    ("models",),
    ("pruning", "evaluation"),
    ("training",),
    ("export", "report"),
    ("runs",),
    ("cli",),
)
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}
#: Level of the package root's own imports (the facade over data ... training).
ROOT_LEVEL = LEVEL["training"] + 0.5
#: What a subpackage may import from the package root itself.
ROOT_NAMES = frozenset({"__version__"})


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_package(module: str) -> str | None:
    """``"data"`` for ``metasd_pyg.data.graph``; ``""`` for the root; ``None`` outside."""
    if module == "metasd_pyg":
        return ""
    if module.startswith("metasd_pyg."):
        return module.split(".")[1]
    return None


def imports_of(path: Path, package: Path = PACKAGE) -> list[tuple[int, str, str | None]]:
    """``(line, imported module, imported name or None)`` of every import in ``path``."""
    module = _module_name(path, package)
    is_package = path.name == "__init__.py"
    out: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against the importing module
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                # ``from metasd_pyg import data`` imports the subpackage ``data``.
                if base == "metasd_pyg" and (package / alias.name).is_dir():
                    out.append((node.lineno, sub, None))
                else:
                    out.append((node.lineno, base, alias.name))
    return out


def layer_violations(package: Path = PACKAGE) -> list[str]:
    """Every import of ``package`` that goes against :data:`LAYERS` (empty: none)."""
    bad = []
    for path in sorted(package.rglob("*.py")):
        own = _top_package(_module_name(path, package))
        assert own is not None
        where = path.relative_to(package.parent)
        if own and own not in LEVEL:
            bad.append(f"{where}: package {own!r} has no layer in LAYERS")
            continue
        level = LEVEL[own] if own else ROOT_LEVEL
        for lineno, target, name in imports_of(path, package):
            other = _top_package(target)
            if other is None or other == own:
                continue
            if other == "":
                if own and name not in ROOT_NAMES:
                    bad.append(f"{where}:{lineno}: imports {name or 'metasd_pyg'!r} from the "
                               "package root; import it from its own package")
                continue
            if other not in LEVEL:
                bad.append(f"{where}:{lineno}: imports {target}, which has no layer")
            elif LEVEL[other] >= level:
                bad.append(f"{where}:{lineno}: {own or 'metasd_pyg'} imports {target} "
                           f"(layer {other!r} is not below {own or 'the root'!r})")
    return bad


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert packages | modules == set(LEVEL)


def test_imports_only_go_down_the_layers():
    bad = layer_violations()
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_check_sees_upward_imports(tmp_path):
    pkg = tmp_path / "metasd_pyg"
    for sub in ("storage", "data", "runs"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from metasd_pyg.data import load\n")
    (pkg / "storage" / "folder.py").write_text(
        "def f():\n    from metasd_pyg.runs.pipeline import train_run\n")
    (pkg / "data" / "cache.py").write_text(
        "from . import graph\nfrom ..storage import atomic\nfrom metasd_pyg import Trainer\n")
    (pkg / "runs" / "pipeline.py").write_text(
        "import metasd_pyg.data.graph\nfrom metasd_pyg import __version__, storage\n")
    found = layer_violations(pkg)
    assert len(found) == 2, found
    assert "storage/folder.py:2: storage imports metasd_pyg.runs.pipeline" in found[1]
    assert "data/cache.py:3: imports 'Trainer' from the package root" in found[0]


def test_runs_reexports_only_run_folder():
    import metasd_pyg.runs
    import metasd_pyg.storage

    assert metasd_pyg.runs.__all__ == ["RunFolder"]
    assert metasd_pyg.runs.RunFolder is metasd_pyg.storage.RunFolder
    for name in ("atomic", "folder", "versions"):
        with pytest.raises(ImportError):
            __import__(f"metasd_pyg.runs.{name}")
