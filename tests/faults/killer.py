"""Run ``metasd-pyg`` and SIGKILL itself at a chosen moment (a test harness, not library code).

Usage: ``python -m tests.faults.killer MOMENT N -- <metasd-pyg arguments>``, where MOMENT is

* ``write``: inside the N-th atomic file write (any ``os.replace`` of the process), after
  the temporary file is written and synced, before it is renamed into place (a
  checkpoint's tensors or its JSON commit point, a log, results.json...);
* ``evaluate``: at the start of the N-th evaluation;
* ``step``: before the N-th optimisation step;
* ``none``: never (the uninterrupted reference run).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    moment, n = sys.argv[1], int(sys.argv[2])
    argv = sys.argv[sys.argv.index("--") + 1:]
    count = {"n": 0}

    def due() -> bool:
        count["n"] += 1
        return count["n"] == n

    if moment == "write":
        real_replace = os.replace

        def replace(src: Any, dst: Any, **kw: Any) -> None:  # every rename-into-place
            if due():
                _kill()
            real_replace(src, dst, **kw)

        os.replace = replace  # type: ignore[assignment]
    elif moment == "evaluate":
        import metasd_pyg.training.selection as selection

        real_evaluate = selection.Selection.evaluate

        def evaluate(self: Any, *a: Any, **k: Any) -> Any:
            if due():
                _kill()
            return real_evaluate(self, *a, **k)

        selection.Selection.evaluate = evaluate  # type: ignore[method-assign]
    elif moment == "step":
        from metasd_pyg.training.trainer import Trainer

        real_step = Trainer.train_step

        def train_step(self: Any, batch: Any) -> Any:
            if due():
                _kill()
            return real_step(self, batch)

        Trainer.train_step = train_step  # type: ignore[method-assign]
    from metasd_pyg.cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
