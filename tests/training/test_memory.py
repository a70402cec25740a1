"""The peak-memory estimate: itemised, close to the measured peak, and a limit before allocating."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import torch

from metasd_pyg.data import KnowledgeGraph
from metasd_pyg.errors import ConfigError
from metasd_pyg.training import MetaSDConfig
from metasd_pyg.training.memory import estimate_memory


def _graph(E: int, n: int = 1000) -> KnowledgeGraph:
    tri = torch.stack([torch.arange(n) % E, torch.arange(n) % 3, (torch.arange(n) * 7) % E], 1)
    return KnowledgeGraph(name="g", train=tri, valid=tri[:10], test=tri[:10], num_entities=E,
                          num_relations=3)


def _cfg(**kw: Any) -> MetaSDConfig:
    return MetaSDConfig.flat(**{"dim": 100, "loss": "sampled", **kw})


def test_the_items_follow_the_configuration() -> None:
    g = _graph(2_500_604)
    meta = estimate_memory(_cfg(mode="metasd", meta=True), g)
    table = 2_500_604 * 100 * 4
    assert meta.held["model (float32)"] == pytest.approx(2 * table, rel=1e-3)
    assert meta.held["optimizer state (adagrad)"] == meta.held["model (float32)"]
    assert meta.held["meta optimizer state (adagrad)"] == meta.held["model (float32)"]
    assert meta.held["student masks (bool)"] == pytest.approx(2 * table / 4, rel=1e-3)
    adam = estimate_memory(_cfg(mode="metasd", optimizer="adam"), g)
    assert adam.held["optimizer state (adam)"] == 2 * meta.held["model (float32)"]
    nometa = estimate_memory(_cfg(mode="metasd", meta=False), g)
    assert "meta optimizer state (adagrad)" not in nometa.held
    teacher = estimate_memory(_cfg(mode="teacher"), g)
    small = estimate_memory(_cfg(mode="dense_same_nnz"), g)
    assert small.peak_bytes < teacher.peak_bytes < nometa.peak_bytes < meta.peak_bytes
    assert meta.peak_bytes < 16e9  # the full-size MetaSD plan of issue 12
    on_disk = estimate_memory(_cfg(mode="metasd", meta=True), g, checkpoints=True)
    assert meta.peak_bytes - on_disk.peak_bytes == meta.held["best epoch's snapshot"]
    dense = estimate_memory(_cfg(mode="metasd", loss="1-n"), g)
    assert dense.transient["a training step (whole tables)"] > 10e9  # B x E logits
    assert "GB" in meta.describe()
    key = "a table's copy onto huge pages (start-up)"
    assert meta.transient[key] == table
    assert key not in estimate_memory(_cfg(mode="metasd", huge_pages=False), g).transient
    assert key not in estimate_memory(_cfg(mode="metasd"), _graph(14_541)).transient


def test_a_run_over_the_limit_is_refused_before_anything_is_allocated() -> None:
    g = _graph(3_000_000_000)  # 3e9 entities x dim 100: terabytes
    est = estimate_memory(_cfg(mode="metasd"), g)
    assert est.peak_bytes > 4e12
    with pytest.raises(ConfigError, match=r"exceeds the memory limit of 24.00 GB"):
        est.check(24_000_000_000)
    est.check(None)  # no limit: no error


_MEASURE = """
import json, resource, sys, torch
from metasd_pyg.data import load_dataset
from metasd_pyg.training import MetaSDConfig, compose
from metasd_pyg.training.memory import estimate_memory
torch.set_num_threads(1)
g = load_dataset("synthetic:entities=150000,relations=50,triples=400000", progress=False)
cfg = MetaSDConfig.flat(dim=64, batch_size=500, loss=sys.argv[1], num_negatives=500,
                        mode="metasd", progress=False, valid_max_queries=300)
est = estimate_memory(cfg, g)
tr = compose(g, cfg); tr.start()
for i in range(4):
    tr.train_step(tr.stream[i * 500:(i + 1) * 500])
tr.selection.consider(tr, tr.selection.validate(tr, {}))
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"estimate": est.peak_bytes, "measured": rss}))
"""


@pytest.mark.parametrize("loss", ["sampled", "1-n"])
def test_the_estimate_is_a_plan_for_the_measured_peak(loss: str) -> None:
    """A MetaSD run at 150k entities: measured peak <= estimate <= 1.6 x measured."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, loss], capture_output=True,
                         text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["measured"] <= got["estimate"] <= 1.6 * got["measured"], got
