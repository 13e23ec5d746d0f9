"""A user's own data: CSV, TSV, Parquet and JSON Lines files (gzip, header or not), DataFrames and Arrow tables."""

import gzip
import json
import uuid

import numpy as np
import pytest

from conftest import run_tfrec
from tfrec import data
from tfrec.data import files as files_module
from tfrec.errors import DataError

pd = pytest.importorskip("pandas", reason="pandas reads the DataFrame fixtures")


def _planted(n=3000, seed=0):
    """Ratings on 1-5 with user and item effects, ids as a user would have them."""
    rng = np.random.default_rng(seed)
    cells = rng.choice(79 * 59, n, replace=False)  # distinct (user, item) pairs, as a table of ratings has
    users, items = 1 + cells // 59, 1 + cells % 59
    bias_u, bias_i = rng.normal(0, 0.7, 80), rng.normal(0, 0.7, 60)
    rating = np.clip(np.round(3.5 + bias_u[users] + bias_i[items] + rng.normal(0, 0.5, n)), 1, 5)
    return users, items, rating


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    users, items, rating = _planted()
    frame = pd.DataFrame({"user": users, "item": items, "rating": rating, "timestamp": np.arange(len(users))})
    frame.to_csv(root / "plain.csv", index=False)
    frame.rename(columns={"user": "buyer", "item": "sku", "rating": "stars"}).to_csv(
        root / "custom.tsv", sep="\t", index=False
    )
    frame.rename(columns={"user": "customer", "item": "product", "rating": "stars", "timestamp": "ts"}).to_csv(
        root / "shop.csv", index=False
    )
    with gzip.open(root / "nohead.csv.gz", "wt") as f:
        f.writelines(f"{u},{i},{r}\n" for u, i, r in zip(users, items, rating))
    uids = {u: str(uuid.UUID(int=int(u) * 7919)) for u in set(users.tolist())}
    pd.DataFrame(
        {"user_id": [uids[u] for u in users.tolist()], "product_id": [f"P{i:04d}" for i in items], "score": rating}
    ).to_parquet(root / "uuid.parquet", row_group_size=1000)
    with open(root / "clicks.jsonl", "w") as f:
        f.writelines(json.dumps({"userId": int(u), "itemId": f"0{i}"}) + "\n" for u, i in zip(users, items))
    return root, users, items, rating, uids


@pytest.mark.parametrize(
    "name, columns, took",
    [
        ("plain.csv", None, "user=user, item=item, rating=rating, timestamp=timestamp"),
        ("custom.tsv", "user=buyer,item=sku,rating=stars", "user=buyer, item=sku, rating=stars, timestamp=timestamp"),
        ("nohead.csv.gz", None, "user=1, item=2, rating=3"),
        ("uuid.parquet", None, "user=user_id, item=product_id, rating=score"),
    ],
)
def test_each_format_loads_the_same_ratings_with_the_file_s_own_ids(files, name, columns, took):
    root, users, items, rating, uids = files
    table = data.load(str(root / name), columns=columns)
    assert table.source == f"{root / name} ({took})" and table.feedback == "explicit"
    assert len(table) == len(users)
    np.testing.assert_array_equal(table.rating, rating.astype(np.float32))
    if name == "uuid.parquet":
        assert table.user_id.tolist() == [uids[u] for u in users.tolist()]
        assert table.movie_id.tolist() == [f"P{i:04d}" for i in items]
    else:
        assert table.user_id.tolist() == [str(u) for u in users] and table.movie_id.tolist() == [str(i) for i in items]


def test_spaces_after_delimiters_a_byte_order_mark_and_crlf_are_read(tmp_path):
    (tmp_path / "spaces.csv").write_text("user, item, rating\n1, 2, 3\n2, 3, 4\n")
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbfuser,item,rating\r\n1,2,3\r\n2,3,4\r\n")
    for name in ("spaces.csv", "excel.csv"):
        table = data.load(str(tmp_path / name))
        assert table.source.endswith("(user=user, item=item, rating=rating)"), table.source
        assert table.rating.tolist() == [3.0, 4.0] and table.movie_id.tolist() == ["2", "3"]


@pytest.mark.parametrize("role", files_module.ROLES)
def test_every_name_people_give_a_column_is_found(tmp_path, role):
    """Each role's family of names, in the spellings files use (`Customer ID`, `customerId`, `CUSTOMER`)."""
    others = {"user": "user", "item": "item", "rating": "rating", "timestamp": "timestamp"}
    for word in files_module.KNOWN_NAMES[role]:
        for name in (word, f"{word}_id", f"{word.title()} ID", f"{word}Id", word.upper()):
            header = [name if r == role else others[r] for r in files_module.ROLES]
            path = tmp_path / "r.csv"
            path.write_text(",".join(header) + "\nu1,i1,4,100\nu2,i1,3,200\n")
            table = data.load(str(path))
            assert f"{role}={name}" in table.source, (name, table.source)
            assert table.user_id.tolist() == ["u1", "u2"] and table.rating.tolist() == [4.0, 3.0], name


