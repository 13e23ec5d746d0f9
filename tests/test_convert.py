"""PyTorch weights -> tfrec model -> SavedModel, checked against PyTorch's own predictions (tfrec.convert)."""

import os
import subprocess
import sys

import numpy as np
import pytest

import tfrec  # noqa: F401  (selects Keras 2)
from tfrec import convert, export
from tfrec.cli import main
from tfrec.convert import layouts, verify
from tfrec.errors import DataError

torch = pytest.importorskip("torch", reason="torch not installed (the README install command adds the parity extra)")
from safetensors.torch import save_file  # noqa: E402

from conftest import ENV, run_tfrec  # noqa: E402

FAMILIES = ["mf", "biased-mf", "ncf", "gmf", "neumf", "autorec-i", "autorec-u", "fm", "ffm"]


def _reference(name: str):
    """The parity reference of ``name`` on small planted data, trained one epoch; and its case data."""
    from parity.cases import SMALL, Case
    from parity.data import case_data
    from parity.reference import train as reference

    features = ("user_id", "movie_id")  # FM and FFM over the one-hot ids, as the FM tutorials
    case = Case(name=f"convert-{name}", model=name, optimizer="adam", learning_rate=0.01, batch_size=64, epochs=1,
                dim=4, layers=(8, 4), hidden=8, l2=0.0, init_std=0.3, data=SMALL, split="ratio", seed=3,
                features=features)  # fmt: skip
    d = case_data(case)
    torch.manual_seed(0)
    model = reference.build(case, d)
    if d.vectors is not None:
        inputs, labels, mask = None, torch.from_numpy(d.vectors), torch.from_numpy(d.mask)
    else:
        inputs, labels, mask = (torch.from_numpy(d.train_users), torch.from_numpy(d.train_items)), None, None
        labels = torch.from_numpy(d.train_ratings)
    reference.train(case, model, inputs, labels, mask, seed=1, record=False)
    model.eval()
    return model, d


def _torch_scores(model, d, users, items) -> np.ndarray:
    with torch.no_grad():
        if d.vectors is None:
            return model(torch.from_numpy(users), torch.from_numpy(items)).double().numpy()
        rows, columns = (items, users) if d.vectors.shape[1] == d.num_users else (users, items)
        decoded = model(torch.from_numpy(d.vectors * d.mask)[torch.from_numpy(rows)])
        return decoded[torch.arange(len(rows)), torch.from_numpy(columns)].double().numpy()


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Every family's reference saved as a .pt state dict and as safetensors, both imported and exported."""
    root = tmp_path_factory.mktemp("convert")
    out = {}
    for name in FAMILIES:
        model, d = _reference(name)
        users = d.train.user_ids[np.unique(d.train.user)].tolist()  # the reference's rows: sorted training ids
        items = d.train.item_ids[np.unique(d.train.item)].tolist()
        state = model.state_dict()
        torch.save(state, root / f"{name}.pt")
        save_file({k: v.contiguous() for k, v in state.items() if k in dict(model.named_parameters())},
                  str(root / f"{name}.safetensors"))  # fmt: skip
        options = {"ratings": d.train} if name.startswith("autorec") else {}
        if name == "biased-mf":
            options["global_mean"] = float(d.mean)  # the reference adds its mean outside its weights
        u, i = verify.sample_pairs(users, items, 1000, seed=2)
        want = _torch_scores(model, d, u, i)
        for kind in ("safetensors", "pt"):  # the .pt has FM's feature-layout buffers too; they are checked
            net = convert.from_torch(root / f"{name}.{kind}", name, users, items, **options)
            path = export.save(net, root / f"{name}-{kind}")
            out[name, kind] = (path, [users[k] for k in u], [items[k] for k in i], want, net, u, i)
    return root, out


def test_every_family_imports_and_its_saved_model_predicts_what_torch_predicts(imported):
    """Both file formats; the SavedModel loaded by tf.saved_model.load in a process without tfrec."""
    _, out = imported
    keys = sorted(out)
    scores = verify.saved_models_scores([out[k][:3] for k in keys])
    assert {name for name, _ in keys} == set(FAMILIES) and len(keys) == 2 * len(FAMILIES)
    for key, got in zip(keys, scores):
        report = verify.compare(out[key][3], got)
        assert report["pairs"] == 1000 and report["passed"], (key, report)
        assert np.std(out[key][3]) > 0.01, key  # trained weights, not a constant


