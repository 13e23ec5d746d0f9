"""Data: sources -> a ratings table -> splits -> tf.data pipelines.

Examples use TensorFlow Datasets' MovieLens feature names, so
``tfds.load("movielens/100k-ratings")`` and these loaders are interchangeable.

The names below are imported on first use, so the command line can check a dataset name, a
file or a table without importing TensorFlow (only the pipelines need it).
"""

import importlib

_WHERE = {
    "cache": ("cache_dir", "download", "known_archives"),
    "implicit": ("Candidates", "implicit_dataset", "ranking_candidates"),
    "movielens": ("load_directory", "load_recbole", "recbole_directory"),
    "pipeline": ("dataset",),
    "sources": ("check_name", "load", "load_tfds", "names_help"),
    "splits": ("Split", "fold_split", "leave_last_out", "random_split", "split"),
    "synthetic": ("Synthetic", "SyntheticFM", "generate", "generate_fm"),
    "table": ("GENRES", "OCCUPATIONS", "RaggedColumn", "Ratings"),
    "vectors": ("RatingRows", "rating_rows", "vector_dataset"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(f"tfrec.data.{_MODULE_OF[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfrec.data' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
