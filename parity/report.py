"""``python -m parity report [--out DIR]``: every case checked, as a Markdown table and learning curves.

Writes ``DIR/REPORT.md`` (case, reference, port, difference, tolerance,
pass/fail) and ``DIR/curves-MODEL.png`` per model: the reference's and the
port's per-epoch training loss on one plot (matplotlib, from the ``parity``
extra). Default DIR is ``parity/report``, which is committed.
"""

from __future__ import annotations

import datetime
import platform
from pathlib import Path

from parity.cases import ALL_CASES
from parity.check import check

REPORT = Path(__file__).resolve().parent / "report"


def _row(r: dict) -> str:
    verdict = "pass" if r["passed"] else "**FAIL**"
    if r["tier"] == "trajectory":
        return (
            f"| {r['case']} | trajectory over {r['steps']} steps: last epoch's mean loss; max relative "
            f"difference of step losses / test predictions | {r['reference_epoch_losses'][-1]:.6f} "
            f"| {r['port_epoch_losses'][-1]:.6f} | {r['max_rel_loss_diff']:.1e} / {r['max_rel_prediction_diff']:.1e} "
            f"| {r['tolerance']:.0e} | {verdict} |"
        )
    rmse, mae = r["test_rmse"], r["test_mae"]
    return (
        f"| {r['case']} | metric: test RMSE / MAE, mean over seeds "
        f"| {rmse['reference']:.4f} ± {rmse['reference_std']:.4f} / {mae['reference']:.4f} "
        f"| {rmse['port']:.4f} ± {rmse['port_std']:.4f} / {mae['port']:.4f} "
        f"| {rmse['difference']:+.4f} / {mae['difference']:+.4f} "
        f"| {rmse['tolerance']:.4f} / {mae['tolerance']:.4f} | {verdict} |"
    )


def _plots(results: list[dict], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    by_model: dict[str, list[dict]] = {}
    for r in results:
        by_model.setdefault(ALL_CASES[r["case"]].model, []).append(r)
    names = []
    for model, rs in by_model.items():
        fig, axes = plt.subplots(1, len(rs), figsize=(4 * len(rs), 3.2), squeeze=False)
        for ax, r in zip(axes[0], rs):
            epochs = range(1, len(r["reference_epoch_losses"]) + 1)
            ax.plot(epochs, r["reference_epoch_losses"], "o-", label="PyTorch reference")
            ax.plot(epochs, r["port_epoch_losses"], "x--", label="tfrec (TensorFlow)")
            ax.set_title(r["case"], fontsize=9)
            ax.set_xlabel("epoch")
            ax.set_ylabel("training loss (MSE)")
            ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"curves-{model}.png"
        fig.savefig(out / name, dpi=80, metadata={"Software": None})
        plt.close(fig)
        names.append(name)
    return names


def main(names, out: Path = REPORT) -> int:
    out.mkdir(parents=True, exist_ok=True)
    results = [check(name) for name in names or list(ALL_CASES)]
    plots = _plots(results, out)
    passed = sum(r["passed"] for r in results)
    lines = [
        "# Parity report: tfrec (TensorFlow) against the PyTorch references",
        "",
        f"Written by `python -m parity report` on {datetime.date.today()}, Python {platform.python_version()}; "
        f"{passed} of {len(results)} cases pass. Trajectory: the port starts from the reference's initial weights "
        "and replays its batches; differences are relative (predictions at the rating scale). Metric: each "
        "framework trains on its own on MovieLens-100K (80/20 seed 42 or the u1 fold), once per seed; the "
        "tolerance is max(0.005, 3 x the reference's std).",
        "",
        "| case | what is compared | reference | port | difference | tolerance | result |",
        "|---|---|---|---|---|---|---|",
        *[_row(r) for r in results],
        "",
        "Learning curves (training loss per epoch, both frameworks):",
        "",
        *[f"![{p}]({p})" for p in plots],
        "",
    ]
    (out / "REPORT.md").write_text("\n".join(lines))
    print(f"wrote {out / 'REPORT.md'} ({passed}/{len(results)} pass) and {len(plots)} plots")
    return 0 if passed == len(results) else 1
