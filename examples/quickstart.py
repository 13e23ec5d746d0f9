"""Quickstart: biased matrix factorization on MovieLens-100K with plain model.fit.

Run: python examples/quickstart.py   (ML-100K comes from the recbole copy, no download)
"""

import tensorflow as tf

import tfrec
from tfrec.models import BiasedMatrixFactorization

tfrec.train.configure_threads("biased-mf")  # `tfrec train`'s thread pools; before TensorFlow runs any op
ratings = tfrec.data.load("ml-100k")  # cache, else the recbole copy, else a download
split = tfrec.data.split(ratings, "ratio:0.2", seed=42)  # 80/20, fingerprinted
print(f"{len(split.train)} train / {len(split.test)} test ratings, split {split.fingerprint}")

model = BiasedMatrixFactorization.from_table(split.train, dim=32, l2=0.1)
# tfrec's Adam: Keras' steps, each in one native op ("adam" means it too); many steps per tf.function call.
model.compile(optimizer=tfrec.optimizers.Adam(learning_rate=0.01), steps_per_execution=128)
# What fit eats, with the ids as the model's row numbers (no string lookups) and a new order each epoch.
model.fit(model.training_dataset(split.train, batch_size=1024, seed=42), epochs=6, verbose=2)

metrics = model.evaluate(model.dataset(split.test, batch_size=8192), return_dict=True, verbose=0)
print(f"test RMSE {metrics['rmse']:.4f}  MAE {metrics['mae']:.4f}")
print(model({"user_id": tf.constant(["196", "no-such-user"]), "movie_id": tf.constant(["242", "242"])}))
