"""Every bad input gives a one-line DataError/ConfigError naming the file, line or value."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from metasd_pyg.data import DATASET_NAMES, load_dataset
from metasd_pyg.errors import ConfigError, DataError

GOOD = {
    "train.txt": b"a\tr\tb\nb\tr\tc\nc\ts\ta\n",
    "valid.txt": b"a\ts\tc\n",
    "test.txt": b"b\ts\tc\n",
}


def _folder(tmp_path: Path, **override: bytes | None) -> Path:
    folder = tmp_path / "kg"
    folder.mkdir(exist_ok=True)
    files = dict(GOOD)
    files.update({k.replace("_", "."): v for k, v in override.items()})
    for name, data in files.items():
        if data is not None:
            (folder / name).write_bytes(data)
    return folder


def _load_error(*args, error: type[Exception] = DataError, **kwargs) -> str:
    """The one-line message of the ``error`` that ``load_dataset(*args, **kwargs)`` raises."""
    with pytest.raises(error) as exc:
        load_dataset(*args, **kwargs)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_good_folder_loads(tmp_path):
    g = load_dataset(str(_folder(tmp_path)), cache_dir=tmp_path / "c")
    assert (g.num_entities, g.num_relations, len(g.train)) == (3, 2, 3)
    assert g.entity_names == ["a", "b", "c"] and g.relation_names == ["r", "s"]


def test_wrong_number_of_columns_names_file_and_line(tmp_path):
    folder = _folder(tmp_path, train_txt=b"a\tr\tb\nb\tr\nc\ts\ta\n")
    msg = _load_error(str(folder), cache_dir=tmp_path / "c")
    assert f"{folder / 'train.txt'}:2:" in msg and "found 2" in msg


def test_space_separated_line_is_refused(tmp_path):
    folder = _folder(tmp_path, valid_txt=b"a s c\n")
    with pytest.raises(DataError, match=r"valid\.txt:1: expected 3 tab-separated"):
        load_dataset(str(folder), cache_dir=tmp_path / "c")


def test_empty_column_is_refused(tmp_path):
    folder = _folder(tmp_path, test_txt=b"b\ts\tc\n\ts\tc\n")
    with pytest.raises(DataError, match=r"test\.txt:2: .*empty column"):
        load_dataset(str(folder), cache_dir=tmp_path / "c")


def test_empty_split_file(tmp_path):
    folder = _folder(tmp_path, valid_txt=b"\r\n  \n")
    msg = _load_error(str(folder), cache_dir=tmp_path / "c")
    assert f"{folder / 'valid.txt'}: no triples" in msg


def test_missing_split_file(tmp_path):
    folder = _folder(tmp_path, test_txt=None)
    msg = _load_error(str(folder), cache_dir=tmp_path / "c")
    assert "missing test.txt" in msg and str(folder) in msg


def test_not_utf8_names_line(tmp_path):
    folder = _folder(tmp_path, train_txt=b"a\tr\tb\nb\tr\tc\nc\ts\t\xe9t\xe9\n")
    msg = _load_error(str(folder), cache_dir=tmp_path / "c")
    assert f"{folder / 'train.txt'}:3:" in msg and "not UTF-8" in msg


def test_crlf_trailing_whitespace_and_duplicates(tmp_path):
    folder = _folder(
        tmp_path,
        train_txt=b"a\tr\tb  \r\nb\tr\tc\t\r\n\r\nc\ts\ta\r\na\tr\tb\r\n",
        valid_txt=b"a\ts\tc\na\ts\tc\na\ts\tc\n",
    )
    g = load_dataset(str(folder), cache_dir=tmp_path / "c")
    assert g.entity_names == ["a", "b", "c"]
    assert len(g.train) == 3 and len(g.valid) == 1
    assert g.num_duplicates == {"train": 1, "valid": 2, "test": 0}
    assert g.stats.duplicates == {"train": 1, "valid": 2, "test": 0}
    assert torch.equal(g.train, torch.tensor([[0, 0, 1], [1, 0, 2], [2, 1, 0]]))


def test_unknown_dataset_name_lists_known_ones(tmp_path):
    msg = _load_error("fb15k-238", cache_dir=tmp_path, error=ConfigError)
    assert "'fb15k-238'" in msg and all(n in msg for n in DATASET_NAMES)


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(str(tmp_path / "nope.tar.gz"), cache_dir=tmp_path)


def test_missing_known_dataset_says_where_and_how(tmp_path):
    msg = _load_error("fb15k-237", tmp_path / "empty", cache_dir=tmp_path / "c", download=False)
    assert "FB15k-237.tar.gz" in msg and str(tmp_path / "empty") in msg
    assert "METASD_DATA_ROOT" in msg and "--data-root" in msg


# ------------------------------------------------------------------ archives
def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def _good_members() -> list[tuple[tarfile.TarInfo, bytes | None]]:
    return [(tarfile.TarInfo(n), d) for n, d in GOOD.items()]


def _evil(kind: str) -> tuple[tarfile.TarInfo, bytes | None]:
    if kind == "dotdot":
        return tarfile.TarInfo("../escaped.txt"), b"x"
    if kind == "absolute":
        return tarfile.TarInfo("/tmp/escaped-absolute.txt"), b"x"
    info = tarfile.TarInfo("link.txt")
    info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
    info.linkname = "../../outside.txt" if kind == "symlink" else "/etc/passwd"
    return info, None


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink"])
def test_tar_member_escaping_is_refused(tmp_path, kind):
    box = tmp_path / "box"
    box.mkdir()
    archive = _tar(box / "evil.tar.gz", [*_good_members(), _evil(kind)])
    msg = _load_error(str(archive), cache_dir=box / "cache")
    assert str(archive) in msg and "refused" in msg
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "outside.txt").exists()
    assert not Path("/tmp/escaped-absolute.txt").exists()
    assert not (box / "cache").exists() or not any((box / "cache").rglob("*.txt"))


def test_zip_member_escaping_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n, d in GOOD.items():
            zf.writestr(n, d)
        zf.writestr("../../escaped.txt", b"x")
    with pytest.raises(DataError, match=r"evil\.zip: member '\.\./\.\./escaped\.txt' escapes"):
        load_dataset(str(archive), cache_dir=tmp_path / "c")


def test_zip_symlink_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n, d in GOOD.items():
            zf.writestr(n, d)
        info = zipfile.ZipInfo("link.txt")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, b"/etc/passwd")
    with pytest.raises(DataError, match="symbolic link"):
        load_dataset(str(archive), cache_dir=tmp_path / "c")


def test_safe_extract_writes_nothing_outside(tmp_path):
    from metasd_pyg.data.archive import SafeArchive

    archive = _tar(tmp_path / "a.tar.gz", [*_good_members(), _evil("dotdot")])
    with pytest.raises(DataError):
        with SafeArchive(archive) as arc:
            arc.extract_all(tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escaped.txt").exists()
    ok = _tar(tmp_path / "b.tar.gz", _good_members())
    with SafeArchive(ok) as arc:
        arc.extract_all(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(GOOD)


def test_archive_without_split_files(tmp_path):
    archive = _tar(tmp_path / "partial.tar.gz", _good_members()[:2])
    with pytest.raises(DataError, match=r"partial\.tar\.gz: .*missing: test\.txt"):
        load_dataset(str(archive), cache_dir=tmp_path / "c")


def test_corrupt_archive(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08not really gzip")
    with pytest.raises(DataError, match=r"broken\.tar\.gz: not a readable archive"):
        load_dataset(str(archive), cache_dir=tmp_path / "c")


def test_checksum_mismatch_of_known_archive(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    fake = _tar(root / "FB15k-237.tar.gz", _good_members())
    before = fake.read_bytes()
    msg = _load_error("fb15k-237", root, cache_dir=tmp_path / "c", download=False)
    assert str(fake) in msg and "SHA-256" in msg and "does not match" in msg
    assert fake.read_bytes() == before


def test_error_in_archive_member_names_archive_and_line(tmp_path):
    members = _good_members()
    members[1] = (tarfile.TarInfo("valid.txt"), b"a\ts\tc\nonly-one-column\n")
    archive = _tar(tmp_path / "x.tar.gz", members)
    with pytest.raises(DataError, match=rf"{archive}:valid\.txt:2: expected 3"):
        load_dataset(str(archive), cache_dir=tmp_path / "c")


def test_unusable_cache_entry_is_rebuilt(tmp_path):
    folder = _folder(tmp_path)
    cache = tmp_path / "c"
    g = load_dataset(str(folder), cache_dir=cache)
    for f in (cache / "processed").glob("*.safetensors"):
        f.write_bytes(b"garbage")
    again = load_dataset(str(folder), cache_dir=cache)
    assert torch.equal(g.train, again.train)
