"""ogbl-wikikg2 in chunks: split files, the chunked reader against ogb's, the cache, bad input.

Everything runs on small graphs with tiny chunk sizes (so every chunk boundary case of the
full-size path is crossed); the full size is measured by benchmarks/bench_data_scale.py.
"""

from __future__ import annotations

import datetime
import gzip
import json
import pickle
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from metasd_pyg.data import (
    SPLITS,
    KnowledgeGraph,
    generate_synthetic,
    ogb_source,
    ogb_split,
    ogb_writer,
    write_ogb_wikikg2,
)
from metasd_pyg.data import cache as cache_mod
from metasd_pyg.data.ogb_source import _numpy_allowlist, load_ogbl_wikikg2
from metasd_pyg.data.ogb_split import ArraySource, read_split_file, write_split_file
from metasd_pyg.errors import DataError

C = 40  # candidates per side


@pytest.fixture(scope="module")
def small() -> KnowledgeGraph:
    return generate_synthetic(300, 7, 3000, seed=5)


@pytest.fixture
def tiny_chunks(monkeypatch):
    """Chunks of 1001 bytes / ~90 CSV rows: chunk ends split int64 values and UTF-8 pairs."""
    monkeypatch.setattr(ogb_split, "CHUNK_BYTES", 1001)
    monkeypatch.setattr(ogb_writer, "CHUNK_BYTES", 1001)
    monkeypatch.setattr(ogb_writer, "ROWS_PER_CHUNK", 97)
    monkeypatch.setattr(ogb_source, "CSV_ROWS", 89)
    monkeypatch.setattr(cache_mod, "_CHUNK", 333)


@pytest.fixture
def written(small, tmp_path, tiny_chunks) -> Path:
    root = tmp_path / "root"
    write_ogb_wikikg2(small, root, num_candidates=C, seed=1)
    return root


def _torch_load(path: Path) -> dict:
    with torch.serialization.safe_globals(list(_numpy_allowlist().values())):
        return torch.load(path)


def _pt(root: Path, split: str) -> Path:
    return root / "ogbl_wikikg2" / "split" / "time" / f"{split}.pt"


