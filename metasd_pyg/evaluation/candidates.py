r"""Scores of per-query candidate lists (the OGB protocol), reading only the rows needed.

In ogbl-wikikg2 (Hu et al. 2020, https://ogb.stanford.edu/docs/linkprop/) every
test query comes with its own 500 head and 500 tail candidates among 2.5M
entities. The query vector :math:`q` of :math:`(h, r, ?)` (or :math:`(?, r, t)`)
comes from :func:`~metasd_pyg.models.scoring.tail_query` /
:func:`~metasd_pyg.models.scoring.head_query`; candidate rows are gathered
table by table straight into ``[B, C, D]`` blocks, so nothing of the size of
the entity table is copied per chunk. With :math:`c` a candidate's rows:

* ComplEx, DistMult: :math:`\langle q, c\rangle` (batched matrix products);
* RotatE: :math:`\gamma - \lVert q - c\rVert_2` over real and imaginary parts;
* TransE: :math:`-\lVert q - \hat c\rVert_p` with :math:`\hat c` the
  :math:`p`-normalised row,

exactly the scores of :func:`~metasd_pyg.models.scoring.score_tails` with
``candidates=[B, C]`` (and of the models' ``forward``), under ``weights``
overrides as well (the masked MetaSD student,
https://aclanthology.org/2022.findings-emnlp.149/). Each formula is the
model adapter's
:meth:`~metasd_pyg.models.adapters.ModelAdapter.candidate_scores`.
"""

from __future__ import annotations

from torch import Tensor
from torch_geometric.nn.kge import KGEModel

from metasd_pyg.models.adapters import Weights, adapter_of


def score_candidates(
    model: KGEModel,
    entity: Tensor,
    rel: Tensor,
    candidates: Tensor,
    *,
    weights: Weights | None = None,
    head: bool = False,
) -> Tensor:
    """Scores ``[B, C]`` of each query against its own ``C`` candidates.

    Args:
        model: A PyG KGE model (ComplEx, DistMult, RotatE, TransE).
        entity: ``[B]`` the given entity: the head of ``(h, r, ?)``, or the
            tail of ``(?, r, t)`` with ``head=True``.
        rel: ``[B]`` relation rows (``r + R`` for reciprocal head queries,
            which are tail queries).
        candidates: ``[B, C]`` candidate entities per query.
        weights: Parameter overrides (name -> tensor).
        head: Score candidates as heads of ``(?, rel, entity)`` (direct head
            scoring) instead of tails of ``(entity, rel, ?)``.
    """
    adapter = adapter_of(model)
    if head:
        q = adapter.head_query(model, rel, entity, weights)
    else:
        q = adapter.tail_query(model, entity, rel, weights)
    return adapter.candidate_scores(model, q, candidates, weights)
