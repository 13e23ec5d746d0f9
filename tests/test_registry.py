"""The model family is the unit of extension: one registry, names only in their family's file, no cycles."""

import ast
import dataclasses
import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import toy_family
from conftest import ENV
from tfrec import families

ROOT = Path(__file__).resolve().parents[1]


def _python_files(*packages):
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def test_each_model_name_is_written_only_in_its_family_file():
    """Nothing outside a family's own file switches on (or lists) its model names: they come from the registry."""
    names = set(families.names())
    assert len(names) >= 9
    home = {n: ROOT / (families.family(n).module.replace(".", "/") + ".py") for n in names}
    strays = []
    for path in _python_files("tfrec", "parity"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names and home[node.value] != path:
                strays.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not strays, "model names outside their family's file:\n" + "\n".join(strays)


def test_the_name_check_catches_a_name_written_elsewhere(tmp_path):
    """The check above can fail: the same walk finds a name planted in another file."""
    planted = tmp_path / "switch.py"
    name = families.names()[0]
    planted.write_text(f'if model == "{name}":\n    pass\n')
    found = [n.value for n in ast.walk(ast.parse(planted.read_text())) if isinstance(n, ast.Constant)]
    assert name in found


def test_declarations_read_from_source_are_the_families_the_modules_define():
    """The registry reads ``FAMILY = Family(...)`` without importing (the CLI stays free of TensorFlow);
    importing each module gives the same family."""
    for family in families.families():
        module = importlib.import_module(family.module)
        assert dataclasses.replace(module.FAMILY, module=family.module) == family
        for name in family.variants:
            cls = families.model_class(name)
            assert cls.__module__ == family.module and issubclass(cls, _rating_model())


def _rating_model():
    from tfrec.models import RatingModel

    return RatingModel


def test_a_bad_declaration_is_one_clear_error(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text('FAMILY = Family(model="X", title="x", variants={"x": {}}, defaults=make_defaults())\n')
    with pytest.raises(families.TfrecError, match="broken.py:1: FAMILY's arguments must be literal values"):
        families._literal_family(path)
    with pytest.raises(families.TfrecError, match="model name.*mf.*taken"):
        families.register(families.Family(model="Y", title="y", variants={"mf": {}}, defaults={}))
    with pytest.raises(families.TfrecError, match="unknown model 'nope': use one of mf, biased-mf"):
        families.family("nope")


def _imports(path: Path, module: str) -> set[str]:
    """The tfrec modules ``module`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m.startswith("tfrec.") and m != module}


def test_tfrec_has_no_import_cycle():
    modules = {}
    for path in _python_files("tfrec"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {m: {i for i in _imports(p, m) if i in modules} for m, p in modules.items()}
    # A package's __init__ importing its own submodules is how a package is built, not a cycle.
    graph = {m: {i for i in deps if not i.startswith(m + ".")} for m, deps in graph.items()}
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(" -> ".join(stack[stack.index(n) :] + [n]))
            elif n not in state:
                visit(n, stack + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert len(graph) > 20 and not cycles, cycles


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, by its full name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


def test_the_harness_stays_outside_tfrec():
    """tfrec imports no parity module (the harness's commands come in by entry points), and parity
    imports no part of tfrec's command line (it owns its argument helpers)."""
    into_parity = [f"{p.relative_to(ROOT)}: {m}" for p in _python_files("tfrec") for m in _imported(p)
                   if m.split(".")[0] == "parity"]  # fmt: skip
    into_cli = [f"{p.relative_to(ROOT)}: {m}" for p in _python_files("parity") for m in _imported(p)
                if m == "tfrec.cli" or m.startswith("tfrec.cli.")]  # fmt: skip
    assert not into_parity and not into_cli, into_parity + into_cli
    assert _imported(Path(__file__)) >= {"toy_family"}  # the walk reads imports (this file's own)
    from tfrec import registry

    assert {"parity", "bench"} <= set(registry.discover_commands().names())  # installed by pyproject's entry points


BLOCK_PARITY_AND_TORCH = """
import importlib, importlib.abc, pkgutil, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("parity", "torch"):
            raise ImportError(f"{name} is blocked in this process")

sys.meta_path.insert(0, Block())
import tfrec
loaded = []
for info in pkgutil.walk_packages(tfrec.__path__, "tfrec."):
    if info.name != "tfrec.__main__":
        importlib.import_module(info.name)
        loaded.append(info.name)
assert "torch" not in sys.modules and not any(m.split(".")[0] == "parity" for m in sys.modules)
print(len(loaded))
"""


def test_every_tfrec_module_loads_with_parity_and_torch_blocked():
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_PARITY_AND_TORCH], capture_output=True, text=True, env=ENV, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.strip().splitlines()[-1]) > 25


def test_the_command_line_knows_every_model_without_tensorflow():
    """`tfrec train --help` lists the registry's models, grouped options and defaults, and loads no TensorFlow."""
    script = (
        "import sys, contextlib, io\nfrom tfrec import cli\nout = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n    try:\n        cli.main(['train', '--help'])\n"
        "    except SystemExit:\n        pass\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\nprint(out.getvalue())"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    for family in families.families():
        assert f"{family.title} ({', '.join(family.variants)})" in result.stdout or not family.options
        for name in family.variants:
            assert name in result.stdout


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """The test's own family trained by `tfrec.train.run` and exported, with nothing in tfrec naming it."""
    from tfrec import export
    from tfrec.config import TrainConfig
    from tfrec.train import run

    root = tmp_path_factory.mktemp("toy")
    with toy_family.registered():
        config = TrainConfig(model=toy_family.NAME, data="synthetic:users=300,items=200,ratings=30000,seed=4")
        result = run(config, verbose=0)
        export.save(result.model, root / "saved", rated=result.train)
    return result, root


def test_a_family_registered_outside_tfrec_trains_through_run(toy_run):
    """Biases only, on data planted with factors: better than the global mean, short of what factors reach."""
    from tfrec import data

    result, _ = toy_run
    summary = result.report
    parts = data.split(data.load(summary["config"]["data"]), "ratio", seed=42)
    mean_only = float(np.sqrt(np.mean((parts.test.rating - parts.train.rating.mean()) ** 2)))
    assert summary["config"]["learning_rate"] == toy_family.FAMILY.defaults["learning_rate"]  # its own defaults
    assert type(result.model) is toy_family.BaselinePredictor
    assert summary["test_rmse"] < mean_only - 0.05, (summary["test_rmse"], mean_only)


def test_a_family_registered_outside_tfrec_exports_a_saved_model_served_without_it(toy_run):
    from conftest import BLOCK_TFREC

    result, root = toy_run
    model, train = result.model, result.train
    users, items = list(train.user_ids[train.user[:5]]) + ["nobody"], list(train.item_ids[train.item[:5]]) + ["x"]
    script = BLOCK_TFREC + (
        "import json, tensorflow as tf\nloaded = tf.saved_model.load(sys.argv[1])\nu, i = json.loads(sys.argv[2])\n"
        "p = loaded.signatures['serving_default'](user_id=tf.constant(u), movie_id=tf.constant(i))['predictions']\n"
        "r = loaded.signatures['recommend'](user_id=tf.constant(u[:2]), k=tf.constant(4))['movie_id']\n"
        "print(json.dumps([p.numpy().tolist(), r.numpy().shape[1]]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(root / "saved"), json.dumps([users, items])],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    served, k = json.loads(result.stdout.strip().splitlines()[-1])
    import tensorflow as tf

    expected = model({"user_id": tf.constant(users), "movie_id": tf.constant(items)}).numpy()
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-6)
    assert k == 4


def test_a_family_registered_outside_tfrec_is_on_the_command_line_with_an_option_of_its_own(tmp_path, capsys):
    """The toy family's own option, which no tfrec file names, is a flag under its title, checked against its
    spec, recorded in the report and passed to the constructor (a model that scales its item biases by 0)."""
    from tfrec import cli, export

    spec = "synthetic:users=50,items=40,ratings=2000,seed=2"
    with toy_family.registered():
        with pytest.raises(SystemExit):
            cli.main(["train", "--help"])
        listed = capsys.readouterr().out
        status = cli.main(
            ["train", "--model", toy_family.NAME, "--data", spec, "--item-bias-scale", "0", "--epochs", "2",
             "--quiet", "--json", str(tmp_path / "run.json"), "--save", str(tmp_path / "run")]
        )  # fmt: skip
        out = capsys.readouterr().out
        refused = cli.main(["train", "--model", toy_family.NAME, "--data", spec, "--item-bias-scale", "-1"])
        assert refused == 1 and "--item-bias-scale must be at least 0, got -1" in capsys.readouterr().err
        model = export.load_keras(tmp_path / "run" / "model.keras")
    assert f"{toy_family.FAMILY.title} ({toy_family.NAME})" in listed and "--item-bias-scale" in listed, listed
    assert status == 0 and f"model       {toy_family.NAME}" in out
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["config"]["model"] == toy_family.NAME and report["config"]["item_bias_scale"] == 0.0
    assert model.item_bias_scale == 0.0  # the constructor got it (and the saved model keeps it)
    assert toy_family.NAME not in families.names()  # unregistered again
    with pytest.raises(SystemExit) as no_flag:  # no such flag without the family
        cli.main(["train", "--data", spec, "--item-bias-scale", "1"])
    assert no_flag.value.code == 2


def test_a_family_registered_outside_tfrec_imports_pytorch_weights_through_its_own_layout(tmp_path, capsys):
    """The toy family's PyTorch layout, registered by a test, is what ``tfrec import-torch`` uses: tensor
    names of its own, a mean read from the weights, and ``--verify`` against its numpy forward pass in
    a separate process. Without the layout the command names what is missing in one line."""
    from safetensors.numpy import save_file

    from tfrec import cli

    rng = np.random.default_rng(3)
    users, items = [f"u{k}" for k in range(30)], [f"i{k}" for k in range(20)]
    state = {"bu": rng.normal(0, 0.3, (30, 1)).astype(np.float32), "bi": rng.normal(0, 0.3, (20, 1)).astype(np.float32),
             "mean": np.array(3.25, np.float32)}  # fmt: skip
    save_file(state, str(tmp_path / "toy.safetensors"))
    (tmp_path / "users.txt").write_text("\n".join(users) + "\n")
    (tmp_path / "items.txt").write_text("\n".join(items) + "\n")
    common = ["import-torch", str(tmp_path / "toy.safetensors"), "--model", toy_family.NAME,
              "--users", str(tmp_path / "users.txt"), "--items", str(tmp_path / "items.txt")]  # fmt: skip
    with toy_family.registered():
        missing = cli.main([*common, "--export", str(tmp_path / "none")])
        refused = capsys.readouterr().err
        with toy_family.layout_registered():
            status = cli.main([*common, "--export", str(tmp_path / "toy"), "--verify", "sample", "--pairs", "200"])
        out = capsys.readouterr().out
    assert missing == 1 and "BaselinePredictor has no PyTorch layout" in refused and refused.count("\n") == 1, refused
    assert not (tmp_path / "none").exists()
    assert status == 0 and "PASS: 200 pairs" in out, out
    import tensorflow as tf

    served = tf.saved_model.load(str(tmp_path / "toy")).signatures["serving_default"]
    got = served(user_id=tf.constant(["u3", "u7"]), item_id=tf.constant(["i5", "i0"]))["predictions"].numpy()
    want = 3.25 + state["bu"][[3, 7], 0] + state["bi"][[5, 0], 0]
    np.testing.assert_allclose(got.reshape(-1), want, rtol=0, atol=1e-5)


def test_every_public_subpackage_is_an_attribute_after_import_tfrec():
    import pkgutil

    import tfrec

    # All but the command's module, which sets TensorFlow's log level for the process when imported.
    public = {m.name for m in pkgutil.iter_modules(tfrec.__path__) if not m.name.startswith("_")} - {"cli"}
    assert public == set(tfrec._SUBMODULES), public ^ set(tfrec._SUBMODULES)
    for name in sorted(public):
        assert getattr(tfrec, name).__name__ == f"tfrec.{name}"


def _name_lists(path: Path, names: set) -> list[str]:
    """Literal tuples, lists and sets in ``path`` holding two or more of ``names``: a list apart from its registry."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            listed = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names]
            if len(listed) >= 2:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {listed}")
    return found


@pytest.mark.parametrize("kind", ["optimizers", "strategies", "sources"])
def test_no_list_of_registered_names_outside_the_registry(kind):
    """Optimizer, strategy and data source names are listed once, in tfrec.registry; everything else asks it."""
    from tfrec import registry

    names = {e.name.rstrip(":") for e in getattr(registry, kind).entries()} | set(getattr(registry, kind).names())
    strays = [s for path in _python_files("tfrec", "parity") if path.name != "registry.py"
              for s in _name_lists(path, names)]  # fmt: skip
    assert not strays, f"{kind} names listed outside tfrec/registry.py:\n" + "\n".join(strays)
    planted = ROOT / "tests" / "toy_family.py"  # the check can fail: a file holding such a list is found
    assert _name_lists(planted, {"BaselinePredictor", "toy-biases"}) == [] and _name_lists(
        Path(__file__), set(registry.optimizers.names())
    ), "the walk finds the planted list below"


PLANTED_OPTIMIZER_LIST = ("adam", "sgd")  # what the check above must find in this file


def _toy_sgd(learning_rate):
    """A test's own optimizer: Keras' SGD with momentum, registered under a name tfrec does not know."""
    import tensorflow as tf

    return tf.keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)


def _toy_source(name, **_):
    """A test's own data source: ``toy:N`` is N users' planted ratings (biases only), built in memory."""
    from tfrec.data import Ratings

    users = int(name.partition(":")[2] or 60)
    rng = np.random.default_rng(5)
    u, i = rng.integers(0, users, 40 * users), rng.integers(0, 50, 40 * users)
    rating = 3.5 + rng.normal(0, 0.8, users)[u] + rng.normal(0, 0.8, 50)[i] + rng.normal(0, 0.3, len(u))
    return Ratings.from_arrays([f"u{k}" for k in u], [f"i{k}" for k in i], rating, name="toy", source=name)


def _one_device(shards):
    import tensorflow as tf

    return tf.distribute.OneDeviceStrategy("/cpu:0")


def test_an_optimizer_a_strategy_and_a_data_source_registered_in_a_test_train_through_tfrec_train(tmp_path, capsys):
    """Each door in use: nothing in tfrec names them, and `tfrec train` takes all three (and lists them)."""
    from tfrec import cli, registry

    with (
        registry.optimizers.registered("toy-momentum", _toy_sgd, help="SGD with momentum 0.9"),
        registry.strategies.registered("toy-one-device", _one_device, help="OneDeviceStrategy on the CPU"),
        registry.sources.registered("toy:", _toy_source, prefix=True, help="toy:USERS"),
    ):
        with pytest.raises(SystemExit):
            cli.main(["train", "--help"])
        listed = capsys.readouterr().out
        status = cli.main(["train", "--model", "biased-mf", "--data", "toy:80", "--optimizer", "toy-momentum",
                           "--lr", "0.05", "--strategy", "toy-one-device", "--epochs", "20", "--quiet",
                           "--json", str(tmp_path / "run.json")])  # fmt: skip
    assert "toy-momentum (SGD with momentum 0.9)" in listed and "toy-one-device" in listed, listed
    assert status == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "run.json").read_text())
    assert report["config"]["optimizer"] == "toy-momentum" and report["config"]["strategy"] == "toy-one-device"
    table = _toy_source("toy:80")
    spread = float(np.std(table.rating))
    assert report["test_rmse"] < spread - 0.3, (report["test_rmse"], spread)  # learned the planted biases
    for registry_ in (registry.optimizers, registry.strategies, registry.sources):
        assert not any(n.startswith("toy") for n in registry_.names())  # unregistered again
    assert cli.main(["train", "--data", "toy:80", "--epochs", "1"]) == 1
    assert "unknown dataset 'toy:80'" in capsys.readouterr().err


def test_a_scaled_default_follows_the_data_and_a_given_value_does_not():
    """``Family.scaled``: biased MF's L2 left to its default is 5.8 over the ratings per user and item of
    the part it fits on (two digits); a value given, or a family that scales nothing, is left alone."""
    from tfrec.config import TrainConfig
    from tfrec.data.synthetic import generate

    table = generate(users=100, items=50, ratings=2000, seed=3).ratings  # 2000 / sqrt(100 * 50) = 28.3
    assert families.ratings_per_id(2000, 100, 50) == pytest.approx(28.28, abs=0.01)
    defaulted, given, other = (TrainConfig(model="biased-mf"), TrainConfig(model="biased-mf", l2=0.5),
                               TrainConfig(model="ncf"))  # fmt: skip
    for config in (defaulted, given, other):
        config.for_table(table)
    assert (defaulted.l2, given.l2, other.l2) == (0.21, 0.5, 0.01)
    assert TrainConfig.from_dict(defaulted.as_dict()).l2 == 0.21  # a run's recorded config keeps the value it ran
    with pytest.raises(families.TfrecError, match="scaled maps one of learning_rate, l2 to a positive number"):
        families.Family(model="Z", title="z", variants={"z": {}}, defaults={}, scaled={"dim": 3.0})
