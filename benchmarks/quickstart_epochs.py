"""The README quickstart's epoch as a Keras user writes it: plain Keras forms against tfrec's fast path.

``plain``: ``compile(optimizer=tf.keras.optimizers.Adam(0.01))``, ``tfrec.data.dataset`` (id strings),
TensorFlow's default threads. ``keras-adam``: the quickstart as written but with Keras' own Adam
instance (what passing your own optimizer costs). ``quickstart``: the README's code,
``tfrec.train.configure_threads``, ``tfrec.optimizers.Adam(0.01)`` and ``model.training_dataset``
(row numbers), ``fit`` making the variables before the first trace. Biased MF on ML-100K 80/20 seed 42,
batch 1024, 128 steps per execution, 8 epochs; prints the first epoch and the median of the others.
Each form in its own process (thread settings are per process):

    for f in plain keras-adam quickstart; do python benchmarks/quickstart_epochs.py $f; done
"""

import statistics
import sys
import time

import tensorflow as tf

import tfrec
from tfrec.models import BiasedMatrixFactorization

form = sys.argv[1] if len(sys.argv) > 1 else "quickstart"
if form != "plain":
    tfrec.train.configure_threads("biased-mf")
split = tfrec.data.split(tfrec.data.load("ml-100k"), "ratio:0.2", seed=42)
tf.keras.utils.set_random_seed(0)
model = BiasedMatrixFactorization.from_table(split.train, dim=32, l2=0.1)
times = []


class Timer(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        times.append(time.perf_counter() - self.began)


keras_adam = form in ("plain", "keras-adam")
optimizer = tf.keras.optimizers.Adam(learning_rate=0.01) if keras_adam else tfrec.optimizers.Adam(learning_rate=0.01)
model.compile(optimizer=optimizer, steps_per_execution=128)
if form == "plain":
    ds = tfrec.data.dataset(split.train, batch_size=1024, shuffle=True, seed=42)
else:
    ds = model.training_dataset(split.train, batch_size=1024, seed=42)
model.fit(ds, epochs=8, verbose=0, callbacks=[Timer()])
print(f"{form}: first epoch {times[0]:.3f} s, median of the others {statistics.median(times[1:]):.4f} s")
