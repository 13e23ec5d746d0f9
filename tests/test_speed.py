"""Speed work: the sparse-row optimizer and the benchmark command (whose figures live in benchmarks/RESULTS.md)."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import tfrec  # noqa: F401  (selects Keras 2 before tensorflow below)
import tensorflow as tf
from tfrec.optimizers import Adam, LazyAdam, TorchAdagrad

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _lazy_adam_steps(batches, table):
    variable = tf.Variable(table)
    optimizer = LazyAdam(learning_rate=0.1, epsilon=1e-8)
    for rows, weights in batches:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(variable, rows) * weights)
        optimizer.apply_gradients([(tape.gradient(loss, variable), variable)])
    return variable.numpy()


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (the README install command adds the parity extra)")
def test_lazy_adam_is_torch_sparse_adam():
    """Same steps as torch.optim.SparseAdam on an nn.Embedding(sparse=True), duplicate rows included."""
    import torch

    rng = np.random.default_rng(0)
    table = rng.normal(size=(10, 3)).astype(np.float32)
    batches = [(np.array([1, 1, 3]), rng.normal(size=(3, 3)).astype(np.float32)) for _ in range(3)]
    batches += [(np.array([3, 7]), rng.normal(size=(2, 3)).astype(np.float32))]
    embedding = torch.nn.Embedding(10, 3, sparse=True)
    embedding.weight.data = torch.from_numpy(table.copy())
    optimizer = torch.optim.SparseAdam(embedding.parameters(), lr=0.1, eps=1e-8)
    for rows, weights in batches:
        optimizer.zero_grad()
        (embedding(torch.from_numpy(rows)) * torch.from_numpy(weights)).sum().backward()
        optimizer.step()
    got = _lazy_adam_steps(batches, table)
    np.testing.assert_allclose(got, embedding.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    untouched = [0, 2, 4, 5, 6, 8, 9]
    np.testing.assert_array_equal(got[untouched], table[untouched])


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (the README install command adds the parity extra)")
def test_tfrec_train_adagrad_is_torch_adagrad_on_sparse_and_dense_gradients():
    """`--optimizer adagrad` is TorchAdagrad (TF's fused V2 kernels): torch.optim.Adagrad's steps on an
    nn.Embedding(sparse=True) with duplicate rows, and on a dense weight."""
    import torch

    from tfrec import registry

    assert registry.optimizers.entry("adagrad").load() is TorchAdagrad
    rng = np.random.default_rng(1)
    table = rng.normal(size=(10, 3)).astype(np.float32)
    batches = [(np.array([1, 1, 3]), rng.normal(size=(3, 3)).astype(np.float32)) for _ in range(3)]
    embedding = torch.nn.Embedding(10, 3, sparse=True)
    embedding.weight.data = torch.from_numpy(table.copy())
    dense = torch.nn.Parameter(torch.from_numpy(table[:2].copy()))
    optimizer = torch.optim.Adagrad([embedding.weight, dense], lr=0.1)
    variable, kernel = tf.Variable(table), tf.Variable(table[:2])
    keras = TorchAdagrad(learning_rate=0.1)
    for rows, weights in batches:
        optimizer.zero_grad()
        ((embedding(torch.from_numpy(rows)) * torch.from_numpy(weights)).sum() + (dense**3).sum()).backward()
        optimizer.step()
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(variable, rows) * weights) + tf.reduce_sum(kernel**3)
        keras.apply_gradients(zip(tape.gradient(loss, [variable, kernel]), [variable, kernel]))
    np.testing.assert_allclose(variable.numpy(), embedding.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kernel.numpy(), dense.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(variable.numpy()[[0, 2, 4]], table[[0, 2, 4]])  # rows outside every batch


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (the README install command adds the parity extra)")
@pytest.mark.parametrize("name", ["adagrad", "lazy-adam"])
def test_sparse_optimizers_sum_duplicate_rows_once_per_id_tensor_in_a_traced_step(name):
    """In a traced step two tables looked up with the same ids (factors and bias) share one tf.unique,
    and every table still takes torch's step (Adagrad, or SparseAdam for lazy-adam) with duplicates."""
    import torch

    from tfrec import registry

    rng = np.random.default_rng(2)
    tables = [rng.normal(size=shape).astype(np.float32) for shape in [(10, 3), (10, 1), (8, 3)]]
    draw = lambda: [rng.normal(size=(4, d)).astype(np.float32) for d in (3, 1, 3)]  # noqa: E731
    steps = [(np.array([1, 4, 1, 1]), np.array([2, 2, 5, 0]), draw()) for _ in range(3)]
    embeddings = [torch.nn.Embedding(*t.shape, sparse=True) for t in tables]
    for embedding, table in zip(embeddings, tables):
        embedding.weight.data = torch.from_numpy(table.copy())
    parameters = [e.weight for e in embeddings]
    reference = (
        torch.optim.Adagrad(parameters, lr=0.1) if name == "adagrad" else torch.optim.SparseAdam(parameters, lr=0.1)
    )
    variables = [tf.Variable(t) for t in tables]
    options = {} if name == "adagrad" else {"epsilon": 1e-8}
    optimizer = registry.optimizers.entry(name).load()(learning_rate=0.1, **options)

    @tf.function
    def step(users, items, weights):
        with tf.GradientTape() as tape:
            looked_up = [tf.gather(variables[0], users), tf.gather(variables[1], users), tf.gather(variables[2], items)]
            loss = tf.add_n([tf.reduce_sum(x * w) for x, w in zip(looked_up, weights)])
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    for users, items, weights in steps:
        reference.zero_grad()
        rows = [torch.from_numpy(r) for r in (users, users, items)]
        sum((e(r) * torch.from_numpy(w)).sum() for e, r, w in zip(embeddings, rows, weights)).backward()
        reference.step()
        step(users, items, weights)
    for variable, embedding in zip(variables, embeddings):
        np.testing.assert_allclose(variable.numpy(), embedding.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    graph = step.get_concrete_function(*steps[0]).graph
    assert [op.type for op in graph.get_operations()].count("Unique") == 2  # users once, items once


def test_lazy_adam_leaves_rows_outside_the_batch_alone_where_adam_moves_them():
    table = np.ones((6, 2), np.float32)
    batches = [(np.array([0, 1]), np.ones((2, 2), np.float32)), (np.array([2]), np.ones((1, 2), np.float32))]
    lazy = _lazy_adam_steps(batches, table)
    np.testing.assert_array_equal(lazy[3:], table[3:])
    assert np.all(lazy[:3] < 1.0)
    variable = tf.Variable(table)
    adam = tf.keras.optimizers.Adam(learning_rate=0.1, epsilon=1e-8)
    for rows, weights in batches:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(variable, rows) * weights)
        adam.apply_gradients([(tape.gradient(loss, variable), variable)])
    assert not np.allclose(variable.numpy()[:2], lazy[:2])  # Adam's momentum moved rows 0-1 again in step 2


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (the README install command adds the parity extra)")
def test_tfrec_bench_runs_every_side_on_a_tiny_dataset():
    """Only that the command runs both tfrec paths and torch and reports numbers (figures: benchmarks/RESULTS.md)."""
    spec = "synthetic:users=40,items=30,ratings=900,seed=1"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TFREC_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "tfrec", "bench", "--models", "biased-mf", "--data", spec,
         "--epochs", "2", "--batch-size", "64", "--target", "5.0"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.strip("|").split("|") for line in result.stdout.splitlines() if line.startswith("| ")][1:]
    sides = [(cells[0].strip(), cells[1].strip()) for cells in rows]
    assert sides == [("biased-mf", s) for s in ("cli", "python", "torch")], result.stdout
    for cells in rows:
        assert all(float(c) > 0 for c in (cells[2], cells[3], cells[6], cells[7])), cells  # times, ratings/s, GB
        assert "not reached" not in cells[8], cells  # an RMSE of 5 is reached after one epoch
        if cells[1].strip() == "python":  # its ratios to torch and to the CLI path are numbers
            assert float(cells[4]) > 0 and float(cells[5]) > 0, cells


