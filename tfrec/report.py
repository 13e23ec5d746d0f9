"""A run's report as the table ``tfrec train`` prints: one row per fact, labels aligned."""

from __future__ import annotations

from tfrec import families
from tfrec.config import TrainConfig


def rows(config: TrainConfig, report: dict) -> list[tuple[str, str]]:
    """``(label, text)`` rows of a :func:`tfrec.train.run` report (with ``threads`` when the caller adds them)."""
    best = f" (best {report['best_epoch']})" if report["best_epoch"] else ""
    out = [
        ("model", config.model + (" (implicit)" if config.implicit else "")),
        ("data", f"{config.data}, split {config.split} (fingerprint {report['split_fingerprint']})"),
    ]
    if report["source"].startswith(f"{config.data} ("):  # a file of the user's own: the columns it took
        out.append(("read", report["source"]))
    if config.family.side_features:
        out.append(("features", ", ".join(config.features)))
    out += _scores(config, report)
    out.append(("settings", _settings(config, report.get("scaled") or {})))
    if _options(config):
        out.append(("options", _options(config)))
    out.append(("epochs", f"{report['epochs']}{best}"))
    if report["stopped"] == "epoch cap":
        out.append(("stopped", f"at the epoch cap ({config.epochs}) with the best epoch in the last "
                               f"{max(1, config.patience)}: validation may still improve, raise --epochs"))  # fmt: skip
    if report["refit_epochs"]:
        n = report["refit_epochs"]
        out.append(("refit", f"{n} epoch{'s' if n > 1 else ''} on the whole training part"))
    out.append(("fit seconds", f"{report['fit_seconds']:.2f}"))
    if config.splits_tables:
        out.append(("devices", f"tables on {', '.join(report['devices'])}, steps on {report['workers']} workers"))
    else:
        workers = f" on each of {report['workers']} workers" if report["workers"] > 1 else ""
        out.append(("devices", ", ".join(report["devices"]) + workers))
    if "threads" in report:
        per_op, inter_op = (report["threads"][k] or "one per core" for k in ("intra_op", "inter_op"))
        out.append(("threads", f"TensorFlow: {per_op} per op, {inter_op} inter-op"))
    if config.mixed_precision:
        out.append(("precision", f"mixed {config.mixed_precision} (Dense layers)"))
    return out


def _scores(config: TrainConfig, report: dict) -> list[tuple[str, str]]:
    if config.implicit:
        return [
            (f"test {name}", f"{report['test_' + name]:.4f}  (most popular: {report['popular_' + name]:.4f})")
            for name in ("hit_rate@10", "ndcg@10")
        ]
    mean = f"  (the training mean: {report['mean_test_rmse']:.4f})"
    return [("test RMSE", f"{report['test_rmse']:.4f}{mean}"), ("test MAE", f"{report['test_mae']:.4f}")]


def _settings(config: TrainConfig, scaled: dict) -> str:
    """The optimizer, learning rate, batch, dim and L2 the run used, and where one followed the data."""
    dim = f"dim {config.dim}, " if "dim" in config.family.arguments.values() else ""  # AutoRec has none
    text = f"{config.optimizer} {config.learning_rate:g}, batch {config.batch_size}, {dim}l2 {config.l2:g}"
    if "l2" in scaled:
        how = scaled["l2"]
        text += f" ({how['coefficient']:g} / {how['ratings_per_id']:g} ratings per user and item)"
    return text


def _options(config: TrainConfig) -> str:
    """The model's own options for this run's feedback (side features have their own row), as flags read."""
    feedback = "implicit" if config.implicit else "explicit"
    shown = []
    for name, spec in families.own_options(config.model).items():
        if name == "features" or spec.get("feedback", feedback) != feedback:
            continue
        value = config.options[name]
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else f"{value:g}" if isinstance(
            value, float) else str(value)  # fmt: skip
        shown.append(f"{name} {text}")
    return ", ".join(shown)


def table(rows_: list[tuple[str, str]]) -> str:
    """The rows as lines, labels padded to one width."""
    width = max(len(k) for k, _ in rows_)
    return "\n".join(f"{k:<{width}} {v}" for k, v in rows_)