def _torch_zip(path: Path, pkl: bytes) -> Path:
    """A torch.save-style zip archive around a hand-made ``data.pkl``."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{path.stem}/data.pkl", pkl)
        for rel, data in ogb_split._torch_records():
            zf.writestr(f"{path.stem}/{rel}", data)
    return path


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"head": rng.integers(0, 300_000, 257), "relation": rng.integers(0, 535, 257),
            "tail": rng.integers(0, 300_000, 257),
            "head_neg": rng.integers(0, 2_500_604, (257, 13)),
            "tail_neg": rng.integers(0, 2_500_604, (257, 13))}


# ----------------------------------------------------------------------------- split files
def test_split_file_is_torch_save_byte_for_byte(tmp_path, tiny_chunks):
    arrays = _arrays()
    torch.save(arrays, tmp_path / "ref.pt")
    write_split_file(tmp_path / "mine.pt",
                     {k: ArraySource.from_array(v, rows=5) for k, v in arrays.items()})
    with zipfile.ZipFile(tmp_path / "ref.pt") as a, zipfile.ZipFile(tmp_path / "mine.pt") as b:
        assert b.read("mine/data.pkl") == a.read("ref/data.pkl")
        assert sorted(n.split("/", 1)[1] for n in b.namelist()) == \
            sorted(n.split("/", 1)[1] for n in a.namelist())
    got = _torch_load(tmp_path / "mine.pt")
    assert list(got) == list(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == np.int64 and np.array_equal(got[k], v)
    # Empty arrays: torch.save pickles their b"" as bytes(), which torch.load refuses with
    # weights_only; ours load (and read back) like any other array.
    empty = {"head": np.zeros(0, np.int64), "head_neg": np.zeros((0, 5), np.int64)}
    write_split_file(tmp_path / "empty.pt",
                     {k: ArraySource.from_array(v) for k, v in empty.items()})
    for d in (_torch_load(tmp_path / "empty.pt"), read_split_file(tmp_path / "empty.pt")):
        assert {k: v.shape for k, v in d.items()} == {"head": (0,), "head_neg": (0, 5)}


@pytest.mark.parametrize("variant", ["protocol2", "protocol3", "protocol4", "int32", "zip64"])
def test_read_split_file_equals_torch_load(tmp_path, tiny_chunks, variant):
    arrays = _arrays(1)
    path = tmp_path / "x.pt"
    if variant == "int32":
        arrays = {k: v.astype(np.int32) for k, v in arrays.items()}
    if variant == "zip64":
        write_split_file(path, {k: ArraySource.from_array(v) for k, v in arrays.items()})
        with zipfile.ZipFile(path) as src:
            records = [(i.filename, src.read(i)) for i in src.infolist()]
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in records:
                with zf.open(zipfile.ZipInfo(name), "w", force_zip64=True) as f:
                    f.write(data)
    else:
        protocol = {"protocol3": 3, "protocol4": 4}.get(variant, 2)
        torch.save(arrays, path, pickle_protocol=protocol)
    # torch.load's weights-only unpickler cannot read protocols 3 and 4 (SHORT_BINBYTES, FRAME)
    ref = arrays if variant in ("protocol3", "protocol4") else _torch_load(path)
    for int32 in (True, False):
        got = read_split_file(path, int32=int32)
        assert list(got) == list(ref)
        for k in ref:
            assert got[k].dtype == (np.int32 if int32 else np.int64)
            assert got[k].shape == ref[k].shape and np.array_equal(got[k], ref[k])


def test_writer_draws_the_same_candidates_as_one_draw(small, written):
    gen = torch.Generator().manual_seed(1)  # the old writer: one [N, C] draw per side
    for split in ("valid", "test"):
        t = small.split(split)
        d = _torch_load(_pt(written, split))
        for side, col in (("head_neg", 0), ("tail_neg", 2)):
            want = ogb_writer._negatives(t[:, col], small.num_entities, C, gen)
            assert d[side].dtype == np.int64 and np.array_equal(d[side], want.numpy())
        for col, key in enumerate(("head", "relation", "tail")):
            assert np.array_equal(d[key], t[:, col].numpy())


def test_writer_csv_files_are_whole(small, written):
    raw = written / "ogbl_wikikg2" / "raw"
    edges = np.loadtxt(gzip.open(raw / "edge.csv.gz"), delimiter=",", dtype=np.int64)
    rels = np.loadtxt(gzip.open(raw / "edge_reltype.csv.gz"), dtype=np.int64)
    assert np.array_equal(edges, small.train[:, [0, 2]].numpy())
    assert np.array_equal(rels, small.train[:, 1].numpy())
    names = gzip.open(written / "ogbl_wikikg2" / "mapping" / "nodeidx2entityid.csv.gz").read()
    lines = names.decode().splitlines()
    assert lines[0] == "node idx,entity id" and len(lines) == small.num_entities + 1
    assert lines[1:] == [f"{i},{i}" for i in range(small.num_entities)]


# ---------------------------------------------------------------------- chunked vs ogb reader
def _same_graph(a: KnowledgeGraph, b: KnowledgeGraph) -> None:
    assert (a.num_entities, a.num_relations) == (b.num_entities, b.num_relations)
    assert all(torch.equal(a.split(s), b.split(s)) for s in SPLITS)
    assert a.entity_names == b.entity_names and a.relation_names == b.relation_names
    assert a.num_duplicates == b.num_duplicates and a.source == b.source
    assert a.candidates.keys() == b.candidates.keys()
    for s, d in a.candidates.items():
        for k, t in d.items():
            assert t.dtype == b.candidates[s][k].dtype and torch.equal(t, b.candidates[s][k])


def test_chunked_reader_equals_ogb_loader(small, written, tmp_path):
    by_ogb = load_ogbl_wikikg2(written, tmp_path / "c1", progress=False, reader="ogb")
    chunked = load_ogbl_wikikg2(written, tmp_path / "c2", progress=False, reader="chunked")
    _same_graph(chunked, by_ogb)
    assert all(torch.equal(chunked.split(s), small.split(s)) for s in SPLITS)
    assert chunked.candidates["test"]["head_neg"].dtype == torch.int32
    assert chunked.train.dtype == torch.long
    # and straight against ogb's LinkPropPredDataset arrays
    from ogb.linkproppred import LinkPropPredDataset

    copy = tmp_path / "copy"
    shutil.copytree(written, copy)
    with torch.serialization.safe_globals(list(_numpy_allowlist().values())):
        ds = LinkPropPredDataset("ogbl-wikikg2", root=str(copy))
        split = ds.get_edge_split()
    for s in SPLITS:
        mine = read_split_file(_pt(written, s))
        assert list(mine) == list(split[s])
        for k, v in split[s].items():
            assert np.array_equal(mine[k], v)
    assert int(ds[0]["num_nodes"]) == chunked.num_entities


def test_auto_reader_by_size(written, tmp_path, monkeypatch):
    load_ogbl_wikikg2(written, tmp_path / "c1", progress=False)  # small: ogb's loader
    assert list((tmp_path / "c1").glob("ogb/*/ogbl_wikikg2/processed/data_processed"))
    monkeypatch.setattr(ogb_source, "OGB_READER_MAX_BYTES", 0)
    g = load_ogbl_wikikg2(written, tmp_path / "c2", progress=False)  # "large": chunked
    assert not list((tmp_path / "c2").glob("ogb"))
    assert g.candidates["valid"]["tail_neg"].dtype == torch.int32


# --------------------------------------------------------------------------------- the cache
def test_cache_stores_int32_and_reloads(small, written, tmp_path):
    cache = tmp_path / "c"
    g = load_ogbl_wikikg2(written, cache, progress=False, reader="chunked")
    (st,) = (cache / "processed").glob("*.safetensors")
    (n,) = struct.unpack("<Q", st.read_bytes()[:8])
    header = json.loads(st.read_bytes()[8:8 + n])
    assert {v["dtype"] for v in header.values()} == {"I32"}
    meta = json.loads(st.with_suffix(".json").read_text())
    assert meta["format"] == cache_mod.CACHE_FORMAT == 2
    assert meta["tensor_bytes"] == st.stat().st_size
    assert not [p for p in (cache / "processed").iterdir() if p.name.startswith(".")]  # no temps
    again = load_ogbl_wikikg2(written, cache, progress=False, reader="chunked")
    _same_graph(again, g)
    assert again.train.dtype == torch.long and again.test.dtype == torch.long
    # an entry of the previous format is ignored and rebuilt
    meta["format"] = 1
    st.with_suffix(".json").write_text(json.dumps(meta))
    assert cache_mod.load_graph(cache, st.stem) is None
    _same_graph(load_ogbl_wikikg2(written, cache, progress=False, reader="chunked"), g)


def test_cache_round_trip_of_int64_graph(tmp_path, tiny_chunks):
    g = generate_synthetic(200, 5, 1500, seed=2)
    cache_mod.save_graph(g, tmp_path, "x")
    back = cache_mod.load_graph(tmp_path, "x")
    assert back is not None
    assert all(torch.equal(back.split(s), g.split(s)) for s in SPLITS)
    assert back.relation_names == g.relation_names and back.candidates == {}


@pytest.mark.parametrize("name", ["complex", "transe"])
@pytest.mark.parametrize("reciprocal", [True, False])
def test_int32_candidates_evaluate_like_int64(small, written, tmp_path, name, reciprocal):
    from metasd_pyg.evaluation import evaluate
    from metasd_pyg.models import build_model

    g32 = load_ogbl_wikikg2(written, tmp_path / "c", progress=False, reader="chunked")
    g64 = KnowledgeGraph(g32.name, g32.train, g32.valid, g32.test, g32.num_entities,
                         g32.num_relations, candidates={s: {k: v.long() for k, v in d.items()}
                                                        for s, d in g32.candidates.items()})
    torch.manual_seed(0)
    model = build_model(name, g32.num_entities, g32.num_relations, 8, reciprocal=reciprocal)
    a = evaluate(model, g32, "test", reciprocal=reciprocal, batch_size=17, progress=False)
    b = evaluate(model, g64, "test", reciprocal=reciprocal, batch_size=17, progress=False)
    assert a.summary["protocol"] == "ogb" and a.ranks.equals(b.ranks)


# ------------------------------------------------------------------------ refused pickles
def _reduce_pickle(module: str, name: str, *args: object) -> bytes:
    """A protocol-2 pickle of ``{"head": module.name(*args)}`` (never unpickled here)."""
    body = b"".join(pickle.dumps(a, protocol=2)[2:-1] for a in args)
    return (b"\x80\x02}X\x04\x00\x00\x00head" + f"c{module}\n{name}\n".encode() + b"(" + body
            + b"tRs.")


@pytest.mark.parametrize("module,name", [("os", "system"), ("builtins", "eval"),
                                         ("posix", "system"), ("numpy", "load"),
                                         ("torch._utils", "_rebuild_tensor_v2")])
def test_crafted_pickle_is_refused_without_running(tmp_path, module, name):
    flag = tmp_path / "ran"
    path = _torch_zip(tmp_path / "evil.pt", _reduce_pickle(module, name, f"touch {flag}"))
    with pytest.raises(DataError, match=rf"evil\.pt: refusing to unpickle '{module}\.{name}'"):
        read_split_file(path)
    assert not flag.exists()


def test_refused_contents(tmp_path):
    cases = {
        "date": ({"head": np.zeros(3, np.int64), "evil": datetime.date(2020, 1, 1)},
                 r"refusing to unpickle 'datetime\.date'"),
        "tensor": ({"head": torch.arange(3)}, r"refusing to unpickle 'torch\._utils"),
        "float": ({"head": np.zeros(3)}, r"unsupported array dtype 'f8'"),
        "object": ({"head": np.array([1, "a"], dtype=object)}, r"unsupported array dtype 'O8'"),
        "list": ({"head": [1, 2, 3]}, r"unsupported opcode"),
        "big": ({"head": np.array([2**40])}, r"value 1099511627776 does not fit in int32"),
    }
    for key, (obj, msg) in cases.items():
        path = tmp_path / f"{key}.pt"
        torch.save(obj, path)
        with pytest.raises(DataError, match=msg) as exc:
            read_split_file(path)
        assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    torch.save({"head": np.zeros(3, np.int64)}, tmp_path / "legacy.pt",
               _use_new_zipfile_serialization=False)
    with pytest.raises(DataError, match="not a readable torch file"):
        read_split_file(tmp_path / "legacy.pt")


def test_array_header_larger_than_its_data_is_refused(tmp_path):
    class Fake:  # numpy's reduction, claiming 10**9 elements for 3 values of data
        def __reduce__(self):
            return (np.ndarray.__reduce__(np.zeros(1, np.int64))[0],
                    (np.ndarray, (0,), b"b"),
                    (1, (10**9,), np.dtype(np.int64), False, np.arange(3).tobytes()))

    path = _torch_zip(tmp_path / "x.pt", pickle.dumps({"head": Fake()}, protocol=2))
    with pytest.raises(DataError, match=r"cannot fill shape \(1000000000,\)"):
        read_split_file(path)


def test_corrupt_split_files(tmp_path, written):
    path = _pt(written, "valid")
    data = path.read_bytes()
    (tmp_path / "short.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"short\.pt: not a readable torch file"):
        read_split_file(tmp_path / "short.pt")
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("valid/data.pkl")
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    flipped = bytearray(data)
    flipped[start + info.file_size - 40] ^= 0x01  # inside the last array's data
    (tmp_path / "flip.pt").write_bytes(bytes(flipped))
    with pytest.raises(DataError, match=r"flip\.pt: not a readable torch file \(Bad CRC-32"):
        read_split_file(tmp_path / "flip.pt")


# ---------------------------------------------------------------------- bad inputs, readers
def _rewrite(root: Path, split: str, **change: np.ndarray) -> None:
    path = _pt(root, split)
    d = _torch_load(path)
    d.update(change)
    torch.save(d, path)


def _load_error(root: Path, cache: Path, reader: str) -> str:
    with pytest.raises(DataError) as exc:
        load_ogbl_wikikg2(root, cache, progress=False, reader=reader)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


READERS = ["ogb", "chunked"]


@pytest.mark.parametrize("reader", READERS)
def test_mismatched_lengths(written, tmp_path, reader):
    rel = _torch_load(_pt(written, "valid"))["relation"]
    _rewrite(written, "valid", relation=rel[:-1])
    msg = _load_error(written, tmp_path / "c", reader)
    assert "valid.pt: head, relation and tail must be 1-D arrays of one length" in msg
    assert f"({len(rel) - 1},)" in msg


@pytest.mark.parametrize("reader", READERS)
def test_ids_out_of_range(small, written, tmp_path, reader):
    E = small.num_entities
    neg = _torch_load(_pt(written, "test"))["tail_neg"].copy()
    neg[3, 5] = E
    _rewrite(written, "test", tail_neg=neg)
    msg = _load_error(written, tmp_path / "c", reader)
    assert f"test.pt: tail_neg holds entity id {E} outside [0, {E})" in msg


@pytest.mark.parametrize("reader", READERS)
def test_negative_relation(written, tmp_path, reader):
    rel = _torch_load(_pt(written, "train"))["relation"].copy()
    rel[0] = -2
    _rewrite(written, "train", relation=rel)
    assert "train.pt: relation holds negative id -2" in _load_error(written, tmp_path / "c",
                                                                    reader)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("shape", ["fewer rows", "1-D", "no columns"])
def test_wrong_candidate_shapes(written, tmp_path, reader, shape):
    neg = _torch_load(_pt(written, "valid"))["head_neg"]
    bad = {"fewer rows": neg[:-2], "1-D": neg[:, 0], "no columns": neg[:, :0]}[shape]
    _rewrite(written, "valid", head_neg=bad)
    msg = _load_error(written, tmp_path / "c", reader)
    if reader == "ogb" and not bad.size:  # torch.save's bytes() for no data: check_pickle
        assert "valid.pt: refusing to unpickle 'builtins.bytes'" in msg
    else:
        assert f"valid.pt: head_neg has shape {bad.shape}, expected ({len(neg)}, C)" in msg


@pytest.mark.parametrize("reader", READERS)
def test_missing_candidates(written, tmp_path, reader):
    d = _torch_load(_pt(written, "test"))
    del d["head_neg"]
    torch.save(d, _pt(written, "test"))
    assert "test.pt: missing array 'head_neg'" in _load_error(written, tmp_path / "c", reader)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("name", ["edge.csv.gz", "edge_reltype.csv.gz"])
def test_truncated_gzip(written, tmp_path, reader, name):
    path = written / "ogbl_wikikg2" / "raw" / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    msg = _load_error(written, tmp_path / "c", reader)
    assert "truncated or corrupt" in msg and "gzip" in msg
    assert str(written / "ogbl_wikikg2" / "raw") in msg  # the user's folder, not the cache


def test_chunked_checks_raw_files(small, written, tmp_path):
    raw = written / "ogbl_wikikg2" / "raw"
    E, M = small.num_entities, len(small.train)
    original = (raw / "edge.csv.gz").read_bytes()
    text = gzip.decompress(original).decode()
    (raw / "edge.csv.gz").write_bytes(gzip.compress(f"0,{E}\n".encode() + text.encode()))
    assert f"edge.csv.gz: entity id {E} outside [0, {E})" in _load_error(
        written, tmp_path / "c1", "chunked")
    (raw / "edge.csv.gz").write_bytes(gzip.compress(text.encode() + b"1,2\n"))
    assert f"edge.csv.gz: {M + 1:,} rows, num-edge-list.csv.gz says {M:,}" in _load_error(
        written, tmp_path / "c2", "chunked")
    (raw / "edge.csv.gz").write_bytes(gzip.compress(text.replace("\n", ",0\n", 1).encode()))
    assert "edge.csv.gz: " in _load_error(written, tmp_path / "c3", "chunked")
    (raw / "edge.csv.gz").write_bytes(original)
    (raw / "num-node-list.csv.gz").write_bytes(gzip.compress(b"300\n301\n"))
    assert "num-node-list.csv.gz: expected one non-negative count" in _load_error(
        written, tmp_path / "c4", "chunked")


def test_unknown_reader(written, tmp_path):
    from metasd_pyg.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown ogbl-wikikg2 reader 'fast'"):
        load_ogbl_wikikg2(written, tmp_path / "c", reader="fast")


def test_endless_pickle_is_cut_short(tmp_path, monkeypatch):
    monkeypatch.setattr(ogb_split, "_MAX_OPS", 50)
    path = _torch_zip(tmp_path / "long.pt", b"\x80\x02" + b"N" * 60 + b".")
    with pytest.raises(DataError, match=r"long\.pt: malformed pickle .*\(more than 50 operations"):
        read_split_file(path)