@pytest.mark.parametrize("name", ["biased-mf", "neumf", "autorec-i", "fm"])
def test_build_creates_every_variable_before_fit_with_the_values_fit_would_draw(name):
    """`tfrec.train.build` creates the weights and optimizer slots up front and the loop of several steps
    calls a one-step function, so `fit` traces its step once and creates nothing; the initial weights are
    those a model built lazily by its first training step gets."""
    from tfrec import data
    from tfrec.config import TrainConfig
    from tfrec import families
    from tfrec.train import build, model_kwargs, training_dataset

    train = data.split(data.load("synthetic:users=40,items=30,ratings=800,seed=2"), "ratio", seed=1).train
    config = TrainConfig(model=name, epochs=1)
    config.check()
    tf.keras.utils.set_random_seed(7)
    net = build(name, train, config)
    initial = [v.numpy() for v in net.trainable_variables]
    created = len(net.variables) + len(net.optimizer.variables)
    assert net.optimizer.variables and len(initial) >= 2
    traced, step = [], net.train_step
    net.train_step = lambda batch: traced.append(1) or step(batch)  # runs once per trace, not per step
    ds = training_dataset(config, train, model=net)
    net.fit(ds, epochs=2, verbose=0)
    assert len(net.variables) + len(net.optimizer.variables) == created
    assert config.steps_per_execution > 1 and len(traced) == 1  # Keras' own loop would trace it twice

    tf.keras.utils.set_random_seed(7)
    lazy = families.model_class(name).from_table(train, **model_kwargs(config))
    lazy.compute_loss(next(iter(training_dataset(config, train, model=lazy))), training=True)
    assert len(lazy.trainable_variables) == len(initial)
    for drawn, expected in zip(lazy.trainable_variables, initial):
        np.testing.assert_array_equal(drawn.numpy(), expected)