def test_the_numpy_oracle_agrees_with_torch(imported):
    """A layout's ``scores`` (the check without torch) is PyTorch's forward pass in numpy."""
    root, out = imported
    for (name, kind), (_, _, _, want, net, u, i) in out.items():
        state, _ = convert.canonical_state(root / f"{name}.{kind}", name)
        oracle = layouts.layout(type(net)).scores(net, state, u, i)
        np.testing.assert_allclose(oracle, want, rtol=0, atol=1e-5, err_msg=name)


def test_an_fm_built_over_other_features_is_refused(imported, tmp_path):
    """The reference FM's buffers say which feature each row is; another layout would misplace every weight."""
    root, out = imported
    users, items = out["fm", "pt"][4].user_vocabulary, out["fm", "pt"][4].item_vocabulary
    state = torch.load(root / "fm.pt", weights_only=True)
    state["item_rows"] = state["item_rows"].flip(0)  # the same movies in another order
    torch.save(state, tmp_path / "shuffled.pt")
    with pytest.raises(DataError, match="shuffled.pt: tensor 'item_rows' .*other features, ids or id order"):
        convert.from_torch(tmp_path / "shuffled.pt", "fm", users, items)


def test_tutorial_names_and_map_overrides(tmp_path):
    """The blog-post layout (`user_factors`, `user_biases`...) by the built-in names; anything else by --map."""
    rng = np.random.default_rng(0)
    users, items = [f"u{k}" for k in range(30)], [f"i{k}" for k in range(20)]
    tutorial = {
        "user_factors.weight": rng.normal(size=(30, 5)),
        "item_factors.weight": rng.normal(size=(20, 5)),
        "user_biases.weight": rng.normal(size=(30, 1)),
        "item_biases.weight": rng.normal(size=(20, 1)),
    }
    weights = {k: v.astype(np.float32) for k, v in tutorial.items()}
    with pytest.raises(DataError, match="the state dict: no global mean among the weights .*global_mean=MEAN"):
        convert.from_torch(weights, "biased-mf", users, items)  # a silent 0 would predict short by the mean
    net = convert.from_torch(weights, "biased-mf", users, items, global_mean=0.0)
    u, i = np.arange(30) % 30, np.arange(30) % 20
    want = tutorial["user_biases.weight"][u, 0] + tutorial["item_biases.weight"][i, 0] + np.einsum(
        "nk,nk->n", tutorial["user_factors.weight"][u], tutorial["item_factors.weight"][i])  # fmt: skip
    got = net({"user_id": np.array(users)[u], "movie_id": np.array(items)[i]}).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    odd = {"U": tutorial["user_factors.weight"], "V_items": tutorial["item_factors.weight"]}
    with pytest.raises(DataError, match="no tensor 'user_factors.weight'.*it has U, V_items"):
        convert.from_torch(odd, "mf", users, items)
    mapped = convert.from_torch(
        odd, "mf", users, items, mapping=["U=user_factors.weight", "V_items=item_factors.weight"]
    )
    got = mapped({"user_id": np.array(users)[u], "movie_id": np.array(items)[i]}).numpy()
    np.testing.assert_allclose(got, np.einsum("nk,nk->n", odd["U"][u], odd["V_items"][i]), atol=1e-5)


