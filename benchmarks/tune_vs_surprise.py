"""`tfrec tune` beside Surprise's GridSearchCV on tfrec's own split, both measured in this run.

Run: python benchmarks/tune_vs_surprise.py [--models biased-mf ...] [--trials 60] [--jobs 2] [--seeds 42 ...]
     [--folds K]
Needs `pip install 'tfrec[tune]' scikit-surprise` (Surprise is a source build, not a tfrec dependency).

Both sides see only the training part of `tfrec.data.split(load("ml-100k"), "ratio", seed)`:
Surprise's GridSearchCV tries 72 settings of its SVD (biased MF by per-sample SGD) by 3-fold cross
validation on it and refits the best on all of it; `tfrec tune` ranks each model's settings on the
validation cut of it (with ``--folds K``, on the mean over K cuts that share no rating) and retrains the
best on all of it (refit). The test part scores each side once.
Prints a Markdown table: each model's default test RMSE (`tfrec train`) beside its tuned one. With
several ``--seeds`` each seed is a whole run on its own split (both sides searched again), and the table
ends with each side's mean and standard deviation over the seeds.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tfrec  # noqa: E402
from tfrec import data, train, tune  # noqa: E402
from tfrec.config import TrainConfig  # noqa: E402

#: 3 x 2 x 3 x 4 = 72 settings around Surprise's defaults (100 factors, 20 epochs, lr 0.005, reg 0.02).
GRID = {"n_factors": [50, 100, 150], "n_epochs": [20, 30], "lr_all": [0.002, 0.005, 0.01],
        "reg_all": [0.02, 0.05, 0.1, 0.2]}  # fmt: skip


def surprise_side(parts, jobs: int) -> dict:
    import pandas as pd
    import surprise
    from surprise.model_selection import GridSearchCV

    frame = pd.DataFrame({"user": parts.train.user_id, "item": parts.train.movie_id, "rating": parts.train.rating})
    dataset = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 5)))
    start = time.perf_counter()
    search = GridSearchCV(surprise.SVD, GRID, measures=["rmse"], cv=3, n_jobs=jobs, joblib_verbose=0)
    search.fit(dataset)
    best = search.best_estimator["rmse"]
    best.fit(dataset.build_full_trainset())  # refit on the whole training part
    seconds = time.perf_counter() - start
    predicted = np.array([best.predict(u, i).est for u, i in zip(parts.test.user_id, parts.test.movie_id)])
    rmse = float(np.sqrt(np.mean((predicted - parts.test.rating) ** 2)))
    return {"rmse": rmse, "params": search.best_params["rmse"], "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["biased-mf"])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--folds", type=int, default=1, help="validation cuts each tfrec trial is ranked on")
    parser.add_argument("--confirm", type=int, default=5, help="finalists fit on more cuts (tfrec tune --confirm)")
    parser.add_argument("--no-surprise", action="store_true")
    args = parser.parse_args()
    tfrec.train.configure_threads(args.models[0])
    print(
        f"ml-100k, split ratio, tfrec {tfrec.__version__}, tfrec tune --folds {args.folds} --confirm {args.confirm}; "
        "Surprise SVD by GridSearchCV 3-fold over 72 settings"
    )
    print(
        "| seed | fingerprint | model | default test RMSE | tuned test RMSE | best validation RMSE | trials (pruned) "
        "| search s | best | finalists: mean on the cuts, s | the search's own best: trial, test RMSE "
        "| Surprise SVD tuned | its settings | Surprise s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    scores = {}  # (model or "surprise", "default" or "tuned") -> test RMSEs over the seeds
    for seed in args.seeds:
        parts = data.split(data.load("ml-100k"), "ratio", seed=seed)
        side = None if args.no_surprise else surprise_side(parts, args.jobs)
        if side:
            scores.setdefault(("Surprise SVD", "tuned"), []).append(side["rmse"])
        surprise_cells = f"{side['rmse']:.4f} | {side['params']} | {side['seconds']:.1f}" if side else "- | - | -"
        for model in args.models:
            default = train.run(TrainConfig(model=model, data="ml-100k", seed=seed), verbose=0).report
            with tempfile.TemporaryDirectory() as out:
                config = TrainConfig(model=model, data="ml-100k", seed=seed)
                result = tune.tune(config, trials=args.trials, jobs=args.jobs, folds=args.folds, out=out,
                                   confirm=args.confirm, announce=None)  # fmt: skip
            best, trials = result.report["best"], result.report["trials"]
            scores.setdefault((model, "default"), []).append(default["test_rmse"])
            scores.setdefault((model, "tuned"), []).append(best["test_rmse"])
            pruned = sum(t["state"] == "pruned" for t in trials)
            shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in best["params"].items())
            finalists, unconfirmed = confirmation_cells(result, model, seed, scores)
            print(f"| {seed} | {parts.fingerprint} | {model} | {default['test_rmse']:.4f} | {best['test_rmse']:.4f} | "
                  f"{best['validation']:.4f} | {len(trials)} ({pruned}) | {result.report['search_seconds']:.0f} | "
                  f"{shown} | {finalists} | {unconfirmed} | {surprise_cells} |", flush=True)  # fmt: skip
            surprise_cells = "(same) | | "
    if len(args.seeds) > 1:
        print(f"\nOver seeds {' '.join(map(str, args.seeds))}: mean ± standard deviation (min-max) of the test RMSE")
        for (name, kind), values in scores.items():
            spread = f"{np.std(values):.4f} ({min(values):.4f}-{max(values):.4f})"
            print(f"- {name}, {kind}: {np.mean(values):.4f} ± {spread}")


def confirmation_cells(result, model: str, seed: int, scores: dict) -> tuple[str, str]:
    """The finalists' cells, and the test RMSE the search's own best trial (by its one score) would have given."""
    confirmation = result.report["confirmation"]
    if not confirmation:
        return "-", "-"
    rows = confirmation["finalists"]
    means = "; ".join(f"{row['trial']}: {row['mean']:.4f}" for row in rows)
    own = rows[0]["trial"]  # the finalists come in the search's order
    if own == result.report["best"]["trial"]:
        test = result.report["best"]["test_rmse"]
    else:
        params = next(t["params"] for t in result.report["trials"] if t["number"] == own)
        test = train.run(TrainConfig(model=model, data="ml-100k", seed=seed, **params), verbose=0).report["test_rmse"]
    scores.setdefault((model, "the search's own best"), []).append(test)
    return f"{means} ({confirmation['seconds']:.0f} s)", f"{own}, {test:.4f}"


if __name__ == "__main__":
    main()
