"""metasd-pyg: MetaSD compressed knowledge-graph embeddings on PyTorch Geometric.

Paper: Li, Liu, Yang, Li. "Self-Distillation with Meta Learning for Knowledge
Graph Completion". Findings of EMNLP 2022. https://aclanthology.org/2022.findings-emnlp.149/
"""

from metasd_pyg.data import KnowledgeGraph
from metasd_pyg.errors import ConfigError, DataError, MetaSDError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "KnowledgeGraph", "MetaSDError", "__version__"]
