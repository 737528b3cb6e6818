"""Sweeps in one program equal models trained alone; the sharded sweep and data-parallel training equal
their single-device runs (4 host devices, in a subprocess)."""

import math
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from experiments import sweep as sweep_experiment
from rnnjax import sweep

ROOT = pathlib.Path(__file__).parents[1]
CFG = sweep_experiment.Config(hidden=8, length=10, batch=8, steps=30)


def test_a_sweep_of_16_models_equals_each_model_trained_alone():
    train = sweep_experiment.make_train(rnnjax.lstm(CFG.hidden), CFG, eval_size=16)
    hp = sweep.grid(learning_rate=[1e-3, 3e-3, 1e-2, 3e-2], clip_threshold=[0.5, math.inf], seed=[0, 1])
    assert sweep.size(hp) == 16
    together = sweep.train_many(train, hp)
    alone = jax.jit(train)
    for i in range(16):
        one = alone({k: jnp.asarray(v[i]) for k, v in hp.items()})
        np.testing.assert_allclose(together["loss"][i], one["loss"], rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(together["eval_mse"][i], one["eval_mse"], rtol=2e-5)
    # different hyperparameters really give different models
    assert len({round(float(v), 6) for v in together["eval_mse"]}) == 16
    chunked = sweep.train_many(train, hp, chunk_size=5)  # 5 + 5 + 5 + 1 padded to 5
    np.testing.assert_allclose(chunked["loss"], together["loss"], rtol=2e-5, atol=1e-6)


def test_grid_random_search_and_table():
    hp = sweep.grid(learning_rate=[0.1, 0.2], clip_threshold=[1.0, 2.0, 3.0])
    np.testing.assert_allclose(hp["learning_rate"], [0.1, 0.1, 0.1, 0.2, 0.2, 0.2])
    np.testing.assert_allclose(hp["clip_threshold"], [1, 2, 3, 1, 2, 3])
    assert sweep.grid(seed=[0, 1])["seed"].dtype == np.int32
    rs = sweep.random_search(jax.random.key(0), 50, learning_rate=(1e-4, 1e-1, "log"), decay=(0.8, 0.99))
    assert rs["learning_rate"].min() >= 1e-4 and rs["learning_rate"].max() <= 1e-1 and np.all((rs["decay"] >= 0.8) & (rs["decay"] <= 0.99))
    assert np.median(rs["learning_rate"]) < 1e-2  # log-uniform: the median sits near the geometric middle
    np.testing.assert_array_equal(rs["decay"], sweep.random_search(jax.random.key(0), 50, learning_rate=(1e-4, 1e-1, "log"), decay=(0.8, 0.99))["decay"])
    rows = sweep.table({"lr": np.array([1.0, 2.0])}, {"loss": np.array([[3.0, 1.0, 2.0], [2.0, np.nan, np.inf]])})
    assert rows[0] == {"lr": 1.0, "final_loss": 2.0, "best_loss": 1.0, "best_loss_step": 1}
    assert math.isinf(rows[1]["final_loss"]) and rows[1]["best_loss"] == 2.0


def test_sweep_errors_are_clear():
    with pytest.raises(ValueError, match="hyperparameter arrays have different lengths: lr 3, clip 2"):
        sweep.size({"lr": np.ones(3), "clip": np.ones(2)})
    with pytest.raises(ValueError, match="empty sweep: no hyperparameter arrays"):
        sweep.size({})
    with pytest.raises(ValueError, match="empty sweep: the hyperparameter arrays have length 0"):
        sweep.size({"lr": np.ones(0)})
    with pytest.raises(ValueError, match=r"must be a 1-D array \(one value per model\), got shape \(2, 2\)"):
        sweep.size({"lr": np.ones((2, 2))})
    with pytest.raises(ValueError, match="empty grid: axis 'clip' has no values"):
        sweep.grid(lr=[1.0], clip=[])
    with pytest.raises(ValueError, match="empty grid: give at least one axis"):
        sweep.grid()
    with pytest.raises(ValueError, match="a log range needs low > 0"):
        sweep.random_search(jax.random.key(0), 3, lr=(0.0, 1.0, "log"))
    mesh = sweep.sweep_mesh(jax.devices()[:1])
    fake = type("M", (), {"shape": {"sweep": 4, "data": 1}})()
    with pytest.raises(ValueError, match="mesh axis 'sweep' of 4 devices does not divide the 6 models"):
        sweep.train_many(lambda hp: hp["lr"], {"lr": np.ones(6)}, mesh=fake)
    with pytest.raises(ValueError, match="mesh has no axis 'models'"):
        sweep.train_many(lambda hp: hp["lr"], {"lr": np.ones(2)}, mesh=mesh, axis="models")
    with pytest.raises(ValueError, match="data axis of size 3 does not divide the 1 devices"):
        sweep.sweep_mesh(jax.devices()[:1], data=3)
    with pytest.raises(ValueError, match="empty grid: learning_rates has no values"):
        sweep_experiment.run(sweep_experiment.Config(**{**sweep_experiment.QUICK, "learning_rates": ""}), out="/tmp/unused-sweep")


SHARDED = textwrap.dedent('''
    import math
    import jax, jax.numpy as jnp, numpy as np
    import rnnjax
    from experiments import sweep as ex
    from rnnjax import parallel, sweep
    assert len(jax.devices()) == 4, jax.devices()
    cfg = ex.Config(hidden=8, length=10, batch=8, steps=20)
    train = ex.make_train(rnnjax.gru(8), cfg, eval_size=16)
    hp = sweep.grid(learning_rate=[1e-3, 1e-2], clip_threshold=[0.5, math.inf], seed=[0, 1])
    plain = sweep.train_many(train, hp)
    sharded = sweep.train_many(train, hp, mesh=sweep.sweep_mesh())
    np.testing.assert_allclose(sharded["loss"], plain["loss"], rtol=2e-5, atol=1e-6)
    chunked = sweep.train_many(train, hp, chunk_size=4, mesh=sweep.sweep_mesh(data=1))
    np.testing.assert_allclose(chunked["loss"], plain["loss"], rtol=2e-5, atol=1e-6)
    try:
        sweep.train_many(train, {k: v[:6] for k, v in hp.items()}, mesh=sweep.sweep_mesh())
        raise SystemExit("a mesh that does not divide the models was accepted")
    except ValueError as err:
        assert "does not divide the 6 models" in str(err)

    # data-parallel: batch split over a 'data' axis of 4, state replicated; the same losses as one device
    cell = rnnjax.lstm(8)
    readout = rnnjax.mlp([1], activation="identity")
    def mse(p, batch, key):
        xs, ys = batch
        def f(x):
            c, _ = rnnjax.unroll(cell, p["cell"], x)
            return readout.apply(p["readout"], c.h)[0]
        return jnp.mean((jax.vmap(f)(xs) - ys) ** 2)
    k = jax.random.key(0)
    params = {"cell": cell.init(k, 2), "readout": readout.init(k, 8)}
    opt = rnnjax.make_optimizer("rmsprop", 1e-2)
    step = rnnjax.make_train_step(mse, opt)
    mesh = sweep.sweep_mesh(data=4)
    one, many = rnnjax.init_state(params, opt, k), parallel.replicate(rnnjax.init_state(params, opt, k), mesh)
    for i in range(5):
        batch = rnnjax.datasets.adding_task(jax.random.fold_in(k, i), 16, 10)
        one, m1 = step(one, batch)
        many, m4 = step(many, parallel.shard_batch(batch, mesh))
        np.testing.assert_allclose(m4["loss"], m1["loss"], rtol=1e-5)
    assert len(many.params["cell"]["w_h"].sharding.device_set) == 4
    np.testing.assert_allclose(many.params["cell"]["w_h"], one.params["cell"]["w_h"], rtol=1e-5, atol=1e-6)
    try:
        parallel.shard_batch(rnnjax.datasets.adding_task(k, 6, 10), mesh)
        raise SystemExit("a batch of 6 over 4 devices was accepted")
    except ValueError as err:
        assert "must be a multiple of the 4 devices" in str(err)
    print("sharded ok")
''')


def test_sharded_sweep_and_data_parallel_training_equal_single_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", SHARDED], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "sharded ok" in result.stdout


def test_sweep_experiment_quick_run_writes_table_and_figures(tmp_path):
    summary = sweep_experiment.run(sweep_experiment.Config(**sweep_experiment.QUICK), out=tmp_path, progress=False)
    assert set(summary) == {"rnn", "lstm"} and summary["lstm"]["models"] == 4
    for name in ("rnn", "lstm"):
        lines = (tmp_path / f"{name}.csv").read_text().splitlines()
        assert lines[0].startswith("learning_rate,clip_threshold,seed,final_loss,best_loss") and len(lines) == 5
        assert (tmp_path / f"{name}_heatmap.png").stat().st_size > 1000 and (tmp_path / f"{name}_curves.png").exists()


def test_sweep_benchmark_quick_mode_prints_every_model(capsys):
    rows = sweep_experiment.main(["bench", "--quick"])
    assert [r["model"] for r in rows] == ["latency-bound", "small", "compute-bound"]
    assert all(r["vmapped"] > 0 and r["in_turn"] > 0 and np.isclose(r["speedup"], r["vmapped"] / r["in_turn"]) for r in rows)
    printed = capsys.readouterr().out
    assert "| latency-bound |" in printed and "speed-up" in printed
    for bad in ("--models=0", "--hidden=3"):
        with pytest.raises(SystemExit) as err:
            sweep_experiment.main(["bench", bad])
        assert err.value.code == 2 and bad.split("=")[0] in err.value.message
