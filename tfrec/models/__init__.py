"""The rating models, each a ``tfrs.Model`` with a ``tfrs.tasks.Ranking`` head.

A new family subclasses :class:`RatingModel` (``score_rows`` and ``get_config``; tables of ids as
:class:`IdEmbedding`) and joins the registry with ``tfrec.families.register`` (README: Adding a model family).
"""

from tfrec.models._base import RatingModel
from tfrec.models._layers import IdEmbedding
from tfrec.models.autorec import AutoRec
from tfrec.models.biased_mf import BiasedMatrixFactorization
from tfrec.models.fm import FactorizationMachine, FieldAwareFactorizationMachine
from tfrec.models.mf import MatrixFactorization
from tfrec.models.ncf import NeuralCollaborativeFiltering

__all__ = [
    "AutoRec", "BiasedMatrixFactorization", "FactorizationMachine", "FieldAwareFactorizationMachine", "IdEmbedding",
    "MatrixFactorization", "NeuralCollaborativeFiltering", "RatingModel",
]  # fmt: skip
