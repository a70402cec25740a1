"""Real benchmarks from the shared offline copies: exact counts, ids, names, caching."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from metasd_pyg.data import SPLITS, load_dataset
from metasd_pyg.errors import DataError

EXPECTED = {
    # entities, relations, train, valid, test, unseen valid, unseen test
    "fb15k-237": (14541, 237, 272115, 17535, 20466, 9, 28),
    "wn18rr": (40943, 11, 86835, 3034, 3134, 210, 210),
    "umls": (135, 46, 5216, 652, 661, 0, 0),
    "kinship": (104, 25, 8544, 1068, 1074, 0, 0),
    "nations": (14, 55, 1592, 199, 201, 0, 0),
}


def _counts(g):
    return (g.num_entities, g.num_relations, len(g.train), len(g.valid), len(g.test),
            g.stats.unseen["valid"], g.stats.unseen["test"])


def _same(a, b):
    return all(torch.equal(a.split(s), b.split(s)) for s in SPLITS)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_known_dataset_counts(name, data_root, cache_dir):
    g = load_dataset(name, data_root, cache_dir=cache_dir, progress=False, download=False)
    assert _counts(g) == EXPECTED[name]
    assert "sha256 verified" in g.source
    assert len(g.entity_names) == g.num_entities and len(g.relation_names) == g.num_relations
    assert len(set(g.entity_names)) == g.num_entities
    again = load_dataset(name, data_root, cache_dir=cache_dir, progress=False, download=False)
    assert _same(g, again) and again.entity_names == g.entity_names


def _raw_lines(data_root: Path, archive: str, member: str) -> list[list[str]]:
    with tarfile.open(data_root / archive) as tf:
        f = tf.extractfile(member)
        assert f is not None
        return [ln.split("\t") for ln in f.read().decode().splitlines()]


@pytest.mark.parametrize(("name", "archive"), [("fb15k-237", "FB15k-237.tar.gz"),
                                               ("wn18rr", "WN18RR.tar.gz")])
def test_names_match_raw_files(name, archive, data_root, cache_dir):
    """Every triple, mapped back to names, is a line of the raw split file."""
    g = load_dataset(name, data_root, cache_dir=cache_dir, progress=False)
    for split in ("valid", "test"):
        lines = {tuple(x) for x in _raw_lines(data_root, archive, f"{split}.txt")}
        t = g.split(split)
        got = {(g.entity_names[h], g.relation_names[r], g.entity_names[o])
               for h, r, o in t.tolist()}
        assert got == lines


def test_pyg_ids_equal_text_path_ids(data_root, cache_dir):
    """FB15k-237 via PyG and via the generic archive path give identical ids."""
    a = load_dataset("fb15k-237", data_root, cache_dir=cache_dir, progress=False)
    b = load_dataset(str(data_root / "FB15k-237.tar.gz"), cache_dir=cache_dir)
    assert _same(a, b)
    assert a.entity_names == b.entity_names and a.relation_names == b.relation_names


def test_small_datasets_through_folder_zip_and_crlf(data_root, cache_dir, tmp_path):
    """UMLS as a folder, as a zip, and with CRLF + trailing spaces: same graph."""
    ref = load_dataset(str(data_root / "umls.tar.gz"), cache_dir=cache_dir)
    assert _counts(ref)[:5] == EXPECTED["umls"][:5]
    folder = tmp_path / "umls_folder"
    folder.mkdir()
    with tarfile.open(data_root / "umls.tar.gz") as tf:
        for f in ("train.txt", "valid.txt", "test.txt"):
            member = tf.extractfile(f)
            assert member is not None
            data = member.read()
            (folder / f).write_bytes(data)
    g = load_dataset(str(folder), cache_dir=cache_dir)
    assert _same(ref, g) and g.entity_names == ref.entity_names
    zpath = tmp_path / "umls_copy.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in ("train.txt", "valid.txt", "test.txt"):
            zf.write(folder / f, f"nested/umls/{f}")
    z = load_dataset(str(zpath), cache_dir=cache_dir)
    assert _same(ref, z) and z.name == "umls_copy"
    crlf = tmp_path / "umls_crlf"
    crlf.mkdir()
    for f in ("train.txt", "valid.txt", "test.txt"):
        text = (folder / f).read_text()
        crlf.joinpath(f).write_bytes(
            text.replace("\n", " \t\r\n").encode() + b"\r\n\r\n"
        )
    c = load_dataset(str(crlf), cache_dir=cache_dir)
    assert _same(ref, c) and c.entity_names == ref.entity_names


def test_folder_in_data_root_and_pyg_raw_layout(data_root, cache_dir, tmp_path):
    """A data root holding an extracted folder (PyG raw/ layout) instead of the archive."""
    root = tmp_path / "root"
    raw = root / "Nations" / "raw"
    raw.mkdir(parents=True)
    with tarfile.open(data_root / "nations.tar.gz") as tf:
        tf.extractall(raw, filter="data")
    g = load_dataset("nations", root, cache_dir=cache_dir)
    assert _counts(g) == EXPECTED["nations"]
    assert "sha256 verified" in g.source  # known per-file checksums


def test_data_root_is_never_written(data_root, cache_dir, tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    shutil.copy(data_root / "kinship.tar.gz", root)
    before = sorted(p.name for p in root.rglob("*"))
    load_dataset("kinship", root, cache_dir=tmp_path / "cache2")
    assert sorted(p.name for p in root.rglob("*")) == before


def test_env_var_data_root(data_root, cache_dir, monkeypatch):
    monkeypatch.setenv("METASD_DATA_ROOT", str(data_root))
    monkeypatch.setenv("METASD_CACHE_DIR", str(cache_dir))
    g = load_dataset("nations")
    assert g.num_entities == 14


def test_download_fallback_verifies_checksums(data_root, tmp_path, monkeypatch):
    """Missing from the data root: PyG's download (simulated offline) is used and verified."""
    import torch_geometric.data

    def fake_download(url, folder, log=True):
        name = url.rsplit("/", 1)[1]
        with tarfile.open(data_root / "WN18RR.tar.gz") as tf:
            member = tf.extractfile(name)
            assert member is not None
            (Path(folder) / name).write_bytes(member.read())
        return str(Path(folder) / name)

    monkeypatch.setattr(torch_geometric.data, "download_url", fake_download)
    g = load_dataset("wn18rr", tmp_path / "empty", cache_dir=tmp_path / "c", progress=False)
    assert _counts(g) == EXPECTED["wn18rr"] and "downloaded" in g.source

    def corrupt_download(url, folder, log=True):
        path = Path(folder) / url.rsplit("/", 1)[1]
        path.write_bytes(b"a\tb\tc\n")
        return str(path)

    monkeypatch.setattr(torch_geometric.data, "download_url", corrupt_download)
    with pytest.raises(DataError, match="do not match the known checksums"):
        load_dataset("fb15k-237", tmp_path / "empty", cache_dir=tmp_path / "c2")