@pytest.mark.parametrize("name", ["biased-mf", "neumf", "autorec-i"])
def test_keras_own_loop_and_tfrec_s_reach_the_same_weights(name):
    """`model.fast_loop = False` hands `fit` back to Keras' loop of steps_per_execution steps: an epoch
    (with a shortened last execution) ends at the same weights and loss as tfrec's loop, and Keras'
    traces the step twice where tfrec's traces it once (what tfrec's loop is for)."""
    from tfrec import data
    from tfrec.config import TrainConfig
    from tfrec.train import build, training_dataset

    train = data.split(data.load("synthetic:users=60,items=50,ratings=2000,seed=2"), "ratio", seed=1).train
    config = TrainConfig(model=name, epochs=1, steps_per_execution=8, batch_size=64, dropout=0.1)
    if name != "neumf":
        config.options.pop("dropout")
    config.check()
    ends = {}
    for fast in (True, False):
        tf.keras.utils.set_random_seed(7)
        net = build(name, train, config)
        net.fast_loop = fast
        traced, step = [], net.train_step
        net.train_step = lambda batch, step=step, traced=traced: traced.append(1) or step(batch)
        history = net.fit(training_dataset(config, train, model=net), epochs=2, verbose=0)
        ends[fast] = ([v.numpy() for v in net.trainable_variables], history.history["loss"], len(traced))
    (fast, fast_loss, fast_traces), (keras, keras_loss, keras_traces) = ends[True], ends[False]
    assert fast_traces == 1 and keras_traces == 2, (fast_traces, keras_traces)
    assert fast_loss == keras_loss
    for a, b in zip(fast, keras):
        np.testing.assert_array_equal(a, b)


