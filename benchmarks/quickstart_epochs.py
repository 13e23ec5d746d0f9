"""The README quickstart's epoch as a Keras user writes it: the plain form against tfrec's fast path.

``old``: ``compile(optimizer=tf.keras.optimizers.Adam(0.01))`` and ``tfrec.data.dataset`` (id strings).
``new``: ``compile(optimizer=tfrec.optimizers.Adam(0.01))`` and ``model.dataset`` (row numbers), which
``fit`` also gives variables made before the first trace. Biased MF on ML-100K 80/20 seed 42, batch
1024, 16 steps per execution, 8 epochs; prints the first epoch and the median of the others.

    python benchmarks/quickstart_epochs.py old; python benchmarks/quickstart_epochs.py new
"""

import statistics
import sys
import time

import tensorflow as tf

import tfrec
from tfrec.models import BiasedMatrixFactorization

form = sys.argv[1] if len(sys.argv) > 1 else "new"
split = tfrec.data.split(tfrec.data.load("ml-100k"), "ratio:0.2", seed=42)
tf.keras.utils.set_random_seed(0)
model = BiasedMatrixFactorization.from_table(split.train, dim=32, l2=0.1)
times = []


class Timer(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        times.append(time.perf_counter() - self.began)


if form == "old":
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=0.01), steps_per_execution=16)
    ds = tfrec.data.dataset(split.train, batch_size=1024, shuffle=True, seed=42)
else:
    model.compile(optimizer=tfrec.optimizers.Adam(learning_rate=0.01), steps_per_execution=16)
    ds = model.dataset(split.train, batch_size=1024, shuffle=True, seed=42)
model.fit(ds, epochs=8, verbose=0, callbacks=[Timer()])
print(f"{form}: first epoch {times[0]:.3f} s, median of the others {statistics.median(times[1:]):.4f} s")
