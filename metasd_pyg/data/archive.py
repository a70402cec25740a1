"""Safe reading and extraction of ``.tar(.gz|.bz2|.xz)`` / ``.tgz`` / ``.zip`` archives.

Every member is checked before anything is read or written: absolute paths,
``..`` components, symbolic links, hard links and device files are refused
with a :class:`~metasd_pyg.errors.DataError`, so nothing is ever written
outside the target folder. Extraction goes to a temporary sibling folder that
is renamed into place only when complete.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from metasd_pyg.errors import DataError

#: File name endings recognised as archives.
ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")

#: The three split files of a text dataset.
SPLIT_FILES: tuple[str, str, str] = ("train.txt", "valid.txt", "test.txt")


def is_archive(path: str | os.PathLike[str]) -> bool:
    """Whether ``path``'s name ends like an archive (see :data:`ARCHIVE_SUFFIXES`)."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


@dataclass(frozen=True)
class _Member:
    name: str  # normalised relative POSIX path
    is_dir: bool
    handle: tarfile.TarInfo | zipfile.ZipInfo


def _refused(archive: Path, raw_name: str, why: str) -> DataError:
    return DataError(f"{archive}: member {raw_name!r} {why}; archive refused, nothing extracted")


def _normalise(archive: Path, raw_name: str) -> str | None:
    """Relative POSIX path of a member, or ``DataError`` if it would escape."""
    name = raw_name.replace("\\", "/")
    if "\x00" in name:
        raise DataError(f"{archive}: member {raw_name!r} has a NUL byte in its name; refused")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _refused(archive, raw_name, "has an absolute path that escapes the target folder")
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise _refused(archive, raw_name, "escapes the target folder ('..')")
    return "/".join(parts) if parts else None


def _tar_members(archive: Path, tf: tarfile.TarFile) -> list[_Member]:
    out = []
    for info in tf.getmembers():
        name = _normalise(archive, info.name)
        if info.issym() or info.islnk():
            kind = "symbolic link" if info.issym() else "hard link"
            raise _refused(archive, info.name, f"is a {kind} (to {info.linkname!r})")
        if not (info.isfile() or info.isdir()):
            raise _refused(archive, info.name, "is not a regular file or folder")
        if name is not None:
            out.append(_Member(name, info.isdir(), info))
    return out


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> list[_Member]:
    out = []
    for info in zf.infolist():
        name = _normalise(archive, info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _refused(archive, info.filename, "is a symbolic link")
        if name is not None:
            out.append(_Member(name, info.is_dir(), info))
    return out


class SafeArchive:
    """A validated archive: all members checked on opening.

    Args:
        path: Archive file (``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``,
            ``.tar`` or ``.zip``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._tar: tarfile.TarFile | None = None
        self._zip: zipfile.ZipFile | None = None
        try:
            if self.path.name.lower().endswith(".zip"):
                self._zip = zipfile.ZipFile(self.path)
                self.members = _zip_members(self.path, self._zip)
            else:
                self._tar = tarfile.open(self.path, "r:*")
                self.members = _tar_members(self.path, self._tar)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
            self.close()
            raise DataError(f"{self.path}: not a readable archive ({exc})") from None
        except DataError:
            self.close()
            raise

    def close(self) -> None:
        """Close the underlying archive."""
        if self._tar is not None:
            self._tar.close()
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> SafeArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def files(self) -> list[str]:
        """Relative paths of all regular files."""
        return [m.name for m in self.members if not m.is_dir]

    def read(self, name: str) -> bytes:
        """Content of the regular file ``name`` (as listed by :meth:`files`)."""
        for m in self.members:
            if m.name == name and not m.is_dir:
                try:
                    with self._open(m) as f:
                        return f.read()
                except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
                    raise DataError(f"{self.path}: cannot read member {name!r} ({exc})") from None
        raise KeyError(name)

    def find_split_folder(self, names: tuple[str, ...] = SPLIT_FILES) -> str:
        """The (shallowest) folder inside the archive holding all of ``names``.

        Returns ``""`` for the archive's top level. ``DataError`` if none does.

        Args:
            names: File names that must sit side by side.
        """
        folders: dict[str, set[str]] = {}
        for f in self.files():
            p = PurePosixPath(f)
            if p.parts[0] == "__MACOSX" or p.name.startswith("._"):
                continue
            folders.setdefault(str(p.parent) if str(p.parent) != "." else "", set()).add(p.name)
        complete = [d for d, files in folders.items() if set(names) <= files]
        if not complete:
            best = max(folders.items(), key=lambda kv: len(set(names) & kv[1]), default=("", set()))
            missing = [n for n in names if n not in best[1]]
            raise DataError(
                f"{self.path}: no folder in the archive holds {', '.join(names)} "
                f"(missing: {', '.join(missing)})"
            )
        return min(complete, key=lambda d: (d.count("/") + (d != ""), d))

    def extract_all(self, target: str | os.PathLike[str]) -> Path:
        """Extract every regular file under ``target`` (created; must not exist).

        Files are written to a temporary sibling folder first, which is then
        renamed to ``target``; an existing ``target`` is left untouched.

        Args:
            target: Destination folder.
        """
        target = Path(target)
        if target.exists():
            raise FileExistsError(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        with _temporary_dir(target.parent, target.name) as tmp:
            for m in self.members:
                dest = (tmp / m.name).resolve()
                if not dest.is_relative_to(tmp.resolve()):  # defence in depth
                    raise DataError(f"{self.path}: member {m.name!r} escapes the target folder")
                if m.is_dir:
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                self._copy_member(m, dest)
            os.replace(tmp, target)
        return target

    def _open(self, m: _Member) -> IO[bytes]:
        src: IO[bytes] | None
        if isinstance(m.handle, zipfile.ZipInfo):
            assert self._zip is not None
            src = self._zip.open(m.handle)
        else:
            assert self._tar is not None
            src = self._tar.extractfile(m.handle)
        assert src is not None
        return src

    def _copy_member(self, m: _Member, dest: Path) -> None:
        try:
            with self._open(m) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 22)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
            raise DataError(f"{self.path}: cannot read member {m.name!r} ({exc})") from None


@contextmanager
def _temporary_dir(parent: Path, stem: str) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix=f".{stem}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

