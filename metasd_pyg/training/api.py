r"""The few-lines Python API: :func:`train_metasd` and :func:`MetaSD`.

Paper: Li, Liu, Yang, Li, "Self-Distillation with Meta Learning for Knowledge
Graph Completion", Findings of EMNLP 2022,
https://aclanthology.org/2022.findings-emnlp.149/.

.. code-block:: python

    from metasd_pyg.data import load_dataset
    from metasd_pyg.training import train_metasd

    graph = load_dataset("umls")
    result = train_metasd(graph, model="complex", dim=100, sparsity=0.9, strategy="degree")
    print(result.student_test.summary["mrr"])

    # or with parts of your own (each recorded in result.config):
    from metasd_pyg.models import build_model
    from metasd_pyg.pruning import Pruner
    from metasd_pyg.training import MetaSD, MetaStep

    model = build_model("complex", graph.num_entities, graph.num_relations, 100)
    trainer = MetaSD(model, graph, pruner=Pruner("aligned", 0.9),
                     meta=MetaStep(every=2, path="full"), epochs=50)
    result = trainer.fit()
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch_geometric.nn.kge import KGEModel

from metasd_pyg.data.graph import KnowledgeGraph
from metasd_pyg.training.callbacks import Callback
from metasd_pyg.training.config import MetaSDConfig
from metasd_pyg.training.dynamic import MaskComputer, Schedule
from metasd_pyg.training.meta import MetaStep
from metasd_pyg.training.recipes import Built, Run, compose
from metasd_pyg.training.result import TrainResult
from metasd_pyg.training.selection import Evaluator


def MetaSD(
    model: KGEModel | None,
    graph: KnowledgeGraph,
    *,
    pruner: MaskComputer | None = None,
    schedule: Schedule | None = None,
    meta: MetaStep | bool | None = None,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    evaluator: Evaluator | None = None,
    config: MetaSDConfig | None = None,
    **options: Any,
) -> Run:
    """A MetaSD run (or a baseline, ``mode=...``) from built parts and flat options.

    Every part passed in replaces the one its section describes, and the
    run's :attr:`config` records what it is (``Pruner("aligned", 0.9)`` records
    ``strategy: aligned``; a model of width 16 records ``dim: 16``).

    Args:
        model: PyG KGE model (reciprocal) or ``None`` to build the model section's.
        graph: The knowledge graph.
        pruner: Mask computer (default ``Pruner.from_config`` of the pruning section).
        schedule: Mask recomputation schedule (default from the schedule section).
        meta: A :class:`MetaStep`, ``False`` for the no-meta ablation, ``None``/``True``
            for the meta section's.
        callbacks: Extra callbacks.
        checkpoint_dir: Folder for atomic checkpoints.
        device: Device (default the runtime section's, ``"auto"``).
        evaluator: Evaluation function (default :func:`metasd_pyg.evaluation.evaluate`).
        config: Base configuration; ``options`` override its options.
        **options: Flat options (``epochs=``, ``sparsity=``, ...; see
            :class:`MetaSDConfig`); an unknown one raises ``ConfigError``.
    """
    cfg = (config or MetaSDConfig()).replace(**options)
    if meta is False:
        cfg = cfg.replace(meta=False)
    built = Built(model=model, pruner=pruner, schedule=schedule,
                  meta=None if meta is True else meta, callbacks=callbacks,
                  checkpoint_dir=checkpoint_dir, device=device, evaluator=evaluator)
    return compose(graph, cfg, built)


def train_metasd(
    graph: KnowledgeGraph,
    *,
    model: str = "complex",
    dim: int = 100,
    sparsity: float = 0.9,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    **options: Any,
) -> TrainResult:
    """Train MetaSD (or a baseline, ``mode=...``) on ``graph`` and return the result.

    Args:
        graph: The knowledge graph.
        model: Model name (``"complex"``, ``"distmult"``, ``"rotate"``, ``"transe"``).
        dim: Teacher dimension.
        sparsity: Student sparsity.
        checkpoint_dir: Folder for atomic checkpoints.
        resume: Continue from the checkpoint in ``checkpoint_dir``.
        callbacks: Extra callbacks.
        **options: Any other flat option of :class:`MetaSDConfig`.
    """
    cfg = MetaSDConfig.flat(model=model, dim=dim, sparsity=sparsity, **options)
    run = compose(graph, cfg, Built(callbacks=callbacks, checkpoint_dir=checkpoint_dir))
    return run.fit(resume=resume)
