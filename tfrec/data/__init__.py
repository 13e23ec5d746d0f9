"""Data: sources -> a ratings table -> splits -> tf.data pipelines.

Examples use TensorFlow Datasets' MovieLens feature names, so
``tfds.load("movielens/100k-ratings")`` and these loaders are interchangeable.
"""

from tfrec.data.cache import cache_dir, download, known_archives
from tfrec.data.movielens import load_directory, load_recbole, recbole_directory
from tfrec.data.pipeline import dataset
from tfrec.data.sources import NAMES_HELP, load, load_tfds
from tfrec.data.splits import Split, fold_split, leave_last_out, random_split, split
from tfrec.data.synthetic import Synthetic, generate
from tfrec.data.table import GENRES, OCCUPATIONS, RaggedColumn, Ratings

__all__ = [
    "GENRES", "NAMES_HELP", "OCCUPATIONS", "RaggedColumn", "Ratings", "Split", "Synthetic",
    "cache_dir", "dataset", "download", "fold_split", "generate", "known_archives",
    "leave_last_out", "load", "load_directory", "load_recbole", "load_tfds",
    "random_split", "recbole_directory", "split",
]  # fmt: skip
