"""Data: sources -> a ratings table -> splits -> tf.data pipelines.

Examples use TensorFlow Datasets' MovieLens feature names, so
``tfds.load("movielens/100k-ratings")`` and these loaders are interchangeable.
"""

from tfrec.data.cache import cache_dir, download, known_archives
from tfrec.data.implicit import Candidates, implicit_dataset, ranking_candidates
from tfrec.data.movielens import load_directory, load_recbole, recbole_directory
from tfrec.data.pipeline import dataset
from tfrec.data.sources import NAMES_HELP, load, load_tfds
from tfrec.data.splits import Split, fold_split, leave_last_out, random_split, split
from tfrec.data.synthetic import Synthetic, SyntheticFM, generate, generate_fm
from tfrec.data.table import GENRES, OCCUPATIONS, RaggedColumn, Ratings
from tfrec.data.vectors import RatingRows, rating_rows, vector_dataset

__all__ = [
    "GENRES", "NAMES_HELP", "OCCUPATIONS", "Candidates", "RaggedColumn", "RatingRows", "Ratings", "Split",
    "Synthetic", "SyntheticFM", "cache_dir", "dataset", "download", "fold_split", "generate", "generate_fm",
    "implicit_dataset", "known_archives", "leave_last_out", "load", "load_directory", "load_recbole", "load_tfds",
    "random_split", "ranking_candidates", "rating_rows", "recbole_directory", "split", "vector_dataset",
]  # fmt: skip