def test_items_keep_movielens_words_only_where_the_data_calls_them_movies(tmp_path):
    for column, key in (("product", "item_id"), ("sku", "item_id"), ("item_id", "item_id"), ("movieId", "movie_id"),
                        ("movie_id", "movie_id")):  # fmt: skip
        (tmp_path / "r.csv").write_text(f"user,{column},rating\n1,2,3\n")
        assert data.load(str(tmp_path / "r.csv")).item_key == key, column
    (tmp_path / "d.csv").write_text("user,item,rating,date\n1,2,3,2020-01-31\n")
    assert data.load(str(tmp_path / "d.csv")).timestamp.tolist() == [1580428800]  # a date column: midnight UTC


def test_a_file_without_ratings_is_interactions(files):
    root, users, items, _, _ = files
    table = data.load(str(root / "clicks.jsonl"))
    assert table.feedback == "implicit" and (table.rating == 1.0).all()
    assert table.movie_id.tolist() == [f"0{i}" for i in items]  # "07" stays "07"
    assert "no rating column" in table.source


def test_dataframe_and_arrow_tables_keep_ids_of_any_type():
    import pyarrow as pa

    keys = [uuid.UUID(int=k) for k in (5, 6, 5)]
    frame = pd.DataFrame({"who": keys, "what": [10, 20, 10], "stars": [4.0, 2.5, 3.0]})
    table = data.Ratings.from_pandas(frame, user="who", item="what", rating="stars")
    assert table.user_id.tolist() == [str(k) for k in keys] and table.movie_id.tolist() == ["10", "20", "10"]
    arrow = data.Ratings.from_arrow(pa.table({"u": ["a", "b"], "i": [1, 2]}), user="u", item="i")
    assert arrow.feedback == "implicit" and arrow.user_id.tolist() == ["a", "b"]
    with pytest.raises(DataError, match="no column 'rating'; columns: who, what, stars"):
        data.Ratings.from_pandas(frame, user="who", item="what", rating="rating")


@pytest.mark.parametrize(
    "text, columns, message",
    [
        ("user,item,rating\n1,2,3\n1,3,x\n", None, "line 3: column 'rating' is 'x', not a number"),
        ("user,item,rating\n1,2,3\n1,3,\n", None, "line 3: column 'rating' is empty"),
        ("user,item,rating\n1,2,3\n1,3,nan\n", None, "line 3: column 'rating' is nan, not a finite number"),
        ("user,item,rating\n1,2,3\n1,,4\n", None, "line 3: column 'item' is empty"),
        ("user,item,rating\n1,2,3\n1,3\n2,2,4\n", None, "line 3: expected 3 fields, got 2"),
        ("user,item,rating\n", None, "only a header line, no rows"),
        ("", None, "the file is empty"),
        ("user,product_id,item,rating\n1,2,3,4\n", None, "columns product_id, item could each be the item"),
        ("who,item,rating\n1,2,3\n", None, "no user column (looked for user, customer, client, buyer"),
        ("user,customer,item,rating\n1,2,3,4\n", None, "columns user, customer could each be the user"),
        ("user,item,rating\n1,2,3\n", "user=who", "no column 'who' for user; columns: user, item, rating"),
        ("user,item,rating\n1,2,3\n", "person=user", "unknown role 'person'"),
    ],
)
def test_bad_input_is_one_error_naming_the_file_line_and_column(tmp_path, text, columns, message):
    path = tmp_path / "ratings.csv"
    path.write_text(text)
    with pytest.raises(DataError) as error:
        data.load(str(path), columns=columns)
    assert str(error.value).startswith(str(path)) and message in str(error.value), str(error.value)


def test_bad_values_in_parquet_name_the_row_group(tmp_path):
    frame = pd.DataFrame({"user": ["a"] * 6, "item": list("bcdefg"), "rating": [1, 2, 3, 4, float("inf"), 5]})
    frame.to_parquet(tmp_path / "r.parquet", row_group_size=2)
    with pytest.raises(DataError, match=r"r.parquet: row 4 \(row group 2\): column 'rating' is inf"):
        data.load(str(tmp_path / "r.parquet"))


