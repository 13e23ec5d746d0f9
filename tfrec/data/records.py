"""The record format of staged shards (``tfrec.data.stream``), shared by the writer and the reader.

A part is files of fixed-size records: :data:`BLOCK` rows of (user, item: int32 positions among the
stream's sorted ids; rating: float32 bits), :data:`ROW_BYTES` each; a file's last record is padded
with rows whose user is -1.
"""

BLOCK = 256
ROW_BYTES = 12
#: Rows a record file holds at most; each part writes 16 files side by side (``tfrec.data.staging``).
FILE_ROWS = 1 << 22
#: Rows read from a shard at a time while staging.
PIECE_ROWS = 1 << 20
#: Bumped when the format changes: a staging of another format is not reused.
FORMAT = 1
PARTS = ("fit", "validation", "test")
#: The vocabularies a model is built with: the fit part's ids (the fit phase) or the whole training
#: part's (a refit, and the model a run without validation trains).
VOCABULARIES = {"fit": ("fit",), "train": ("fit", "validation")}
#: The features a streamed part gives (no timestamps, no side features).
FEATURES = ("user_id", "movie_id", "user_rating")
ROLES = ("user", "item")
