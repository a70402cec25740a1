import json
from pathlib import Path

import pytest

from metasd_pyg.cli import main
from tests.paths import need_archive

#: Tiny but real training settings (a few seconds per run on UMLS).
TINY = ["--epochs", "2", "--dim", "16", "--batch-size", "4000", "--eval-every", "1",
        "--valid-max-queries", "100", "--no-progress"]


def need_data(name: str = "umls") -> Path:
    return need_archive(f"{name}.tar.gz")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Call main() in-process; return (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="session")
def umls_run(tmp_path_factory):
    """One MetaSD run on UMLS through `metasd-pyg train --json` (shared by the CLI tests)."""
    root = need_data("umls")
    out = tmp_path_factory.mktemp("cli") / "umls-run"
    import io
    from contextlib import redirect_stderr, redirect_stdout

    buf, err = io.StringIO(), io.StringIO()
    with redirect_stdout(buf), redirect_stderr(err):
        code = main(["train", "--dataset", "umls", "--data-root", str(root), "--out", str(out),
                     "--no-report", "--json", *TINY])
    assert code == 0, err.getvalue()
    return out, json.loads(buf.getvalue())
