"""Connected components of small graphs, with networkx.

Only meant for small graphs (dataset cards, sanity checks): above
``max_triples`` triples it returns ``None`` rather than building a networkx
graph of millions of edges.
"""

from __future__ import annotations

import networkx as nx

from metasd_pyg.data.graph import KnowledgeGraph


def connected_components(
    graph: KnowledgeGraph, split: str = "train", *, max_triples: int = 2_000_000
) -> int | None:
    """Number of weakly connected components of ``split``, directions and relations ignored.

    Every entity counts, so an entity without a triple in ``split`` is a
    component of its own.

    Args:
        graph: The knowledge graph.
        split: ``train``, ``valid`` or ``test``.
        max_triples: Size limit; larger splits give ``None``.
    """
    t = graph.split(split)
    if len(t) > max_triples:
        return None
    g = nx.Graph()
    g.add_nodes_from(range(graph.num_entities))
    g.add_edges_from(t[:, [0, 2]].tolist())
    return int(nx.number_connected_components(g))
