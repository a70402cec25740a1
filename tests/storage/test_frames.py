"""Rank tables stored column by column in safetensors (storage.frames)."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metasd_pyg.errors import RunFolderError
from metasd_pyg.storage.frames import HEADER_KEY, load_frame, save_frames


def _ranks(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "side": np.asarray(["tail", "head"], dtype=object)[rng.integers(0, 2, n)],
        "triple": rng.integers(0, 10**6, n), "query": rng.integers(0, 10**6, n),
        "target": rng.integers(0, 10**6, n), "relation": rng.integers(0, 500, n),
        "rank": rng.integers(1, 1000, n) + 0.5 * rng.integers(0, 2, n),
        "bucket": np.asarray(["0-1", "2-4", "5+"], dtype=object)[rng.integers(0, 3, n)],
    })


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for col in a.columns:
        assert a[col].tolist() == b[col].tolist(), col
        if pd.api.types.is_numeric_dtype(a[col].dtype):
            assert a[col].dtype == b[col].dtype, col


def test_round_trip_of_two_rank_tables(tmp_path):
    frames = {"teacher/test": _ranks(1000, 0), "student/test": _ranks(7, 1)}
    path = save_frames(tmp_path / "ranks.safetensors", frames)
    for key, frame in frames.items():
        _same(frame, load_frame(path, key))
    # about 8 bytes per number: 7 columns x 1007 rows, text columns as int32 codes
    assert path.stat().st_size < 1007 * 7 * 8 + 2000


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                          st.one_of(st.none(), st.sampled_from(["a", "b", "ü", ""]))),
                max_size=30))
def test_round_trip_property(tmp_path_factory, rows):
    frame = pd.DataFrame(rows, columns=["i", "x", "label"])
    if rows:
        frame["i"] = frame["i"].astype("int64")
        frame["x"] = frame["x"].astype("float64")
    path = save_frames(tmp_path_factory.mktemp("f") / "f.safetensors", {"k": frame})
    back = load_frame(path, "k")
    assert list(back.columns) == ["i", "x", "label"] and len(back) == len(frame)
    assert back["i"].tolist() == frame["i"].tolist()
    assert back["x"].tolist() == frame["x"].tolist()
    assert [None if pd.isna(v) else v for v in back["label"]] == \
        [None if pd.isna(v) else v for v in frame["label"]]


def test_missing_file_and_key_are_named(tmp_path):
    with pytest.raises(RunFolderError, match=r"ranks\.safetensors: missing"):
        load_frame(tmp_path / "ranks.safetensors", "student/test")
    path = save_frames(tmp_path / "ranks.safetensors", {"teacher/test": _ranks(3)})
    with pytest.raises(RunFolderError, match=r"no ranks stored under 'student/test'"):
        load_frame(path, "student/test")


def test_corrupt_codes_and_garbage_are_refused(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "ranks.safetensors"
    header = {"k": {"columns": ["side"], "categories": {"side": ["tail", "head"]}, "rows": 2}}
    save_file({"k/side": torch.tensor([0, 5], dtype=torch.int32)}, str(path),
              metadata={HEADER_KEY: json.dumps(header)})
    with pytest.raises(RunFolderError, match="codes outside its categories"):
        load_frame(path, "k")
    path.write_bytes(b"\x00not a safetensors file")
    with pytest.raises(RunFolderError, match="unreadable ranks"):
        load_frame(path, "k")
