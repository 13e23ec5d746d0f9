"""The floor under tfrec's time to a test RMSE: biased MF in hand-written TensorFlow, no Keras, no TFRS.

Run: python benchmarks/tf_floor.py [--target 0.93] [--data ml-100k] [--seed 42]
A Surprise SVD fit on ML-100K ends near test RMSE 0.93 in about 0.3 s here (benchmarks/surprise_baseline.py).
This script measures how fast TensorFlow itself can get there on this machine, without tfrec's
model, Keras' fit or TFRS: the model of `tfrec train --model biased-mf` (mu + b_u + b_i + p_u . q_i,
32 factors drawn N(0, 0.1), L2 0.1 on the looked-up rows per batch, dense Adam lr 0.01, batch 1024, the
data in memory) as one `tf.function` per epoch (a `tf.while_loop` over the batches of a shuffled order,
no AutoGraph) and one for the test RMSE. It prints the trace, first call and later epochs apart, and
the time from creating the variables to the first epoch whose test RMSE is at most the target. Test pairs with an id the
training part does not have are left out (tfrec scores them with what it knows), and the threads are
`tfrec train`'s (one per op, two inter-op). Compare with `tfrec bench --models biased-mf --target 0.93`
and `python benchmarks/surprise_baseline.py`.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tfrec  # noqa: E402, F401  (Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402

from tfrec import data  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ml-100k")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--target", type=float, default=0.93)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(os.cpu_count())
    parts = data.split(data.load(args.data), "ratio", seed=args.seed)
    train, test = parts.train, parts.test
    users = {u: n for n, u in enumerate(train.user_ids)}
    items = {i: n for n, i in enumerate(train.item_ids)}
    test_u = np.array([users.get(u, -1) for u in test.user_id])
    test_i = np.array([items.get(i, -1) for i in test.movie_id])
    both = (test_u >= 0) & (test_i >= 0)
    u, i, r = (tf.constant(x) for x in (train.user.astype(np.int32), train.item.astype(np.int32), train.rating))
    tu, ti, tr = (tf.constant(x[both]) for x in (test_u.astype(np.int32), test_i.astype(np.int32), test.rating))
    mu, n, batch, lr, l2 = float(train.rating.mean()), len(train), 1024, 0.01, 0.1
    low, high = float(train.rating.min()), float(train.rating.max())

    start = time.perf_counter()
    draw = tf.random.Generator.from_seed(args.seed)
    weights = [
        tf.Variable(draw.normal([train.num_users, 32], stddev=0.1)),
        tf.Variable(draw.normal([train.num_items, 32], stddev=0.1)),
        tf.Variable(tf.zeros([train.num_users])),
        tf.Variable(tf.zeros([train.num_items])),
    ]
    moments = [(tf.Variable(tf.zeros_like(w)), tf.Variable(tf.zeros_like(w))) for w in weights]
    steps = tf.Variable(0.0)

    def score(users, items):
        p, q, b_u, b_i = (tf.gather(w, x) for w, x in zip(weights, (users, items, users, items)))
        return mu + (b_u + b_i) + tf.reduce_sum(p * q, 1), (p, q, b_u, b_i)

    def step(k, order):
        rows = order[k * batch : (k + 1) * batch]
        with tf.GradientTape() as tape:
            predictions, rows_read = score(tf.gather(u, rows), tf.gather(i, rows))
            penalty = tf.add_n([tf.reduce_sum(x * x) for x in rows_read]) / tf.cast(tf.size(rows), tf.float32)
            loss = tf.reduce_mean((predictions - tf.gather(r, rows)) ** 2) + l2 * penalty
        count = steps.assign_add(1.0)
        alpha = lr * tf.sqrt(1 - 0.999**count) / (1 - 0.9**count)
        updates = []
        for w, (m, v), g in zip(weights, moments, tape.gradient(loss, weights)):
            g = tf.convert_to_tensor(g)  # dense Adam, as tfrec's default optimizer
            m_new = m.assign(0.9 * m + 0.1 * g)
            v_new = v.assign(0.999 * v + 0.001 * g * g)
            updates.append(w.assign_sub(alpha * m_new / (tf.sqrt(v_new) + 1e-7)))
        with tf.control_dependencies(updates):
            return k + 1, tf.identity(order)

    # No AutoGraph (a plain tf.while_loop), which traces faster than a converted `for`.
    @tf.function(autograph=False)
    def epoch(number):
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([args.seed, number]))
        tf.while_loop(lambda k, _: k < (n + batch - 1) // batch, step, (tf.constant(0), order))

    @tf.function(autograph=False)
    def test_rmse():
        predictions = tf.clip_by_value(score(tu, ti)[0], low, high)
        return tf.sqrt(tf.reduce_mean((predictions - tr) ** 2))

    began = time.perf_counter()
    epoch.get_concrete_function(tf.constant(0))
    print(f"variables {began - start:.3f} s, epoch trace {time.perf_counter() - began:.3f} s")
    for e in range(args.epochs):
        began = time.perf_counter()
        epoch(tf.constant(e))
        trained = time.perf_counter()
        rmse = float(test_rmse())
        now = time.perf_counter()
        print(f"epoch {e + 1}: train {trained - began:.3f} s, test {now - trained:.3f} s, "
              f"RMSE {rmse:.4f}, {now - start:.3f} s from the start")  # fmt: skip
        if rmse <= args.target:
            print(f"reached {args.target} after {e + 1} epochs in {now - start:.3f} s, tracing included")
            return
    print(f"not reached {args.target} in {args.epochs} epochs")


if __name__ == "__main__":
    main()
