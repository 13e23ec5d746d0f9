"""The rating models, each a ``tfrs.Model`` with a ``tfrs.tasks.Ranking`` head."""

from tfrec.models._base import RatingModel
from tfrec.models.autorec import AutoRec
from tfrec.models.biased_mf import BiasedMatrixFactorization
from tfrec.models.fm import FactorizationMachine, FieldAwareFactorizationMachine
from tfrec.models.mf import MatrixFactorization
from tfrec.models.ncf import NeuralCollaborativeFiltering

__all__ = [
    "AutoRec", "BiasedMatrixFactorization", "FactorizationMachine", "FieldAwareFactorizationMachine",
    "MatrixFactorization", "NeuralCollaborativeFiltering", "RatingModel",
]  # fmt: skip