@pytest.mark.parametrize("timestamps", [True, False])
def test_a_pair_rated_twice_keeps_its_latest_rating_and_the_source_says_so(tmp_path, timestamps):
    """As a MovieLens directory is read: a repeated pair would count twice, and could be in both parts."""
    rows = [("a", "x", 5, 300), ("a", "x", 1, 100), ("b", "y", 3, 50), ("b", "x", 4, 60), ("a", "x", 2, 200)]
    head = "customer,product,stars" + (",ts" if timestamps else "")
    lines = [f"{u},{i},{r}" + (f",{t}" if timestamps else "") for u, i, r, t in rows]
    (tmp_path / "shop.csv").write_text("\n".join([head, *lines]) + "\n")
    table = data.load(str(tmp_path / "shop.csv"))
    kept = {(u, i): float(r) for u, i, r in zip(table.user_id, table.movie_id, table.rating)}
    # the largest timestamp; with none, the later line
    assert kept == {("a", "x"): 5.0 if timestamps else 2.0, ("b", "y"): 3.0, ("b", "x"): 4.0}
    assert table.source.endswith("; 2 repeated (user, item) rows left out, the latest of each pair kept)")


def test_a_missing_file_is_one_short_error(tmp_path):
    with pytest.raises(DataError, match=r"^\S+/nothing.csv: no such file$"):
        data.load(str(tmp_path / "nothing.csv"))