def test_validation_pipeline_scores_each_epoch_as_a_fresh_pass_over_the_id_strings_would():
    """`tfrec train`'s per-epoch validation reads row numbers, cached after the first pass, through one
    endless iterator; every epoch's val_rmse and val_mae must still be those of the whole validation set."""
    from tfrec import data
    from tfrec.config import TrainConfig
    from tfrec.train.phases import _local_metrics
    from tfrec.train import build, endless, training_dataset, evaluation_dataset

    parts = data.split(data.load("synthetic:users=40,items=30,ratings=900,seed=3"), "ratio", seed=1)
    config = TrainConfig(model="biased-mf", batch_size=64, learning_rate=0.05)
    config.check()
    tf.keras.utils.set_random_seed(3)
    net = build(config.model, parts.train, config)
    val_ds, val_steps = endless(evaluation_dataset(parts.test, 64, net, cache=True))
    assert len(parts.test) % 64 and val_steps == -(-len(parts.test) // 64)  # a partial last batch too
    fresh = []

    class Fresh(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            fresh.append(_local_metrics(self.model, parts.test))  # id strings, a new pipeline, in numpy

    train_ds, steps = endless(training_dataset(config, parts.train, model=net))
    history = net.fit(
        train_ds, steps_per_epoch=steps, epochs=4, validation_data=val_ds, validation_steps=val_steps,
        callbacks=[Fresh()], verbose=0,
    ).history  # fmt: skip
    assert history["val_rmse"][0] - history["val_rmse"][-1] > 0.05  # the model moved between the passes
    np.testing.assert_allclose(history["val_rmse"], [m["test_rmse"] for m in fresh], rtol=1e-5)
    np.testing.assert_allclose(history["val_mae"], [m["test_mae"] for m in fresh], rtol=1e-5)


def test_tf_floor_benchmark_runs_on_a_tiny_dataset():
    """benchmarks/tf_floor.py (hand-written TF biased MF, the floor under tfrec's time to a target) runs."""
    script = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "tf_floor.py")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TFREC_OFFLINE": "1"}
    spec = "synthetic:users=40,items=30,ratings=900,seed=1"
    result = subprocess.run([sys.executable, script, "--data", spec, "--target", "5.0", "--epochs", "2"],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reached 5.0 after 1 epochs" in result.stdout, result.stdout
    unreachable = subprocess.run([sys.executable, script, "--data", spec, "--target", "0.0", "--epochs", "2"],
                                 capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert unreachable.returncode == 0 and "not reached 0.0 in 2 epochs" in unreachable.stdout, unreachable.stdout


@pytest.mark.parametrize("eager", [False, True])
def test_on_batch_methods_run_one_step_on_a_model_built_with_many_steps_per_execution(eager):
    """Keras 2 runs steps_per_execution steps per *_on_batch call ("End of sequence" on one batch, eagerly
    too); tfrec's models run one, and a later fit still runs every batch (its functions keep the real count)."""
    from tfrec import data
    from tfrec.config import TrainConfig
    from tfrec.train import build

    parts = data.split(data.load("synthetic:users=40,items=30,ratings=900,seed=1"), "ratio", seed=1)
    net = build("biased-mf", parts.train, TrainConfig(model="biased-mf"))
    net.compile(optimizer=net.optimizer, steps_per_execution=128, run_eagerly=eager)
    assert int(net._steps_per_execution.numpy()) == 128
    batch = next(iter(data.dataset(parts.train, 64)))
    before = [w.numpy().copy() for w in net.trainable_weights]
    logs = net.train_on_batch(batch, return_dict=True)
    assert logs["loss"] > 0 and any(np.abs(a - w.numpy()).max() > 0 for a, w in zip(before, net.trainable_weights))
    assert int(net._train_counter.numpy()) == 1 and int(net._steps_per_execution.numpy()) == 128
    assert net.test_on_batch(batch, return_dict=True)["rmse"] > 0
    np.testing.assert_allclose(net.predict_on_batch(batch), net(batch).numpy(), rtol=1e-6)
    net.fit(data.dataset(parts.train, 64, shuffle=True), epochs=2, verbose=0)
    assert int(net._train_counter.numpy()) == 2 * -(-len(parts.train) // 64)  # every batch of both epochs
    predicted = net.predict(data.dataset(parts.test, 64), verbose=0)
    assert predicted.shape == (len(parts.test),)


@pytest.mark.parametrize(
    "name, optimizer, lr",
    # Each optimizer whose step has a native kernel outside XLA (Adam on NeuMF's tables and tower).
    [("mf", "lazy-adam", 0.05), ("mf", "adagrad", 0.5), ("neumf", "adam", 0.01)],
)
def test_a_model_compiled_with_xla_trains_as_without(name, optimizer, lr):
    """XLA compiles no custom op: inside `jit_compile` the optimizers take TensorFlow's ops (Adagrad's rows as a
    gather and two scatters), with the same arithmetic, so the losses and the test RMSE are the same."""
    from tfrec import data
    from tfrec.config import TrainConfig
    from tfrec.train import build, endless, evaluation_dataset, training_dataset

    parts = data.split(data.load("synthetic:users=40,items=30,ratings=900,seed=1"), "ratio", seed=1)
    config = TrainConfig(model=name, optimizer=optimizer, learning_rate=lr, batch_size=64, steps_per_execution=16)
    config.check()
    losses, rmses = [], []
    for jit in (False, True):
        tf.keras.utils.set_random_seed(1)
        net = build(name, parts.train, config)
        net.compile(optimizer=net.optimizer, steps_per_execution=config.steps_per_execution, jit_compile=jit)
        ds, steps = endless(training_dataset(config, parts.train, model=net))
        losses.append(net.fit(ds, steps_per_epoch=steps, epochs=3, verbose=0).history["loss"])
        rmses.append(net.evaluate(evaluation_dataset(parts.test, 64, net), verbose=0, return_dict=True)["rmse"])
    assert losses[0][0] - losses[0][-1] > 0.01  # it trains
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    np.testing.assert_allclose(rmses[1], rmses[0], rtol=1e-5)


def test_autorec_refuses_xla_with_one_clear_error():
    """AutoRec's pair scores read its stored ratings with ragged and sparse ops, which XLA does not compile:
    fit, evaluate and predict with jit_compile=True are refused before any step runs, not inside XLA."""
    from tfrec import data
    from tfrec.config import TrainConfig
    from tfrec.errors import TfrecError
    from tfrec.train import build, evaluation_dataset, training_dataset

    parts = data.split(data.load("synthetic:users=40,items=30,ratings=900,seed=1"), "ratio", seed=1)
    config = TrainConfig(model="autorec-i", batch_size=8)
    net = build("autorec-i", parts.train, config)
    net.compile(optimizer=net.optimizer, steps_per_execution=4, jit_compile=True)
    before = [w.numpy().copy() for w in net.trainable_weights]
    with pytest.raises(TfrecError, match="jit_compile=True"):
        net.fit(training_dataset(config, parts.train, model=net), epochs=1, verbose=0)
    for call in (net.evaluate, net.predict):
        with pytest.raises(TfrecError, match="jit_compile=True"):
            call(evaluation_dataset(parts.test, 64, net), verbose=0)
    assert all((a == w.numpy()).all() for a, w in zip(before, net.trainable_weights))  # nothing ran
    net.compile(optimizer=net.optimizer, steps_per_execution=4, jit_compile=False)
    assert net.evaluate(evaluation_dataset(parts.test, 64, net), verbose=0, return_dict=True)["rmse"] > 0


def test_models_built_one_after_another_do_not_warn_of_retracing(caplog):
    """A sweep builds model after model; each traces its own loop function once, which TF's retracing
    detector would otherwise report as one function retraced again and again."""
    from tfrec import data
    from tfrec.config import TrainConfig
    from tfrec.train import build, endless, training_dataset

    parts = data.split(data.load("synthetic:users=40,items=30,ratings=900,seed=1"), "ratio", seed=1)
    config = TrainConfig(model="biased-mf", batch_size=64)
    with caplog.at_level("WARNING", logger="tensorflow"):
        for _ in range(6):
            net = build("biased-mf", parts.train, config)
            ds, steps = endless(training_dataset(config, parts.train, model=net))
            net.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


@pytest.mark.parametrize("name", ["biased-mf", "neumf"])
def test_the_keras_users_path_is_the_fast_path_with_the_same_numbers(name):
    """from_table + compile(optimizer="adam") + fit(model.dataset(...)): tfrec's Adam, variables made before
    the first trace (the step is traced once), row-number batches; the weights equal those of Keras' Adam fed
    the id strings, the path a Keras user would otherwise write."""
    from tfrec import data, families
    from tfrec.optimizers import Adam

    train = data.split(data.load("synthetic:users=40,items=30,ratings=800,seed=2"), "ratio", seed=1).train
    cls = families.model_class(name)
    runs = {}
    for path in ("keras", "fast"):
        tf.keras.utils.set_random_seed(7)
        model = cls.from_table(train)
        if path == "fast":
            model.compile(optimizer="adam", steps_per_execution=8)
            assert type(model.optimizer) is Adam
            traced, step = [], model.train_step
            model.train_step = lambda batch, traced=traced, step=step: traced.append(1) or step(batch)  # per trace
            model.fit(model.dataset(train, 64, shuffle=True, seed=3), epochs=2, verbose=0)
            assert len(traced) == 1  # a step that creates variables on its first call is traced twice
        else:
            model.compile(optimizer=tf.keras.optimizers.Adam(), steps_per_execution=8)
            model.fit(data.dataset(train, 64, shuffle=True, seed=3), epochs=2, verbose=0)
        runs[path] = [w.numpy() for w in model.weights]
    for fast, keras in zip(runs["fast"], runs["keras"]):
        np.testing.assert_allclose(fast, keras, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["biased-mf", "autorec-i"])
def test_fit_reads_tfrec_pipelines_through_one_iterator_with_the_batches_keras_would_read(name):
    """`model.fit(model.training_dataset(...))` repeats the pipeline with `steps_per_epoch` (one iterator, as
    `tfrec train`); the weights and per-epoch metrics must be those of Keras' new iterator every epoch."""
    from tfrec import data, families
    from tfrec.data.pipeline import is_epoch_pipeline

    parts = data.split(data.load("synthetic:users=40,items=30,ratings=900,seed=3"), "ratio", seed=1)
    runs = []
    for own_iterator_per_epoch in (False, True):
        tf.keras.utils.set_random_seed(5)
        size = {"hidden": 8} if name.startswith("autorec") else {"dim": 8}
        net = families.model_class(name).from_table(parts.train, **size)
        net.compile(optimizer=Adam(0.05), steps_per_execution=4)
        train, test = net.training_dataset(parts.train, 64, seed=2), net.dataset(parts.test, 64)
        assert is_epoch_pipeline(train) and is_epoch_pipeline(test)
        if own_iterator_per_epoch:  # any change to a pipeline makes it an ordinary dataset for Keras
            train, test = train.map(lambda batch: batch), test.map(lambda batch: batch)
            assert not is_epoch_pipeline(train)
        history = net.fit(train, epochs=3, validation_data=test, verbose=0).history
        runs.append((history, [w.numpy() for w in net.weights]))
    (ours, ours_weights), (keras, keras_weights) = runs
    assert ours["val_rmse"][0] > ours["val_rmse"][-1]  # it learned across the epochs
    np.testing.assert_allclose(ours["val_rmse"], keras["val_rmse"], rtol=1e-6)
    np.testing.assert_allclose(ours["loss"], keras["loss"], rtol=1e-6)
    for a, b in zip(ours_weights, keras_weights):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
