"""Test RMSE of MF and biased MF on planted synthetic data, against its noise floor sigma.

Run: python benchmarks/planted.py
The same data and settings as the learning test in tests/test_models.py (which asserts
RMSE <= sigma + 0.05): 400 users x 300 items, 60K ratings, rank 4, sigma 0.5, 80/20 split.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from tfrec import data  # noqa: E402
from tfrec.config import TrainConfig  # noqa: E402
from tfrec.train import build  # noqa: E402


def main() -> None:
    planted = data.generate(users=400, items=300, ratings=60_000, rank=4, sigma=0.5, seed=0)
    split = data.random_split(planted.ratings, 0.2, seed=0)
    print("| model | test RMSE | floor (sigma) | margin |\n|---|---|---|---|")
    for model in ("mf", "biased-mf"):
        tf.keras.utils.set_random_seed(0)
        config = TrainConfig(model=model, dim=8, learning_rate=0.01, l2=0.02, steps_per_execution=8)
        net = build(model, split.train, config)
        net.fit(data.dataset(split.train, 512, shuffle=True, seed=0), epochs=25, verbose=0)
        rmse = net.evaluate(data.dataset(split.test, 8192), return_dict=True, verbose=0)["rmse"]
        print(f"| {model} | {rmse:.4f} | {planted.sigma} | {rmse - planted.sigma:+.4f} |")


if __name__ == "__main__":
    main()
