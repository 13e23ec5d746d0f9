"""The TensorFlow Recommenders basic ranking tutorial, run with tfrec's NCF model.

https://www.tensorflow.org/recommenders/examples/basic_ranking: MovieLens-100K
ratings shuffled once with seed 42, the first 80,000 for training and the next
20,000 for test; 32-dim user and movie-title embeddings, Dense 256 relu,
Dense 64 relu, Dense 1; MSE loss; Adagrad at 0.1; batch 8192; 3 epochs.

The tutorial's model is ``NeuralCollaborativeFiltering(variant="mlp", dim=32,
layers=[256, 64])`` with Keras' default U(-0.05, 0.05) embeddings, an output
bias starting at 0 and no clipping, and vocabularies from all ratings, as the
tutorial builds them. Titles stand in for movie ids, as in the tutorial. The
data is tfrec's offline ML-100K copy in ``u.data`` order, so the 80K/20K cut is
not the one TFDS's record order gives; pass ``--data tfds:movielens/100k-ratings``
to run on a prepared TFDS copy instead.

Run: python examples/tfrs_basic_ranking.py [--epochs 3] [--data ml-100k]
"""

import argparse

import numpy as np
import tensorflow as tf

import tfrec
from tfrec.models import NeuralCollaborativeFiltering

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--data", default="ml-100k")
args = parser.parse_args()

table = tfrec.data.load(args.data)
columns = ["user_id", "movie_title", "user_rating"]
ratings = tfrec.data.dataset(table, batch_size=len(table), features=columns).unbatch()
ratings = ratings.map(
    lambda x: {"user_id": x["user_id"], "movie_id": x["movie_title"], "user_rating": x["user_rating"]}
)

tf.keras.utils.set_random_seed(42)  # the tutorial sets tf.random.set_seed(42); this also fixes the initializers
shuffled = ratings.shuffle(100_000, seed=42, reshuffle_each_iteration=False)
train = shuffled.take(80_000)
test = shuffled.skip(80_000).take(20_000)

model = NeuralCollaborativeFiltering(
    user_vocabulary=np.unique(table.user_id),
    item_vocabulary=np.unique(table.item_features["movie_title"]),
    variant="mlp",
    dim=32,
    layers=[256, 64],
    embeddings_initializer="uniform",  # Keras Embedding's default, U(-0.05, 0.05)
    global_mean=0.0,  # the tutorial's Dense(1) bias starts at 0
)
model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=0.1))

cached_train = train.shuffle(100_000).batch(8192).cache()
cached_test = test.batch(4096).cache()
model.fit(cached_train, epochs=args.epochs, verbose=2)
metrics = model.evaluate(cached_test, return_dict=True, verbose=0)
print(f"test RMSE {metrics['rmse']:.4f}  MAE {metrics['mae']:.4f}")

# For scale: predicting the training mean for every test rating.
mean = np.mean([float(r) for r in train.map(lambda x: x["user_rating"])])
truth = np.array([float(r) for r in test.map(lambda x: x["user_rating"])])
print(f"training-mean baseline RMSE {np.sqrt(np.mean((truth - mean) ** 2)):.4f}")
