"""End to end on UMLS (real data from ../shared/datasets): the 90%-sparse student vs baselines.

Training is deterministic (seeded, one thread), so the thresholds are stable;
they fail if the student stops learning, collapses toward random (MRR about
0.04 on UMLS's 135 entities), or falls below the dense model with the same
number of non-zero weights trained for the same epochs and batches.
"""

from __future__ import annotations

import pytest

from metasd_pyg.training import MetaSDConfig, compose

from .helpers import DATA_ROOT, load_small

pytestmark = pytest.mark.skipif(not (DATA_ROOT / "umls.tar.gz").exists(),
                                reason="shared datasets not available")

BUDGET = dict(epochs=20, batch_size=256, lr=0.5, eval_every=5, seed=0, progress=False,
              device="cpu")


@pytest.mark.parametrize("meta", [None, True], ids=["default", "meta-step"])
def test_sparse_student_beats_same_nonzeros_dense_model_on_umls(meta: bool | None) -> None:
    graph = load_small("umls")
    opts = {} if meta is None else {"meta": meta}
    metasd = compose(graph, MetaSDConfig.flat(mode="metasd", strategy="degree", sparsity=0.9,
                                              **opts, **BUDGET))
    res = metasd.fit()
    dense = compose(graph, MetaSDConfig.flat(mode="dense_same_nnz", sparsity=0.9,
                                             **BUDGET)).fit()
    student = res.student_test.summary["mrr"]
    assert metasd.masks is not None
    assert res.history[-1]["sparsity"] == pytest.approx(0.9, abs=2e-3)
    assert student > 0.8  # random ranking: about 0.04
    assert student > dense.final_test.summary["mrr"]
    assert res.teacher_test.summary["mrr"] > student
    # the meta step is off by default (docs/training.md, "Defaults and why")
    assert any("quiz_loss" in h for h in res.history) == bool(meta)
    assert "mask_churn" in res.history[-1]
