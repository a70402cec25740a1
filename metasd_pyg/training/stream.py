"""The training stream: train triples in reciprocal form, minus the slices parts hold out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from metasd_pyg.data.graph import KnowledgeGraph
from metasd_pyg.training.callbacks import Callback
from metasd_pyg.training.losses import reciprocal_triples


@dataclass(frozen=True)
class StreamSplit:
    """The rows a trainer draws batches from, and the slice held out of them.

    Attributes:
        stream: ``[2 N_s, 3]`` reciprocal training rows (``(h, r, t)`` then inverses).
        quiz: ``[2 N_q, 3]`` reciprocal held-out rows (the meta step's quiz slice).
        quiz_index: ``[N_q]`` sorted indices of the held-out triples in ``graph.train``.
    """

    stream: Tensor
    quiz: Tensor
    quiz_index: Tensor

    def steps(self, batch_size: int) -> int:
        """Batches per epoch at ``batch_size``.

        Args:
            batch_size: Rows per step.
        """
        return max(1, math.ceil(self.stream.size(0) / batch_size))


def split_stream(graph: KnowledgeGraph, parts: Sequence[Callback], seed: int,
                 device: torch.device) -> StreamSplit:
    """Hold out of ``graph.train`` what the parts ask for (:meth:`Callback.held_out`).

    Args:
        graph: The knowledge graph.
        parts: The trainer's parts (the meta step holds out its quiz slice).
        seed: The run's seed.
        device: Where the rows go.
    """
    train = graph.train
    held = [h for h in (p.held_out(train, seed) for p in parts) if h is not None]
    if held:
        quiz_index = torch.cat(held).unique()
        keep = torch.ones(train.size(0), dtype=torch.bool)
        keep[quiz_index] = False
        quiz, stream = train[quiz_index], train[keep.nonzero().flatten()]
    else:
        quiz_index = torch.empty(0, dtype=torch.long)
        quiz, stream = train[:0], train
    R = graph.num_relations
    return StreamSplit(reciprocal_triples(stream, R).to(device),
                       reciprocal_triples(quiz, R).to(device), quiz_index)


def steps_per_epoch(graph: KnowledgeGraph, parts: Sequence[Callback], seed: int,
                    batch_size: int) -> int:
    """Batches per epoch of the stream :func:`split_stream` would build (nothing copied).

    Args:
        graph: The knowledge graph.
        parts: The trainer's parts.
        seed: The run's seed.
        batch_size: Rows per step.
    """
    train = graph.train
    held = [h for h in (p.held_out(train, seed) for p in parts) if h is not None]
    n_held = int(torch.cat(held).unique().numel()) if held else 0
    return max(1, math.ceil(2 * (train.size(0) - n_held) / batch_size))
