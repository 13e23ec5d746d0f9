"""`tfrec tune`: a search of a family's declared settings with Optuna, ranked on the validation cut only,
kept in a SQLite study that a killed search resumes, and a best.json that `tfrec train --config` trains."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import toy_family
from conftest import ENV, run_tfrec
from tfrec import families
from tfrec.errors import TfrecError

optuna = pytest.importorskip("optuna", reason="optuna not installed (the README install command adds the tune extra)")

SPEC = "synthetic:users=80,items=50,ratings=3000,seed=1"
FLAGS = ["--model", "biased-mf", "--data", SPEC, "--epochs", "6"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """Five trials of biased MF on small planted data, through the command."""
    out = tmp_path_factory.mktemp("tune") / "bmf"
    result = run_tfrec("tune", *FLAGS, "--trials", "5", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout, json.loads((out / "report.json").read_text())


def test_every_trial_is_reported_with_settings_from_the_family_s_space(searched):
    out, printed, report = searched
    family = families.family("biased-mf")  # the settings every family has, and its own options' ranges
    space = {**family.search, **{name: spec["search"] for name, spec in family.options.items() if "search" in spec}}
    assert "bias_l2" in space
    finished = [t for t in report["trials"] if t["state"] in ("complete", "pruned")]
    assert len(finished) == 5 and report["space"].keys() == space.keys()
    for trial in finished:
        for name, value in trial["params"].items():
            low, high = space[name].get("low"), space[name].get("high")
            assert value in space[name]["choices"] if "choices" in space[name] else low <= value <= high, (name, value)
        assert trial["per_epoch"] and all(0 < v < 2 for v in trial["per_epoch"].values())
    assert printed.count("\ntrial ") + printed.startswith("trial ") == 5  # a line per trial as it ended
    complete = sorted((t for t in finished if t["state"] == "complete"), key=lambda t: t["value"])
    values = [t["value"] for t in complete]
    assert max(values) - min(values) > 0.02  # the settings tried differ in what they reach
    # the five best (all that completed, here) fit again on two more validation cuts; the best mean wins
    confirmation = report["confirmation"]
    assert confirmation["cuts"] == 3 and [row["trial"] for row in confirmation["finalists"]] == [
        t["number"] for t in complete[:5]
    ]
    for row, trial in zip(confirmation["finalists"], complete):
        cuts = row["validation_cuts"]
        assert len(cuts) == 3 and cuts[0] == trial["value"] and len(set(cuts)) == 3, row  # a fit on each cut
        assert row["mean"] == pytest.approx(sum(cuts) / 3)
    chosen = min(confirmation["finalists"], key=lambda row: row["mean"])
    assert report["best"]["trial"] == chosen["trial"]
    assert report["best"]["validation"] == next(t["value"] for t in complete if t["number"] == chosen["trial"])
    assert f"chosen as the best mean, {chosen['mean']:.4f} on 3 cuts, of the {len(complete[:5])} best" in printed
    # the best settings learned: far under the training mean on the test part, scored once at the end
    assert report["best"]["test_rmse"] < report["best"]["mean_test_rmse"] - 0.2
    assert (out / "study.db").read_bytes()[:16] == b"SQLite format 3\x00"
    for plot in ("history.png", "importances.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot


def test_tfrec_train_config_reproduces_the_best_trial(searched, tmp_path):
    out, _, report = searched
    best = json.loads((out / "best.json").read_text())
    assert {k: best[k] for k in report["best"]["params"]} == report["best"]["params"]
    result = run_tfrec("train", "--config", str(out / "best.json"), "--quiet", "--json", str(tmp_path / "run.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["validation"]["val_rmse"] == report["best"]["validation"] == report["best"]["validation_again"]
    assert run["test_rmse"] == report["best"]["test_rmse"]
    # a flag given beside the file wins over it
    from tfrec import cli

    status = cli.main(["train", "--config", str(out / "best.json"), "--epochs", "1", "--quiet",
                       "--json", str(tmp_path / "one.json")])  # fmt: skip
    assert status == 0 and json.loads((tmp_path / "one.json").read_text())["epochs"] == 1


def _states(storage, name):
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{storage}")
    return [(t.number, t.state.name, t.params) for t in study.trials]


def test_a_killed_search_resumes_from_its_study(tmp_path):
    """Killed mid-trial: the finished trials stay, the interrupted one is tried again with its settings."""
    out, name = tmp_path / "killed", f"biased-mf on {SPEC}"
    command = [sys.executable, "-m", "tfrec", "tune", *FLAGS[:-1], "12", "--trials", "3", "--out", str(out)]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # killed once two trials are in and a third is running
            time.sleep(0.2)
            if (out / "study.db").exists():
                try:
                    rows = _states(out / "study.db", name)
                except Exception:  # the study is being created
                    continue
                complete = [p for _, s, p in rows if s == "COMPLETE"]
                running = [p for _, s, p in rows if s == "RUNNING"]
                # the running trial has drawn all its settings (a kill between two draws leaves some to draw again)
                if len(complete) >= 2 and running and len(running[0]) == len(complete[0]):
                    break
        else:
            pytest.fail("the search did not reach its third trial in 120 s")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    before = _states(out / "study.db", name)
    interrupted = [(n, p) for n, s, p in before if s == "RUNNING"]
    assert len(interrupted) == 1
    result = run_tfrec("tune", *FLAGS[:-1], "12", "--trials", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"resuming: {sum(s == 'COMPLETE' for _, s, _ in before)} finished trials")
    after = _states(out / "study.db", name)
    kept = {n: p for n, s, p in before if s == "COMPLETE"}
    assert all((n, "COMPLETE", p) in after for n, p in kept.items())  # nothing finished was run again
    number, params = interrupted[0]
    assert (number, "FAIL", params) in after
    assert any(s in ("COMPLETE", "PRUNED") and p == params and n > number for n, s, p in after)  # tried again
    assert sum(s in ("COMPLETE", "PRUNED") for _, s, _ in after) == 3
    assert f"(trial {number} again)" in result.stdout
    seen = [tuple(sorted(p.items())) for n, s, p in after if s != "FAIL"]
    assert len(set(seen)) == len(seen)  # a resumed sampler draws new settings, not the first ones again


def _rated(name, **_):
    """Planted ratings; ``tune-b:`` has every test-part rating replaced, nothing else."""
    from tfrec import data

    table = data.load(SPEC)
    rating = table.rating.copy()
    if name.startswith("tune-b"):
        test = data.split(table, "ratio", seed=42).test
        in_test = set(zip(test.user_id, test.movie_id))
        mask = np.array([pair in in_test for pair in zip(table.user_id, table.movie_id)])
        assert 0 < mask.sum() < len(mask)
        rating[mask] = 6.0 - rating[mask]
    users = np.asarray(table.user_id)
    items = np.asarray(table.movie_id)
    return data.Ratings.from_arrays(users, items, rating, name=name, source=name)


def test_the_search_never_reads_the_test_part(tmp_path):
    """Two data sets that differ only in the test part's ratings give the same trials, to the bit;
    only the test score of the best settings, computed once at the end, tells them apart. The trials
    rank on two validation cuts (folds) and the finalists on a third, so no cut reads it either."""
    from tfrec import registry, tune
    from tfrec.config import TrainConfig

    results = {}
    with (
        registry.sources.registered("tune-a:", _rated, prefix=True),
        registry.sources.registered("tune-b:", _rated, prefix=True),
    ):
        for which in ("a", "b"):
            config = TrainConfig(model="biased-mf", data=f"tune-{which}:x", epochs=4)
            results[which] = tune.tune(config, trials=2, folds=2, out=tmp_path / which, announce=None).report
    a, b = results["a"], results["b"]
    strip = [{k: t[k] for k in ("state", "params", "value", "per_epoch", "folds")} for t in a["trials"]]
    assert strip == [{k: t[k] for k in ("state", "params", "value", "per_epoch", "folds")} for t in b["trials"]]
    assert abs(a["best"]["test_rmse"] - b["best"]["test_rmse"]) > 0.1
    # the finalists' third cut (a fit each, after the search) does not read it either
    assert a["confirmation"]["cuts"] == 3 and len(a["confirmation"]["finalists"]) == 2
    assert a["confirmation"]["finalists"] == b["confirmation"]["finalists"]
    # a trial scores the mean of its two cuts, which differ; the best settings trained again
    # (`tfrec train --config best.json`) stop on the first cut and reproduce its score to the bit
    for trial in a["trials"]:
        first, second = trial["folds"]
        assert trial["value"] == pytest.approx((first + second) / 2, abs=1e-12) and abs(first - second) > 1e-4
    assert a["folds"] == 2 and a["best"]["validation_again"] == a["best"]["validation_folds"][0]


def test_a_family_registered_outside_tfrec_is_tunable_with_its_own_option(tmp_path):
    from tfrec import tune
    from tfrec.config import TrainConfig

    with toy_family.registered():
        config = TrainConfig(model=toy_family.NAME, data=SPEC, epochs=3)
        assert set(tune.space(config)) == {"learning_rate", "item_bias_scale"}
        report = tune.tune(config, trials=2, out=tmp_path, announce=None).report
    scales = [t["params"]["item_bias_scale"] for t in report["trials"]]
    assert len(set(scales)) == 2 and all(0.0 <= s <= 2.0 for s in scales)


@pytest.mark.parametrize(
    "args, status, message",
    [
        (["--trials", "0"], 2, "argument --trials: must be a positive integer"),
        (["--validation-fraction", "0"], 1, "a search ranks settings on the validation cut"),
        (["--fix", "momentum=1"], 1, "--fix momentum: biased-mf searches learning_rate, dim, l2, batch_size"),
        (["--optimizer", "adam,nope"], 1, "unknown optimizer 'nope'"),
        (["--trials", "3", "--time", "5"], 2, "not allowed with argument"),
        (["--split", "foo"], 1, "unknown split 'foo'"),  # once, not a failed trial after another
        (["--fix", "epochs=5"], 1, "(a setting of every trial: --epochs)"),
        (["--fix", "dim=abc"], 1, "--fix dim=abc: not an integer"),
        (["--folds", "11"], 1, "folds must be from 1 to 10 (validation cuts of 0.1"),
        (
            ["--model", "ncf", "--feedback", "implicit", "--folds", "2"],
            1,
            "more than one validation cut (folds) is for",
        ),
    ],
)
def test_command_line_mistakes_are_one_line(args, status, message, tmp_path, capsys):
    from tfrec import cli

    try:
        code = cli.main(["tune", *FLAGS, "--out", str(tmp_path / "t"), *args])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if not line.startswith("tfrec: note:")]  # TF runs in-process
    assert code == status and len(errors) == 1 and message in errors[0], err
    assert not (tmp_path / "t" / "best.json").exists()


def test_a_study_of_other_fixed_settings_is_refused(searched, capsys):
    from tfrec import cli

    out, _, _ = searched
    code = cli.main(["tune", *FLAGS[:-1], "9", "--trials", "7", "--out", str(out)])
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("tfrec: note:")]
    assert code == 1 and len(errors) == 1 and "searched with other fixed settings (epochs differ)" in errors[0], errors


def test_a_study_of_a_rewritten_file_is_refused_not_resumed(tmp_path):
    """The same file name with other ratings in it is other data: resuming would rank old trials, scored
    on the old ratings, beside new ones."""
    from tfrec import data, tune
    from tfrec.config import TrainConfig

    path = tmp_path / "ratings.csv"
    config = TrainConfig(model="biased-mf", data=str(path), epochs=2)
    for seed, outcome in ((1, "searched"), (2, "refused")):
        table = data.generate(users=40, items=30, ratings=800, seed=seed).ratings
        rows = zip(table.user_id, table.movie_id, table.rating)
        path.write_text("user,item,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows))
        if outcome == "searched":
            tune.tune(config, trials=1, out=tmp_path / "t", announce=None)
            continue
        with pytest.raises(
            TfrecError, match=r"t/study.db: its study 'biased-mf on .*' searched other data \(the split's"
        ):
            tune.tune(config, trials=2, out=tmp_path / "t", announce=None)


def test_best_json_names_a_file_of_yours_so_it_trains_from_any_directory(tmp_path, monkeypatch):
    """A search run on ``ratings.csv`` here; ``tfrec train --config`` run from elsewhere reads the same file."""
    from tfrec import cli, data, tune
    from tfrec.config import TrainConfig

    (tmp_path / "work").mkdir()
    (tmp_path / "elsewhere").mkdir()
    table = data.generate(users=40, items=30, ratings=800, seed=1).ratings
    rows = "".join(f"{u},{i},{r}\n" for u, i, r in zip(table.user_id, table.movie_id, table.rating))
    (tmp_path / "work" / "ratings.csv").write_text("user,item,rating\n" + rows)
    monkeypatch.chdir(tmp_path / "work")
    result = tune.tune(TrainConfig(model="biased-mf", data="ratings.csv", epochs=2), trials=1, out="t", announce=None)
    best = json.loads((tmp_path / "work" / "t" / "best.json").read_text())
    assert Path(best["data"]).is_absolute() and Path(best["data"]).samefile(tmp_path / "work" / "ratings.csv")
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert cli.main(["train", "--config", "../work/t/best.json", "--quiet", "--json", "run.json"]) == 0
    run = json.loads((tmp_path / "elsewhere" / "run.json").read_text())
    assert run["validation"]["val_rmse"] == result.report["best"]["validation"]


def test_an_interrupted_trial_is_queued_again_once_whether_failed_or_left_running(tmp_path):
    """Ctrl-C lets Optuna mark its trial failed; SIGKILL leaves it running: both are tried again, once."""
    from tfrec import _search

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    for value in (0.5, 0.7):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        study.tell(trial, value)
    failed = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(failed, state=optuna.trial.TrialState.FAIL)  # as after Ctrl-C
    running = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # as after SIGKILL
    assert _search.retry_interrupted(optuna, study) == 2
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert sorted(t.user_attrs["retry_of"] for t in waiting) == [failed.number, running.number]
    assert _search.retry_interrupted(optuna, study) == 0  # queued already: not again


def test_the_optimizer_can_be_a_searched_choice(tmp_path):
    from tfrec import tune
    from tfrec.config import TrainConfig

    config = TrainConfig(model="biased-mf", data=SPEC, epochs=2)
    report = tune.tune(config, trials=2, out=tmp_path, optimizers=("adam", "lazy-adam"), announce=None).report
    assert report["space"]["optimizer"] == {"choices": ["adam", "lazy-adam"]}
    assert {t["params"]["optimizer"] for t in report["trials"]} <= {"adam", "lazy-adam"}
    assert json.loads((tmp_path / "best.json").read_text())["optimizer"] == report["best"]["params"]["optimizer"]


def test_a_search_range_is_checked_when_the_family_is_declared():
    with pytest.raises(TfrecError, match="search names 'momentum'"):
        families.Family(
            model="M", title="M", variants={"m": {}}, defaults={}, search={"momentum": {"low": 0, "high": 1}}
        )
    with pytest.raises(TfrecError, match="low > 0 on a log scale"):
        families.Family(model="M", title="M", variants={"m": {}}, defaults={},
                        search={"l2": {"low": 0.0, "high": 1.0, "log": True}})  # fmt: skip


def test_an_option_of_some_variants_is_searched_and_taken_only_for_them():
    """NCF's layers and dropout shape its MLP, which GMF does not have: a search of GMF leaves them out,
    and a value given to GMF is refused rather than ignored; a recorded GMF config (every option at its
    default) still loads."""
    from tfrec import tune
    from tfrec.config import TrainConfig

    assert {"layers", "dropout"} <= set(tune.space(TrainConfig(model="neumf")))
    assert not {"layers", "dropout"} & set(tune.space(TrainConfig(model="gmf")))
    with pytest.raises(TfrecError, match="^layers is an option of ncf, neumf, not of gmf$"):
        TrainConfig(model="gmf", layers="128,64").check()
    recorded = TrainConfig(model="gmf")
    recorded.check()
    assert "layers" in recorded.as_dict()
    TrainConfig.from_dict(recorded.as_dict()).check()
    with pytest.raises(TfrecError, match="option 'x' names unknown variants n"):
        families.Family(model="M", title="M", variants={"m": {}}, defaults={},
                        options={"x": {"type": "int", "default": 1, "variants": ["n"]}})  # fmt: skip
