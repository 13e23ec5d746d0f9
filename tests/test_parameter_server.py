"""`tfrec train --strategy parameter-server`: a chief, two workers and two parameter servers on 127.0.0.1.

Every process is a real `tfrec train` process, bounded in time, and ended by the test if it is still
running when the test ends. The cluster runs are in the slow marker (`python -m pytest -m slow
tests/test_parameter_server.py`, about 7 minutes on two cores): the default suite's ten-minute budget
holds the refusals only.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import BLOCK_TFREC, ENV
from conftest import run_tfrec as tfrec

from tfrec.cluster import local_cluster

SPEC = "synthetic:users=150,items=100,ratings=8000,sigma=0.4,seed=3"
COMMON = ["train", "--model", "biased-mf", "--data", SPEC, "--epochs", "40", "--batch-size", "256", "--quiet"]


def _start(args, cluster, task, index, env=None):
    config = json.dumps({"cluster": cluster, "task": {"type": task, "index": index}})
    return subprocess.Popen(
        [sys.executable, "-m", "tfrec", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**ENV, **(env or {}), "TF_CONFIG": config},
    )  # fmt: skip


def _run_cluster(args, root, kill=None, ps=2, limit=None, workers=2, env=None):
    """Runs ``tfrec ARGS --strategy parameter-server`` as a chief, two workers and two parameter servers.

    Returns ``(chief report, every process's stdout)``. ``kill=("worker", E)`` kills worker 1 when the
    chief starts epoch E; ``kill=("chief", E)`` kills the chief then, and the report is None (the
    chief then prints its epochs: no ``--quiet``). ``ps``, ``workers``: how many of each; ``limit``: a
    function called with each parameter server's process as soon as it starts (a memory limit).
    """
    cluster = local_cluster(workers=workers, ps=ps)
    args = [*args, "--strategy", "parameter-server"]
    servers = [_start(args, cluster, "ps", i, env) for i in range(ps)]
    for server in servers if limit else ():
        limit(server)
    servers += [_start(args, cluster, "worker", i, env) for i in range(workers)]
    chief = _start([*args, "--json", str(root / "chief.json")], cluster, "chief", 0, env)
    victim = {"worker": servers[-1], "chief": chief, None: None}[kill and kill[0]]
    try:
        head = []
        if kill is not None:
            for line in chief.stdout:
                head.append(line)
                if line.startswith(f"Epoch {kill[1]}/"):
                    victim.kill()
                    break
        chief_out, chief_err = chief.communicate(timeout=300)
        assert chief.returncode == (-9 if victim is chief else 0), chief_err[-3000:]
        # The servers end by themselves once the chief's address stops answering.
        outputs = [p.communicate(timeout=60) for p in servers]
    finally:
        for p in [*servers, chief]:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (_, err) in zip(servers, outputs):
        assert p.returncode == (-9 if p is victim else 0), err[-3000:]
    report = None if victim is chief else json.loads((root / "chief.json").read_text())
    return report, [o for o, _ in outputs] + ["".join(head) + chief_out]


@pytest.fixture(scope="module")
def sharded_run(tmp_path_factory):
    """One run of the cluster and the same run on one device: ``(one, chief, outputs, root)``."""
    root = tmp_path_factory.mktemp("ps")
    single = tfrec(*COMMON, "--json", str(root / "single.json"))
    assert single.returncode == 0, single.stderr[-3000:]
    report, outputs = _run_cluster([*COMMON, "--shards", "2", "--export", str(root / "export" / "1")], root)
    return json.loads((root / "single.json").read_text()), report, outputs, root


@pytest.mark.slow
def test_biased_mf_with_tables_in_two_pieces_reaches_the_one_device_rmse(sharded_run):
    one, chief, outputs, _ = sharded_run
    print({k: (one[k], chief[k]) for k in ("test_rmse", "epochs", "best_epoch")})  # pytest -s shows them
    assert abs(one["test_rmse"] - chief["test_rmse"]) < 0.01, (one["test_rmse"], chief["test_rmse"])
    assert chief["test_rmse"] < 0.65  # learned: sigma 0.4 is the floor; the global mean scores about 0.9
    assert chief["workers"] == 2 and chief["devices"] == ["/job:ps/task:0", "/job:ps/task:1"]
    assert "tables on /job:ps/task:0, /job:ps/task:1, steps on 2 workers" in outputs[-1]
    assert sum("serving at 127.0.0.1:" in out for out in outputs[:-1]) == 4


@pytest.mark.slow
def test_each_parameter_server_holds_about_half_of_each_table(sharded_run):
    _, chief, _, _ = sharded_run
    tables = {name: pieces for name, pieces in chief["placement"].items() if "embeddings" in name}
    assert len(tables) == 4, sorted(chief["placement"])  # user and item factors and biases
    rows = {"user": 151, "item": 101}  # ids seen in training + the unseen-id row
    for name, pieces in tables.items():
        assert [p["device"] for p in pieces] == ["/job:ps/task:0", "/job:ps/task:1"], (name, pieces)
        total = rows["user" if "user" in name else "item"]
        assert sum(p["rows"] for p in pieces) == total, (name, pieces)
        assert all(abs(p["rows"] - total / 2) <= 1 for p in pieces), (name, pieces)


@pytest.mark.slow
def test_the_export_of_a_sharded_run_loads_alone_and_scores_as_the_chief(sharded_run):
    """Exported whole (the pieces joined), loaded by `tf.saved_model.load` with tfrec blocked."""
    _, chief, _, root = sharded_run
    assert chief["unsharded_max_difference"] <= 1e-6
    from tfrec import data

    test = data.split(data.load(SPEC), "ratio", seed=42).test
    np.savez(root / "test.npz", users=np.asarray(test.user_id), items=np.asarray(test.movie_id),
             ratings=np.asarray(test.rating, np.float64))  # fmt: skip
    script = BLOCK_TFREC + textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        pairs = np.load({str(root / "test.npz")!r})
        serve = tf.saved_model.load({str(root / "export" / "1")!r}).signatures["serving_default"]
        scores = serve(user_id=tf.constant(pairs["users"]), movie_id=tf.constant(pairs["items"]))["predictions"]
        print(float(np.sqrt(np.mean((scores.numpy().reshape(-1) - pairs["ratings"]) ** 2))))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert abs(float(result.stdout.split()[-1]) - chief["test_rmse"]) < 1e-6, (result.stdout, chief["test_rmse"])


def test_what_parameter_server_training_refuses_is_one_line_each(tmp_path):
    cluster = local_cluster()
    chief = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})}
    no_ps = {"TF_CONFIG": json.dumps({"cluster": {"worker": cluster["worker"]}, "task": {"type": "worker"}})}
    cases = [
        (["--model", "biased-mf", "--shards", "2"], {}, "shards is for strategy parameter-server"),
        (["--model", "biased-mf", "--strategy", "parameter-server", "--shards", "0"], {}, "shards '0': use a number"),
        (["--model", "biased-mf", "--strategy", "parameter-server"], {"TF_CONFIG": ""}, "needs TF_CONFIG"),
        (["--model", "autorec-i", "--strategy", "parameter-server"], chief, "autorec-i trains on rating vectors"),
        (["--model", "biased-mf", "--strategy", "parameter-server"], no_ps, "has no chief or ps task"),
    ]
    # One process runs the five commands through `tfrec`'s entry point (a process each took 14 s); any
    # exception other than tfrec's one-line errors ends the script with a traceback and fails here.
    script = textwrap.dedent("""
        import contextlib, io, json, os, sys
        from tfrec.cli import main
        results = []
        for args, env in json.loads(sys.argv[1]):
            os.environ.update(env)
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                status = main(["train", *args])
            results.append([status, err.getvalue()])
        print(json.dumps(results))
    """)
    commands = json.dumps([[["--data", SPEC, *args], env] for args, env, _ in cases])
    result = subprocess.run([sys.executable, "-c", script, commands], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    for (args, _, message), (status, stderr) in zip(cases, json.loads(result.stdout.splitlines()[-1])):
        assert status != 0, args
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, stderr[-2000:])


def _one_device_and_cluster(model, lr, root, workers=2):
    """``(one-device report, chief report)`` of MODEL trained to its early stop both ways, tables in two pieces.

    A higher learning rate than the models' defaults gets to the early stop sooner.
    """
    args = ["train", "--model", model, "--data", SPEC, "--epochs", "150", "--batch-size", "256", "--lr", lr,
            "--quiet"]  # fmt: skip
    single = tfrec(*args, "--json", str(root / "single.json"))
    assert single.returncode == 0, single.stderr[-3000:]
    chief, _ = _run_cluster([*args, "--shards", "2"], root, workers=workers)
    tables = [pieces for name, pieces in chief["placement"].items() if "embeddings" in name]
    assert tables and all(len({p["device"] for p in pieces}) == 2 for pieces in tables), chief["placement"]
    return json.loads((root / "single.json").read_text()), chief


INITIALIZERS = [
    ("RandomNormal", {"stddev": 0.1}), ("RandomNormal", {"mean": 0.5, "stddev": 2.0, "seed": 7}),
    ("RandomUniform", {"minval": -0.3, "maxval": 0.2}), ("GlorotUniform", {}), ("HeUniform", {}),
    ("VarianceScaling", {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"}),
    ("TruncatedNormal", {"stddev": 0.1}), ("GlorotNormal", {}), ("Zeros", {}), ("Constant", {"value": 3.0}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "options"), INITIALIZERS, ids=[f"{n}{i}" for i, (n, _) in enumerate(INITIALIZERS)])
def test_each_piece_starts_as_those_rows_of_the_whole_variable(name, options):
    """What ``ParameterServerStrategy`` asks of a variable's initial value, piece by piece, joined again.

    Keras' own answer differs from the whole (its own seed per piece; Glorot's scale from the
    piece's shape); the rows of a normal or uniform draw are computed alone, from the same stream.
    """
    import functools

    from tfrec._keras import tf
    from tfrec.cluster import _rows_of_whole

    def fresh():
        tf.keras.utils.set_random_seed(5)  # an unseeded initializer draws its seed at its first call
        return getattr(tf.keras.initializers, name)(**options)

    for dtype in (tf.float32, tf.float64):
        for shape in ((1001, 3), (64, 32), (7, 1)):
            whole = fresh()(shape, dtype=dtype).numpy()
            value = _rows_of_whole(functools.partial(fresh(), shape, dtype=dtype))
            cuts = [0, shape[0] // 3, shape[0] // 2 + 1, shape[0]]
            pieces = [value(partition_shape=(b - a, shape[1]), partition_offset=(a, 0)) for a, b in zip(cuts, cuts[1:])]
            joined = np.concatenate([piece.numpy() for piece in pieces])
            np.testing.assert_array_equal(joined, whole, err_msg=f"{dtype} {shape}")
            left_whole = _rows_of_whole(functools.partial(fresh(), shape, dtype=dtype))()  # Keras' own value
            np.testing.assert_array_equal(left_whole.numpy(), whole)
            if name == "GlorotUniform" and shape == (64, 32):
                keras_piece = fresh()(shape, dtype=dtype, partition_shape=(32, 32), partition_offset=(0, 0)).numpy()
                assert np.abs(keras_piece).max() > np.sqrt(6 / 96)  # Keras' piece: scaled by its own (32, 32)


def test_a_model_built_under_parameter_servers_starts_with_the_one_device_weights():
    """NeuMF (dense tower split too), FM and biased MF built with the same seed on one device and over two
    parameter servers of an in-process cluster (a separate process: connecting to a cluster changes
    TensorFlow's global context), with ``--shards 2`` and with ``--shards 4KB`` (pieces of at most 4 KB,
    placed in turn on the two servers): the pieces joined equal the one-device weights exactly."""
    script = textwrap.dedent("""
        import numpy as np
        from tfrec._keras import tf
        from tfrec import cluster, data, train
        from tfrec.config import TrainConfig
        spec = tf.train.ClusterSpec(cluster.local_cluster(workers=1, ps=2))
        servers = [tf.distribute.Server(spec, job_name=job, task_index=i, start=True)
                   for job in ("worker", "ps") for i in range(2 if job == "ps" else 1)]
        resolve = tf.distribute.cluster_resolver.SimpleClusterResolver
        resolver = resolve(spec, task_type="chief", task_id=0, rpc_layer="grpc")
        table = data.load("synthetic:users=150,items=100,ratings=8000,sigma=0.4,seed=3")
        for shards in ("2", "4KB"):
            strategy = tf.distribute.ParameterServerStrategy(resolver, cluster.partitioner(shards, 2))
            for model in ("neumf", "fm", "biased-mf"):
                config = TrainConfig(model=model)
                config.check()
                tf.keras.utils.set_random_seed(7)
                one = train.build(model, table, config, tf.distribute.get_strategy())
                tf.keras.utils.set_random_seed(7)
                before = sum(cluster.STREAMED_PIECES.values())
                sharded = train.build(model, table, config, strategy)
                streamed = sum(cluster.STREAMED_PIECES.values()) - before  # pieces cut from the whole's stream
                whole = lambda: train.build(model, table, config, tf.distribute.get_strategy())
                joined = cluster.unsharded(sharded, whole)
                differ = [a.name for a, b in zip(one.weights, joined.weights) if not np.array_equal(a, b)]
                pieces = cluster.placement(sharded).values()
                print(shards, model, len(pieces), max(map(len, pieces), default=1), len(differ), streamed, differ[:2])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {tuple(line.split()[:2]): line.split(maxsplit=6)[2:6] for line in result.stdout.splitlines()}
    assert {key: differ for key, (_, _, differ, _) in rows.items()} == {k: "0" for k in rows} and len(rows) == 6, rows
    # The pieces came from the streaming path, not from the fallback that draws whole and cuts (same rows).
    assert all(int(streamed) > 0 for *_, streamed in rows.values()), rows
    # (split variables, most pieces of one): with 4 KB pieces the small variables stay whole and the
    # largest tables are cut in five, the two servers holding three and two of them.
    expected = {("2", "neumf"): (11, 2), ("2", "fm"): (2, 2), ("2", "biased-mf"): (4, 2),
                ("4KB", "neumf"): (6, 5), ("4KB", "fm"): (1, 2), ("4KB", "biased-mf"): (2, 5)}  # fmt: skip
    assert {key: (int(split), int(most)) for key, (split, most, _, _) in rows.items()} == expected, rows


@pytest.mark.slow
@pytest.mark.parametrize(("model", "lr"), [("fm", "0.01"), ("neumf", "0.003")])
def test_neumf_and_fm_with_sharded_tables_reach_the_one_device_rmse(model, lr, tmp_path):
    """Measured: NeuMF 0.5363 against one device's 0.5395, FM 0.5608 against 0.5571 (two workers
    update the tables asynchronously, so the batches' order differs from one device's)."""
    one, chief = _one_device_and_cluster(model, lr, tmp_path)
    print({k: (one[k], chief[k]) for k in ("test_rmse", "epochs", "best_epoch")})
    assert abs(one["test_rmse"] - chief["test_rmse"]) < 0.01, (one["test_rmse"], chief["test_rmse"])
    assert chief["test_rmse"] < 0.6  # learned: the global mean scores about 0.9


@pytest.mark.slow
def test_a_cluster_reading_streamed_shards_reaches_the_one_device_rmse(tmp_path):
    """Each worker opens its own share of the staged files (no worker's graph holds the data:
    tests/test_stream.py); the cluster's RMSE is one device's on the same shards within 0.01."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tfrec import data

    table = data.load("synthetic:users=300,items=200,ratings=30000,sigma=0.4,seed=5")
    (tmp_path / "shards").mkdir()
    for k, rows in enumerate(np.array_split(np.arange(len(table)), 5)):
        frame = {"user": table.user_ids[table.user[rows]], "item": table.item_ids[table.item[rows]],
                 "rating": table.rating[rows]}  # fmt: skip
        pq.write_table(pa.table(frame), tmp_path / "shards" / f"part-{k}.parquet")
    env = {"TFREC_DATA": str(tmp_path / "cache")}
    args = ["train", "--model", "biased-mf", "--data", str(tmp_path / "shards"), "--epochs", "40",
            "--batch-size", "256", "--quiet"]  # fmt: skip
    single = tfrec(*args, "--json", str(tmp_path / "one.json"), env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    one = json.loads((tmp_path / "one.json").read_text())
    chief, _ = _run_cluster([*args, "--shards", "2"], tmp_path, env=env)
    print({k: (one[k], chief[k]) for k in ("test_rmse", "epochs", "best_epoch")})  # pytest -s shows them
    assert chief["split_fingerprint"] == one["split_fingerprint"]
    assert abs(one["test_rmse"] - chief["test_rmse"]) < 0.01, (one["test_rmse"], chief["test_rmse"])
    assert chief["test_rmse"] < 0.6  # learned: the global mean scores about 0.9


@pytest.mark.slow
def test_a_cluster_of_one_worker_trains_the_one_device_model(tmp_path):
    """NeuMF, whose dense tower is split too: the same start, batches and updates as one device.

    Measured: test RMSE 0.53953069607 against one device's 0.53953069448, both stopping at epoch 23.
    """
    one, chief = _one_device_and_cluster("neumf", "0.003", tmp_path, workers=1)
    assert (chief["epochs"], chief["best_epoch"]) == (one["epochs"], one["best_epoch"]), (chief, one)
    assert abs(one["test_rmse"] - chief["test_rmse"]) < 1e-5, (one["test_rmse"], chief["test_rmse"])


@pytest.mark.slow
def test_a_worker_killed_mid_training_and_the_run_still_finishes(tmp_path):
    """The coordinator gives a lost worker's steps to the other one (GRPC_FAIL_FAST=use_caller)."""
    args = ["train", "--model", "biased-mf", "--data", SPEC, "--epochs", "30", "--validation-fraction", "0",
            "--batch-size", "256", "--shards", "2"]  # fmt: skip
    chief, outputs = _run_cluster(args, tmp_path, kill=("worker", 4))
    print({"test_rmse": chief["test_rmse"]})
    assert "Epoch 30/30" in outputs[-1]
    assert chief["epochs"] == 30 and chief["test_rmse"] < 0.65, chief["test_rmse"]  # one device: about 0.56


@pytest.mark.slow
def test_a_chief_killed_mid_training_resumes_from_its_checkpoint_directory(sharded_run, tmp_path):
    """Killed at epoch 6, the whole cluster started again with the same command goes on at epoch 6."""
    _, uninterrupted, _, _ = sharded_run
    args = [*COMMON, "--shards", "2", "--checkpoint-dir", str(tmp_path / "run")]
    args.remove("--quiet")
    killed, _ = _run_cluster(args, tmp_path, kill=("chief", 6))
    assert killed is None and json.loads((tmp_path / "run" / "state.json").read_text())["epochs"] >= 4
    resumed, outputs = _run_cluster(args, tmp_path)
    epochs = [line.split()[1] for line in outputs[-1].splitlines() if line.startswith("Epoch ")]
    assert epochs[0] in ("5/40", "6/40"), epochs[:3]  # the last complete epoch's checkpoint, not the first
    print({k: (uninterrupted[k], resumed[k]) for k in ("test_rmse", "epochs", "best_epoch")})
    assert abs(resumed["test_rmse"] - uninterrupted["test_rmse"]) < 0.01, (resumed, uninterrupted)


class MemoryLimit:
    """Each process given to it runs in its own memory cgroup of ``limit`` bytes (v1 or v2), or skips.

    A process over its limit is killed by the kernel (SIGKILL), whatever TensorFlow reserved as
    virtual memory (which rules out RLIMIT_AS: a TensorFlow process maps far more than it uses).
    """

    def __init__(self, limit: int):
        self.limit, self.groups = limit, []
        own = Path("/proc/self/cgroup").read_text().splitlines() if Path("/proc/self/cgroup").exists() else []
        v1 = [line.split(":", 2)[2] for line in own if line.split(":")[1] == "memory"]
        v2 = [line.split(":", 2)[2] for line in own if line.startswith("0::")]
        candidates = [(Path("/sys/fs/cgroup/memory" + v1[0]), "memory.limit_in_bytes")] if v1 else []
        candidates += [(Path("/sys/fs/cgroup" + v2[0]), "memory.max")] if v2 else []
        for parent, knob in candidates:
            probe = parent / f"tfrec-probe-{os.getpid()}"
            try:
                probe.mkdir()
                (probe / knob).write_text(str(limit))
            except OSError:
                continue
            finally:
                if probe.exists():
                    probe.rmdir()
            self.parent, self.knob = parent, knob
            return
        pytest.skip("no writable memory cgroup here (needs root and cgroup v1 or v2 with the memory controller)")

    def __call__(self, process) -> None:
        group = self.parent / f"tfrec-ps-{process.pid}"
        group.mkdir()
        (group / self.knob).write_text(str(self.limit))
        (group / "cgroup.procs").write_text(str(process.pid))
        self.groups.append(group)

    def peaks(self) -> list[int]:
        """The most memory each group held (v1 ``max_usage_in_bytes``, v2 ``memory.peak``), bytes."""
        names = ("memory.max_usage_in_bytes", "memory.peak")
        return [int(next((g / n).read_text() for n in names if (g / n).exists())) for g in self.groups]

    def remove(self) -> None:
        for group in self.groups:
            group.rmdir()


@pytest.mark.slow
def test_tables_too_large_for_one_parameter_server_fit_in_four(tmp_path):
    """Biased MF with 700K users at dim 256 and lazy Adam: the user table and its two slots are 2.0 GB.

    Every parameter server runs under a memory limit of 2.1 GB. Four, each holding a quarter of every
    table, finish (measured: at most 1.2 GB each); one, holding it whole, is killed by the kernel
    (measured: at the limit, while the variables were created) and the chief fails.
    """
    spec = "synthetic:users=1000000,items=1000,ratings=1500000,seed=1"
    args = ["train", "--model", "biased-mf", "--data", spec, "--dim", "256", "--optimizer", "lazy-adam",
            "--epochs", "1", "--validation-fraction", "0", "--batch-size", "8192", "--quiet"]  # fmt: skip
    limit = MemoryLimit(2142 << 20)
    try:
        chief, _ = _run_cluster([*args, "--shards", "4"], tmp_path, ps=4, limit=limit)
        users = chief["placement"]["biased_matrix_factorization/user_factors/embedding/embeddings"]
        whole = 3 * sum(p["bytes"] for p in users)  # the table, Adam's two moments
        assert len(users) == 4 and whole > 2000 << 20, users
        assert all(peak < 2142 << 20 for peak in limit.peaks()), limit.peaks()
    finally:
        limit.remove()
    limit = MemoryLimit(2142 << 20)
    try:
        with pytest.raises(AssertionError, match="Socket closed|Unavailable"):  # the chief lost its ps
            _run_cluster([*args, "--shards", "1"], tmp_path, ps=1, limit=limit)
        assert max(limit.peaks()) >= (2142 << 20) - (64 << 20), limit.peaks()  # it reached its limit
    finally:
        limit.remove()
