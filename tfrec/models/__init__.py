"""The rating models, each a ``tfrs.Model`` with a ``tfrs.tasks.Ranking`` head."""

from tfrec.models._base import RatingModel
from tfrec.models.biased_mf import BiasedMatrixFactorization
from tfrec.models.mf import MatrixFactorization

__all__ = ["BiasedMatrixFactorization", "MatrixFactorization", "RatingModel"]