def test_no_network_error_names_what_was_looked_for(tmp_path, monkeypatch):
    import urllib.error

    import torch_geometric.data

    def offline(url, folder, log=True):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch_geometric.data, "download_url", offline)
    with pytest.raises(DataError) as exc:
        load_dataset("wn18rr", tmp_path / "empty", cache_dir=tmp_path / "c")
    msg = str(exc.value)
    assert "\n" not in msg and "WN18RR.tar.gz" in msg and "download of wn18rr" in msg
    assert "METASD_DATA_ROOT" in msg


def test_crlf_copy_through_pyg_gives_the_same_graph(data_root, cache_dir, tmp_path):
    """A CRLF copy with trailing blanks, as a folder in the data root, through PyG."""
    ref = load_dataset("wn18rr", data_root, cache_dir=cache_dir, progress=False)
    folder = tmp_path / "root" / "wn18rr"
    folder.mkdir(parents=True)
    with tarfile.open(data_root / "WN18RR.tar.gz") as tf:
        for f in ("train.txt", "valid.txt", "test.txt"):
            member = tf.extractfile(f)
            assert member is not None
            text = member.read().decode()
            (folder / f).write_bytes(text.replace("\n", " \r\n").encode())
    g = load_dataset("wn18rr", tmp_path / "root", cache_dir=tmp_path / "c", progress=False)
    assert "verified" not in g.source
    assert g.entity_names == ref.entity_names and g.relation_names == ref.relation_names
    E, R = g.num_entities, g.num_relations

    def key(t):
        return torch.sort((t[:, 0] * R + t[:, 1]) * E + t[:, 2]).values

    for s in SPLITS:
        assert torch.equal(key(g.split(s)), key(ref.split(s)))
