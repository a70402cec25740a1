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

    # or with parts of your own:
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
from metasd_pyg.training.trainer import Evaluator, Trainer, TrainResult


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
) -> Trainer:
    """A :class:`Trainer` for MetaSD from keyword options.

    Args:
        model: PyG KGE model (reciprocal) or ``None`` to build ``options["model"]``.
        graph: The knowledge graph.
        pruner: Mask computer (default ``Pruner(strategy, sparsity, ...)`` from the options).
        schedule: Mask recomputation schedule (default from the options).
        meta: A :class:`MetaStep`, ``False`` for the no-meta ablation, ``None``/``True``
            for the default meta step built from the options.
        callbacks: Extra callbacks.
        checkpoint_dir: Folder for atomic checkpoints.
        device: Device (default ``options["device"]``, ``"auto"``).
        evaluator: Evaluation function (default :func:`metasd_pyg.evaluation.evaluate`).
        config: Base configuration; ``options`` override its fields.
        **options: Any :class:`MetaSDConfig` field (``epochs=``, ``sparsity=``, ...).
    """
    cfg = (config or MetaSDConfig()).replace(**options)
    part: MetaStep | None = None
    if meta is False:
        cfg = cfg.replace(meta=False)
    elif isinstance(meta, MetaStep):
        cfg = cfg.replace(meta=True, meta_every=meta.every, meta_path=meta.path)
        part = meta
    return Trainer(model, graph, cfg, pruner=pruner, schedule=schedule, meta=part,
                   callbacks=callbacks, checkpoint_dir=checkpoint_dir, device=device,
                   evaluator=evaluator)


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
        **options: Any other :class:`MetaSDConfig` field.
    """
    cfg = MetaSDConfig(model=model, dim=dim, sparsity=sparsity, **options)
    trainer = Trainer(None, graph, cfg, callbacks=callbacks, checkpoint_dir=checkpoint_dir)
    return trainer.fit(resume=resume)
