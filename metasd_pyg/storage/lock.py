"""One writer per run folder: a lock file beside the folder, naming its holder.

A run (``train``, ``ogb-submit``'s seeds) takes the lock of its folder before it
checks, replaces or resumes it, and holds it until it ends. A second process
pointed at the same folder is refused with the holder's pid, host and start
time, instead of interleaving its writes with the first one's (or deleting the
first one's folder with ``--overwrite``).

The lock file is ``.<folder name>.lock`` in the folder's parent (so it survives
``--overwrite`` and adds nothing to the folder), created atomically
(``O_CREAT | O_EXCL``). A lock whose holder is gone is *stale*: on the same
host, a holder pid that no longer runs is detected and the lock taken over;
from another host (a shared filesystem) liveness cannot be checked, so the
message says which file to remove once the user knows that run has ended.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from metasd_pyg.errors import RunFolderError

__all__ = ["RunLock", "lock_path"]


def lock_path(folder: str | Path) -> Path:
    """The lock file of run folder ``folder`` (beside it, hidden)."""
    folder = Path(folder).absolute()
    return folder.parent / f".{folder.name}.lock"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it runs
        return True
    return True


class RunLock:
    """The lock of one run folder (module docstring); a context manager.

    Args:
        folder: The run folder (it need not exist yet).
        purpose: What the holder does (recorded, shown to a refused process).
    """

    def __init__(self, folder: str | Path, purpose: str = "training") -> None:
        self.folder = Path(folder)
        self.path = lock_path(folder)
        self.purpose = purpose
        self.held = False

    def holder(self) -> dict[str, Any] | None:
        """The current holder's record (``None``: no lock, or an unreadable one)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunFolderError` naming the live holder.

        Raises:
            RunFolderError: Another live process holds it (or a process on another
                host, whose liveness cannot be checked), or the parent folder
                cannot be written.
        """
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "purpose": self.purpose,
                  "folder": str(self.folder.absolute())}
        for _ in range(3):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._clear_if_stale()
                continue
            except OSError as exc:
                raise RunFolderError(f"{self.folder}: cannot write there ({exc.strerror or exc}"
                                     f"; its lock {self.path} could not be created)") from exc
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh)
            self.held = True
            return
        raise RunFolderError(f"{self.folder}: could not take its lock {self.path}")

    def _clear_if_stale(self) -> None:
        """Remove the lock if its holder is a dead process of this host; else refuse."""
        info = self.holder()
        if info is None:  # being written right now, or garbage: look again once
            time.sleep(0.1)
            info = self.holder()
            if info is None:
                raise RunFolderError(
                    f"{self.folder} is locked by {self.path}, which is unreadable; if no "
                    "other run uses this folder, remove that file")
        pid, host = info.get("pid"), info.get("host")
        if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
            self.path.unlink(missing_ok=True)  # stale: its holder died (e.g. kill -9)
            return
        where = "this host" if host == socket.gethostname() else f"host {host}"
        extra = ("" if host == socket.gethostname() else
                 f"; if that run has ended, remove {self.path}")
        raise RunFolderError(
            f"{self.folder} is in use by another run: pid {pid} on {where} "
            f"({info.get('purpose', 'a run')}, since {info.get('started', '?')}); wait for "
            f"it to end or choose another --out{extra}")

    def release(self) -> None:
        """Give the lock back (only if this process holds it)."""
        if self.held:
            info = self.holder()
            if info is not None and info.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