@pytest.fixture(scope="module")
def trained_on_shop_csv(files, tmp_path_factory):
    """`tfrec train` on a shop's customer,product,stars CSV, no --columns, saved and exported: the export
    answers the file's own ids, in item words."""
    root = files[0]
    out = tmp_path_factory.mktemp("run")
    result = run_tfrec(
        "train", "--data", str(root / "shop.csv"), "--epochs", "16", "--quiet",
        "--export", str(out / "models" / "shop" / "1"), "--json", str(out / "run.json"),
        "--save", str(out / "runs" / "shop"),  # neither parent exists yet: both are made
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_train_on_a_user_file_says_which_columns_it_read(trained_on_shop_csv, files):
    out, result = trained_on_shop_csv
    assert (
        "read        " in result.stdout and "(user=customer, item=product, rating=stars, timestamp=ts)" in result.stdout
    )
    users, items, rating = files[1:4]
    summary = json.loads((out / "run.json").read_text())
    spread = float(np.std(rating))
    assert summary["test_rmse"] < spread - 0.15, (summary["test_rmse"], spread)  # learned the planted effects


def test_the_export_of_a_user_file_answers_its_raw_ids_in_item_words(trained_on_shop_csv, files):
    import tensorflow as tf

    out, _ = trained_on_shop_csv
    users, items = files[1], files[2]
    saved = out / "models" / "shop" / "1"
    predicted = run_tfrec("predict", str(saved), "--user", str(users[0]), "--item", str(items[0]))
    assert predicted.returncode == 0 and 1.0 <= float(predicted.stdout) <= 5.0, predicted.stderr
    top = run_tfrec("recommend", str(saved), "--user", str(users[0]), "-k", "3", "--json", str(out / "top.json"))
    assert top.stdout.splitlines()[0].split() == ["rank", "item_id", "score"], top.stdout
    ranked = [line.split()[1] for line in top.stdout.splitlines()[1:]]
    assert len(ranked) == 3 and set(ranked) <= {str(i) for i in items}, top.stdout
    assert json.loads((out / "top.json").read_text())["item_id"] == ranked
    loaded = tf.saved_model.load(str(saved))
    assert set(loaded.signatures["serving_default"].structured_input_signature[1]) == {"user_id", "item_id"}
    assert set(loaded.signatures["recommend"].structured_outputs) == {"item_id", "scores"}
    assert (out / "runs" / "shop" / "model.keras").is_file()


def test_interactions_train_the_implicit_models_and_refuse_the_explicit_ones(files, capsys):
    from tfrec import cli

    root = files[0]
    spec = str(root / "clicks.jsonl")
    assert cli.main(["train", "--data", spec, "--model", "gmf", "--epochs", "2", "--dim", "8", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "gmf (implicit)" in out and "split leave-last-out" in out and "no rating column: interactions" in out
    assert cli.main(["train", "--data", spec, "--epochs", "2", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no rating column found (interactions only); biased-mf learns ratings: name yours with --columns" in err


def _planted_csv(path, mean, scale, seed=0):
    """Planted ratings on another scale: the 1-5 contract data's structure times ``scale`` around ``mean``."""
    g = data.generate(
        users=400, items=300, ratings=60000, rank=4, sigma=0.5 * scale, factor_std=0.5 * np.sqrt(scale),
        bias_std=0.5 * scale, global_mean=mean, seed=seed,
    )  # fmt: skip
    t = g.ratings
    pd.DataFrame({"user_id": t.user_id, "item_id": t.movie_id, "rating": t.rating}).to_csv(path, index=False)
    return g.sigma


@pytest.mark.parametrize("mean, scale", [(60.0, 10.0), (200.0, 8.0)], ids=["0-100", "around-200"])
def test_the_cli_defaults_reach_the_noise_floor_on_other_scales(tmp_path, mean, scale, capsys):
    """`tfrec train --data FILE` with no other flag: within 10% of the planted noise (5.32 and 4.26 measured)."""
    from tfrec import cli

    sigma = _planted_csv(tmp_path / "ratings.csv", mean, scale)
    status = cli.main(["train", "--data", str(tmp_path / "ratings.csv"), "--quiet", "--json", str(tmp_path / "r.json")])
    assert status == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["test_rmse"] <= 1.1 * sigma, (summary["test_rmse"], sigma)
    assert summary["stopped"] == "early stopping" and summary["epochs"] < summary["config"]["epochs"]


def test_a_run_that_ends_at_its_epoch_cap_while_improving_says_so(tmp_path, capsys):
    from tfrec import cli

    _planted_csv(tmp_path / "ratings.csv", 60.0, 10.0)
    args = [
        "train",
        "--data",
        str(tmp_path / "ratings.csv"),
        "--epochs",
        "2",
        "--quiet",
        "--json",
        str(tmp_path / "r.json"),
    ]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "stopped     at the epoch cap (2) with the best epoch in the last" in out, out
    assert "validation may still improve, raise --epochs" in out, out
    assert json.loads((tmp_path / "r.json").read_text())["stopped"] == "epoch cap"


def test_any_tfds_ratings_set_reads_by_columns(capsys):
    """A TFDS set whose features are not MovieLens's (mock data, no download): nested names by `/`."""
    import tensorflow_datasets as tfds

    spec = "tfds:amazon_us_reviews/Wireless_v1_00"
    roles = "user=data/customer_id,item=data/product_id,rating=data/star_rating"
    with tfds.testing.mock_data(num_examples=40):
        table = data.load(spec, columns=roles)
        found = data.load(spec)  # the same columns by their names
        with pytest.raises(DataError, match="no column 'data/sku' for item; columns: .*data/product_id"):
            data.load(spec, columns="item=data/sku")
    assert len(table) == 40 and table.feedback == "explicit" and table.item_key == "item_id"
    assert table.source.endswith("(user=data/customer_id, item=data/product_id, rating=data/star_rating)")
    assert found.source == table.source and found.digest() == table.digest()
    with tfds.testing.mock_data(num_examples=40):
        movielens = data.load("tfds:movielens/100k-ratings")  # MovieLens keeps its side features
    assert "user_occupation_label" in movielens.features and movielens.feedback == "explicit"


def test_ids_that_would_not_fit_in_memory_as_strings_are_refused_first(tmp_path, monkeypatch):
    """The check runs before any string array is made; here the machine is made to look full."""
    from tfrec.data import table

    (tmp_path / "r.csv").write_text("user,item,rating\n" + "".join(f"u{k},i{k % 7},3\n" for k in range(500)))
    monkeypatch.setattr(table, "free_memory", lambda: 1000)
    with pytest.raises(DataError, match=r"r.csv: column 'user': 500 distinct ids of up to 4 characters need .* GB"):
        data.load(str(tmp_path / "r.csv"))
    monkeypatch.setattr(table, "free_memory", lambda: None)  # unknown: no check
    assert len(data.load(str(tmp_path / "r.csv"))) == 500


@pytest.mark.parametrize("name", ["uuid.parquet", "nohead.csv.gz"])
def test_training_on_a_file_exports_a_model_that_answers_its_ids(files, name, tmp_path):
    import tensorflow as tf

    from tfrec import export
    from tfrec.config import TrainConfig
    from tfrec.train import run

    root, users, items, _, uids = files
    result = run(TrainConfig(data=str(root / name), epochs=3), verbose=0)
    export.save(result.model, tmp_path / "saved", rated=result.train)
    loaded = export.load(tmp_path / "saved")
    user = uids[int(users[0])] if name == "uuid.parquet" else str(users[0])
    top = loaded.signatures["recommend"](user_id=tf.constant([user]), k=tf.constant(5))["item_id"].numpy()[0]
    known = set(result.train.item_ids.tolist())
    assert len(top) == 5 and {m.decode() for m in top} <= known
    assert all(m.decode().startswith("P") for m in top) == (name == "uuid.parquet")
    served = loaded.signatures["serving_default"](user_id=tf.constant([user]), item_id=tf.constant([top[0]]))
    assert 1.0 <= float(served["predictions"].numpy()[0]) <= 5.0