def test_bad_weights_and_id_maps_are_one_error_each(tmp_path):
    users, items = ["a", "b", "c"], ["x", "y"]
    good = {"user_factors.weight": torch.ones(3, 2), "item_factors.weight": torch.ones(2, 2)}
    save_file(good, str(tmp_path / "good.safetensors"))
    data = (tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.safetensors: not a readable safetensors file"):
        convert.from_torch(tmp_path / "cut.safetensors", "mf", users, items)
    with pytest.raises(DataError, match=r"tensor 'user_factors.weight' has shape \[3, 2\], the model needs \[4, 2\]"):
        convert.from_torch(tmp_path / "good.safetensors", "mf", users + ["d"], items)
    torch.save({"model": good, "epoch": 3}, tmp_path / "checkpoint.pt")
    with pytest.raises(DataError, match="entry 'model' is a dict, not a tensor"):
        convert.from_torch(tmp_path / "checkpoint.pt", "mf", users, items)
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a pickled module: weights_only refuses it
    with pytest.raises(DataError, match="module.pt: not a PyTorch state dict"):
        convert.read_weights(tmp_path / "module.pt")
    with pytest.raises(DataError, match="does not use tensor"):
        convert.from_torch({**good, "extra.weight": torch.ones(1)}, "mf", users, items)
    (tmp_path / "users.txt").write_text("a\nb\na\n")
    with pytest.raises(DataError, match="id 'a' is both row 0 and row 2"):
        convert.read_ids(tmp_path / "users.txt")
    (tmp_path / "rows.csv").write_text("id,row\nb,1\na,0\nc,3\n")
    with pytest.raises(DataError, match="row 2 has no id"):
        convert.read_ids(tmp_path / "rows.csv")
    (tmp_path / "rows.csv").write_text("id,row\nb,1\na,0\n")
    assert convert.read_ids(tmp_path / "rows.csv") == ["a", "b"]


def test_import_torch_command_verifies_in_another_process_and_writes_nothing_on_failure(tmp_path):
    """The CLI end to end: a verified export; a bad file is one line, exit 1 (a data error), and no export."""
    rng = np.random.default_rng(1)
    tables = {
        "user_factors.weight": rng.normal(size=(40, 4)),
        "item_factors.weight": rng.normal(size=(25, 4)),
        "user_biases.weight": rng.normal(size=(40, 1)),
        "item_biases.weight": rng.normal(size=(25, 1)),
    }
    save_file({k: torch.from_numpy(v.astype(np.float32)) for k, v in tables.items()}, str(tmp_path / "bmf.safetensors"))
    (tmp_path / "users.txt").write_text("".join(f"user{k}\n" for k in range(40)))
    (tmp_path / "items.csv").write_text("id,row\n" + "".join(f"item{k},{k}\n" for k in reversed(range(25))))
    report = tmp_path / "report.json"
    done = run_tfrec(
        "import-torch",
        str(tmp_path / "bmf.safetensors"),
        "--model",
        "biased-mf",
        "--users",
        str(tmp_path / "users.txt"),
        "--items",
        str(tmp_path / "items.csv"),
        "--global-mean",
        "3.5",
        "--export",
        str(tmp_path / "models/bmf/1"),
        "--verify",
        "sample",
        "--json",
        str(report),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("PASS: 1000 pairs, max |difference|"), done.stdout
    import json

    assert json.loads(report.read_text())["max_abs_diff"] <= 1e-5
    assert (tmp_path / "models/bmf/1/saved_model.pb").exists()
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 12)
    bad = run_tfrec("import-torch", str(tmp_path / "bad.safetensors"), "--model", "mf", "--users",
                    str(tmp_path / "users.txt"), "--items", str(tmp_path / "items.csv"),
                    "--export", str(tmp_path / "models/bad/1"))  # fmt: skip
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 1 and len(lines) == 1 and "bad.safetensors: not a readable safetensors file" in lines[0]
    assert not (tmp_path / "models/bad").exists() or not any((tmp_path / "models/bad").iterdir())


def test_safetensors_import_without_torch_and_a_pt_file_is_one_clear_error(tmp_path):
    """In a process where torch cannot be imported."""
    save_file({"user_factors.weight": torch.ones(2, 3), "item_factors.weight": torch.ones(2, 3)},
              str(tmp_path / "w.safetensors"))  # fmt: skip
    torch.save({"user_factors.weight": torch.ones(2, 3)}, tmp_path / "w.pt")
    script = f"""
import sys
sys.modules["torch"] = None  # import torch raises ImportError
from tfrec import convert
from tfrec.errors import DataError
net = convert.from_torch({str(tmp_path / "w.safetensors")!r}, "mf", ["a", "b"], ["x", "y"])
print("scores", net({{"user_id": ["a"], "movie_id": ["y"]}}).numpy())
try:
    convert.read_weights({str(tmp_path / "w.pt")!r})
except DataError as e:
    print("error", e)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(__file__)))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "scores [3.]" in done.stdout, done.stdout
    assert "w.pt: reading a PyTorch pickle needs torch" in done.stdout and "safetensors" in done.stdout


class _TutorialBiasedMF(torch.nn.Module):
    """The blog-post biased MF: the training mean is a plain number, outside the state dict."""

    def __init__(self, n_users, n_items, dim, mean):
        super().__init__()
        self.user_factors, self.item_factors = torch.nn.Embedding(n_users, dim), torch.nn.Embedding(n_items, dim)
        self.user_biases, self.item_biases = torch.nn.Embedding(n_users, 1), torch.nn.Embedding(n_items, 1)
        for table in (self.user_factors, self.item_factors, self.user_biases, self.item_biases):
            torch.nn.init.normal_(table.weight, std=0.1)
        self.mean = mean

    def forward(self, user, item):
        dot = (self.user_factors(user) * self.item_factors(item)).sum(1)
        return self.mean + self.user_biases(user)[:, 0] + self.item_biases(item)[:, 0] + dot


def test_a_mean_outside_the_weights_is_refused_taken_from_the_ratings_and_checked_against_the_model(tmp_path, capsys):
    """The newcomer's trap: without the mean the import refuses; with it, the export predicts what the PyTorch
    model predicts; a wrong mean passes a check against the weights but fails against the model's predictions."""
    import tensorflow as tf

    rng = np.random.default_rng(4)
    n_users, n_items, n = 60, 40, 1500
    u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    r = np.clip(np.rint(3.6 + rng.normal(0, 0.6, n_users)[u] + rng.normal(0, 0.6, n_items)[i]), 1, 5)
    users, items = [f"c{k}" for k in range(n_users)], [f"p{k}" for k in range(n_items)]
    (tmp_path / "train.csv").write_text("customer,product,stars\n" + "".join(
        f"{users[a]},{items[b]},{c:.0f}\n" for a, b, c in zip(u, i, r)))  # fmt: skip
    (tmp_path / "users.txt").write_text("\n".join(users) + "\n")
    (tmp_path / "items.txt").write_text("\n".join(items) + "\n")
    torch.manual_seed(0)
    model = _TutorialBiasedMF(n_users, n_items, 8, float(r.mean()))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    tu, ti, tr = torch.from_numpy(u), torch.from_numpy(i), torch.from_numpy(r.astype(np.float32))
    for _ in range(2):
        for batch in torch.randperm(n).split(32):
            optimizer.zero_grad()
            ((model(tu[batch], ti[batch]) - tr[batch]) ** 2).mean().backward()
            optimizer.step()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "mf.safetensors"))
    with torch.no_grad():
        predicted = model(tu[:300], ti[:300]).tolist()
        everywhere = model(torch.arange(n_users).repeat_interleave(n_items), torch.arange(n_items).repeat(n_users))
    (tmp_path / "predictions.csv").write_text("user,item,prediction\n" + "".join(
        f"{users[a]},{items[b]},{p!r}\n" for a, b, p in zip(u[:300], i[:300], predicted)))  # fmt: skip
    assert abs(np.mean(predicted) - r.mean()) < 0.5  # a model that predicts ratings, not deviations from the mean

    def imported(*options, to="models/mf/1"):
        """`tfrec import-torch` through its entry point, in this process (TensorFlow is loaded once)."""
        status = main(["import-torch", str(tmp_path / "mf.safetensors"), "--model", "biased-mf", "--users",
                       str(tmp_path / "users.txt"), "--items", str(tmp_path / "items.txt"), "--export",
                       str(tmp_path / to), *options])  # fmt: skip
        out = capsys.readouterr()
        return status, out.out, out.err

    status, _, err = imported("--verify", "sample")
    lines = err.strip().splitlines()
    assert status == 1 and len(lines) == 1, err
    assert "no global mean among the weights" in lines[0] and "--global-mean-from RATINGS_FILE" in lines[0]
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("saved_model.pb"))

    train_csv = str(tmp_path / "train.csv")
    status, out, err = imported("--global-mean-from", train_csv, "--ratings", train_csv, "--verify",
                                str(tmp_path / "predictions.csv"))  # fmt: skip
    assert status == 0, err[-2000:]
    assert out.startswith("PASS: 300 pairs") and "(your model's predictions)" in out, out
    serve = tf.saved_model.load(str(tmp_path / "models/mf/1")).signatures["serving_default"]
    every_user, every_item = np.repeat(users, n_items), np.tile(items, n_users)
    got = serve(user_id=tf.constant(every_user), item_id=tf.constant(every_item))["predictions"].numpy()
    np.testing.assert_allclose(got, everywhere.numpy(), atol=1e-5, rtol=0)  # every pair, not only the checked ones
    loaded = tf.saved_model.load(str(tmp_path / "models/mf/1"))
    top = loaded.signatures["recommend"](user_id=tf.constant(users[:3]), k=tf.constant(n_items))["item_id"].numpy()
    for k in range(3):  # --ratings: recommend leaves out what each user rated in training, and only that
        rated = {items[b] for a, b in zip(u, i) if a == k}
        listed = {x.decode() for x in top[k] if x}
        assert rated and not rated & listed and len(listed) == n_items - len(rated), k

    status, out, err = imported("--global-mean", f"{r.mean() + 0.05}", "--verify", str(tmp_path / "predictions.csv"),
                                to="models/mf/2")  # fmt: skip
    assert status == 1 and out.startswith("FAIL: 300 pairs"), out + err
    assert "every pair is off by the same +0.05" in err and not (tmp_path / "models/mf/2").exists()
