"""Locate and read the raw split files of a text dataset (archive or folder).

A :class:`RawSplits` holds the bytes of ``train.txt``, ``valid.txt`` and
``test.txt`` plus a content key (SHA-256) that names the processed cache entry.
Known archives (see :mod:`metasd_pyg.data.checksums`) are verified.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from metasd_pyg.data.archive import ARCHIVE_SUFFIXES, SPLIT_FILES, SafeArchive, is_archive
from metasd_pyg.data.checksums import ARCHIVE_SHA256, FILE_SHA256, sha256_bytes, sha256_file
from metasd_pyg.errors import DataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Located:
    """A dataset found on disk: an archive or a folder holding the split files.

    Attributes:
        path: The archive file or the folder with the three split files.
        key: SHA-256 identifying the content (archive checksum, or a hash of
            the three files' checksums for a folder).
        verified: Whether the content matches a known checksum.
    """

    path: Path
    key: str
    verified: bool

    @property
    def is_archive(self) -> bool:
        """Whether :attr:`path` is an archive."""
        return self.path.is_file()

    def read(self) -> dict[str, bytes]:
        """The bytes of ``train.txt``, ``valid.txt``, ``test.txt`` by split name."""
        if self.is_archive:
            with SafeArchive(self.path) as arc:
                folder = arc.find_split_folder()
                return {
                    f[:-4]: arc.read(f"{folder}/{f}" if folder else f) for f in SPLIT_FILES
                }
        return {f[:-4]: (self.path / f).read_bytes() for f in SPLIT_FILES}

    def describe(self, member: str) -> str:
        """How to name split file ``member`` in messages (``archive:train.txt``)."""
        return f"{self.path}:{member}" if self.is_archive else str(self.path / member)


def _strip_suffix(name: str) -> str:
    low = name.lower()
    for suf in ARCHIVE_SUFFIXES:
        if low.endswith(suf):
            return name[: -len(suf)]
    return name


def _canon(name: str) -> str:
    return _strip_suffix(name).lower().replace("_", "-")


def split_folder(folder: Path) -> Path | None:
    """``folder`` or ``folder/raw`` if it holds all three split files, else ``None``."""
    for cand in (folder, folder / "raw"):
        if all((cand / f).is_file() for f in SPLIT_FILES):
            return cand
    return None


def split_key(sums: Sequence[str]) -> str:
    """Content key of a dataset from the SHA-256 of its split files (in ``SPLIT_FILES`` order)."""
    return hashlib.sha256(",".join(sums).encode()).hexdigest()


def locate_archive(path: Path, dataset: str | None = None) -> Located:
    """Check an archive's checksum and wrap it as :class:`Located`.

    A file whose name is a known archive name (e.g. ``FB15k-237.tar.gz``) must
    have the known checksum; ``DataError`` otherwise.

    Args:
        path: Archive file.
        dataset: Known dataset name it should hold, if any (for messages).
    """
    digest = sha256_file(path)
    want = ARCHIVE_SHA256.get(path.name)
    if want is not None and digest != want:
        raise DataError(
            f"{path}: SHA-256 {digest[:16]}... does not match the known {path.name} "
            f"({want[:16]}...): corrupt or different copy; replace it, or load it by path "
            "to skip the check"
        )
    verified = want is not None or digest in ARCHIVE_SHA256.values()
    return Located(path, digest, verified)


def locate_folder(path: Path, dataset: str | None = None) -> Located:
    """Wrap a folder holding the split files (directly or in ``raw/``).

    Args:
        path: Folder.
        dataset: Known dataset name, to compare with its known file checksums.
    """
    folder = split_folder(path)
    if folder is None:
        missing = [f for f in SPLIT_FILES if not (path / f).is_file()]
        raise DataError(
            f"{path}: missing {', '.join(missing)} (a dataset folder holds train.txt, "
            "valid.txt and test.txt)"
        )
    sums = [sha256_file(folder / f) for f in SPLIT_FILES]
    key = split_key(sums)
    known = FILE_SHA256.get(dataset or "", {})
    verified = bool(known) and [known[f] for f in SPLIT_FILES] == sums
    return Located(folder, key, verified)


def find_in_root(root: Path, aliases: tuple[str, ...], dataset: str) -> Located | None:
    """Find a dataset in the data root by name (case-insensitive, ``_`` = ``-``).

    Archives are preferred over folders; a folder counts if it holds the split
    files directly or in ``raw/`` (PyG's layout).

    Args:
        root: Data root.
        aliases: Accepted base names (e.g. ``("fb15k-237",)``).
        dataset: Dataset name (for checksum lookup).
    """
    if not root.is_dir():
        return None
    wanted = {a.lower().replace("_", "-") for a in aliases}
    entries = sorted(root.iterdir())
    for entry in entries:
        if entry.is_file() and is_archive(entry.name) and _canon(entry.name) in wanted:
            return locate_archive(entry, dataset)
    for entry in entries:
        if entry.is_dir() and _canon(entry.name) in wanted and split_folder(entry) is not None:
            return locate_folder(entry, dataset)
    return None


def verify_known_files(dataset: str, raw: dict[str, bytes]) -> bool:
    """Whether downloaded/read split bytes match the known per-file checksums.

    Args:
        dataset: Known dataset name.
        raw: Bytes by split name.
    """
    known = FILE_SHA256.get(dataset)
    if not known:
        return False
    return all(sha256_bytes(raw[f[:-4]]) == known[f] for f in SPLIT_FILES)
