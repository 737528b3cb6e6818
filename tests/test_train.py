"""The train step, the loop, checkpoints, resumption after SIGKILL, and truncated BPTT."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnnjax
from rnnjax.checkpoint import CheckpointError, Checkpointer
from rnnjax.train import NonFiniteError, tree_equal
from tests.helpers import assert_trees_close, perturb, wait_for_checkpoint

ROOT = pathlib.Path(__file__).parents[1]


def regression_setup(hidden=4, clip_threshold=0.5):
    cell = rnnjax.gru(hidden)
    params = {"cell": cell.init(jax.random.key(0), 2), "w": jnp.ones((hidden,))}

    def loss_fn(params, batch, key):
        xs, ys = batch
        pred = jax.vmap(lambda x: rnnjax.unroll(cell, params["cell"], x)[0] @ params["w"])(xs)
        noise = 0.0 * jax.random.normal(key, ())  # the key is threaded through, and unused
        return jnp.mean((pred - ys) ** 2) + noise

    opt = rnnjax.make_optimizer("rmsprop", 1e-2, clip_threshold=clip_threshold)
    return cell, params, loss_fn, opt


def batch_at(step, n=8, length=5):
    k1, k2 = jax.random.split(jax.random.fold_in(jax.random.key(42), step))
    return jax.random.normal(k1, (n, length, 2)), jax.random.normal(k2, (n,))


def test_train_step_compiles_once_for_new_batches_and_learning_rates():
    _, params, loss_fn, opt = regression_setup()
    counted = chex.assert_max_traces(loss_fn, n=1)
    step = rnnjax.make_train_step(counted, opt)
    state = rnnjax.init_state(params, opt, jax.random.key(1))
    for i in range(6):
        state.opt_state.hyperparams["learning_rate"] = jnp.float32(10.0 ** -(i % 3 + 1))
        state, metrics = step(state, batch_at(i))
    assert int(state.step) == 6
    assert step._cache_size() == 1
    chex.clear_trace_counter()


def test_metrics_are_the_norms_they_claim():
    _, params, loss_fn, opt = regression_setup(clip_threshold=1e-3)
    state = rnnjax.init_state(params, opt, jax.random.key(1))
    batch = batch_at(0)
    new, metrics = rnnjax.make_train_step(loss_fn, opt)(state, batch)
    key = jax.random.fold_in(state.key, 0)
    loss, grads = jax.value_and_grad(loss_fn)(params, batch, key)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-6)
    np.testing.assert_allclose(metrics["grad_norm"], optax.tree.norm(grads), rtol=1e-5)
    np.testing.assert_allclose(metrics["grad_norm_clipped"], 1e-3, rtol=1e-4)  # the threshold binds
    updates = jax.tree.map(jnp.subtract, new.params, params)
    np.testing.assert_allclose(metrics["update_norm"], optax.tree.norm(updates), rtol=1e-4)
    np.testing.assert_allclose(metrics["param_norm"], optax.tree.norm(new.params), rtol=1e-6)
    np.testing.assert_allclose(metrics["learning_rate"], 1e-2, rtol=1e-6)
    np.testing.assert_allclose(metrics["grad_norm/cell/w_h"], jnp.linalg.norm(grads["cell"]["w_h"]), rtol=1e-5)
    groups = [v for k, v in metrics.items() if k.startswith("grad_norm/")]
    assert len(groups) == 5  # w_x, w_h, w_hn, b of the GRU, and w
    np.testing.assert_allclose(np.sqrt(sum(np.square(groups))), metrics["grad_norm"], rtol=1e-5)


def test_fit_lowers_the_loss_and_writes_its_outputs(tmp_path):
    _, params, loss_fn, opt = regression_setup()
    state = rnnjax.init_state(params, opt, jax.random.key(1))
    step = rnnjax.make_train_step(loss_fn, opt)
    fixed = batch_at(0)
    state, history = rnnjax.fit(
        step, state, lambda s: fixed, 60, out_dir=tmp_path, log_every=10, checkpoint_every=20, progress=False,
        eval_fn=lambda p: {"loss": loss_fn(p, fixed, jax.random.key(0))}, eval_every=30,
    )
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [10, 20, 30, 40, 50, 60]
    assert "eval_loss" in lines[2] and "eval_loss" not in lines[1]
    assert json.loads((tmp_path / "metrics.json").read_text())["step"] == 60
    assert (tmp_path / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 60
    # running the same command again resumes at the end: nothing trains, the evaluation is still reported
    again, history = rnnjax.fit(step, rnnjax.init_state(params, opt, jax.random.key(1)), lambda s: fixed, 60,
                                out_dir=tmp_path, progress=False, eval_fn=lambda p: {"loss": loss_fn(p, fixed, jax.random.key(0))})
    assert int(again.step) == 60 and len(history) == 1 and history[0]["eval_loss"] == pytest.approx(lines[-1]["eval_loss"])
    assert json.loads((tmp_path / "metrics.json").read_text())["step"] == 60


def test_train_s_adds_up_over_resumed_sittings(tmp_path):
    """A seed's wall time in a results table must be the run's, not the last sitting's: ``train_s`` goes
    on from the record at the checkpoint a run resumes from."""
    _, params, loss_fn, opt = regression_setup()
    step = rnnjax.make_train_step(loss_fn, opt)
    fixed = batch_at(0)

    def fit(steps):
        return rnnjax.fit(step, rnnjax.init_state(params, opt, jax.random.key(1)), lambda s: fixed, steps,
                          out_dir=tmp_path, log_every=10, checkpoint_every=20, progress=False, plot=False,
                          eval_fn=lambda p: {"loss": loss_fn(p, fixed, jax.random.key(0))})[1]

    first = fit(20)
    times = [r["train_s"] for r in first]
    assert times == sorted(times) and times[0] > 0
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    lines[-1]["train_s"] = 1000.0  # as if the first sitting had trained for 1,000 s
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert fit(20)[-1]["train_s"] == 1000.0  # resumed at the end: nothing trained, the time is the run's
    resumed = fit(40)
    assert [r["step"] for r in resumed] == [30, 40]
    assert 1000.0 < resumed[0]["train_s"] < resumed[1]["train_s"] < 1000.0 + 120
    assert json.loads((tmp_path / "metrics.json").read_text())["train_s"] == resumed[-1]["train_s"]


def test_on_eval_changes_the_state_training_goes_on_with(tmp_path):
    _, params, loss_fn, opt = regression_setup()
    step = rnnjax.make_train_step(loss_fn, opt)
    fixed = batch_at(0)
    calls = []

    def freeze(state, history):  # at the first evaluation the learning rate goes to 0: nothing moves after
        calls.append((int(state.step), history[-1]["eval_loss"]))
        return state._replace(opt_state=optax.tree.set(state.opt_state, learning_rate=jnp.zeros([])))

    state, history = rnnjax.fit(step, rnnjax.init_state(params, opt, jax.random.key(1)), lambda s: fixed, 30,
                                out_dir=tmp_path, eval_fn=lambda p: {"loss": loss_fn(p, fixed, jax.random.key(0))},
                                eval_every=10, log_every=10, checkpoint_every=10, progress=False, plot=False, on_eval=freeze)
    assert [c[0] for c in calls] == [10, 20, 30]
    assert history[1]["eval_loss"] == history[2]["eval_loss"] == calls[0][1]  # frozen from step 10 on
    restored, _ = Checkpointer(tmp_path / "checkpoints").restore(state)
    assert float(restored.opt_state.hyperparams["learning_rate"]) == 0.0  # the checkpoint keeps the change


def test_early_stopping_ends_the_run_and_a_rerun_does_not_train_past_it(tmp_path):
    """``fit(stop=...)``: the one loop also serves training that stops on validation (the sentiment folds)."""
    _, params, loss_fn, opt = regression_setup()
    step = rnnjax.make_train_step(loss_fn, opt)
    state0 = rnnjax.init_state(params, opt, jax.random.key(1))
    evaluations = []

    def eval_fn(params):
        evaluations.append(1)
        return {"n": float(len(evaluations))}

    stop = lambda history: history[-1]["eval_n"] >= 3  # noqa: E731
    state, history = rnnjax.fit(step, state0, batch_at, 100, out_dir=tmp_path, eval_fn=eval_fn, eval_every=4,
                                checkpoint_every=50, progress=False, stop=stop)
    assert int(state.step) == 12 and history[-1]["stopped_early"] == 12
    assert json.loads((tmp_path / "metrics.json").read_text())["stopped_early"] == 12
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 12  # checkpointed where it stopped
    again, _ = rnnjax.fit(step, state0, batch_at, 100, out_dir=tmp_path, eval_fn=eval_fn, eval_every=4,
                          checkpoint_every=50, progress=False, stop=stop)
    assert int(again.step) == 12 and tree_equal(again.params, state.params)  # resumed at the stop: no more training
    alone, _ = rnnjax.fit(step, state0, batch_at, 100, eval_fn=lambda p: {"n": 1.0}, eval_every=5, progress=False,
                          stop=lambda history: len(history) == 2)
    assert int(alone.step) == 10


def test_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path):
    _, params, loss_fn, opt = regression_setup()

    def exploding(params, batch, key):
        xs, ys = batch
        return loss_fn(params, (xs, ys), key) * jnp.where(ys[0] > 100.0, jnp.inf, 1.0)

    step = rnnjax.make_train_step(exploding, opt)
    state = rnnjax.init_state(params, opt, jax.random.key(1))
    bad = lambda s: (batch_at(s)[0], batch_at(s)[1].at[0].set(1e3 if s == 7 else 0.0))  # noqa: E731
    with pytest.raises(NonFiniteError, match="training stopped at step 8: loss is inf"):
        rnnjax.fit(step, state, bad, 20, out_dir=tmp_path, log_every=1, checkpoint_every=2, progress=False)
    ckpt = Checkpointer(tmp_path / "checkpoints")
    assert ckpt.latest_step() == 6
    restored, meta = ckpt.restore(state)
    assert meta == {"step": 6, "data_position": 6}
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(restored.params))


def test_checkpoint_round_trip_and_bad_checkpoints(tmp_path):
    _, params, loss_fn, opt = regression_setup()
    state = rnnjax.init_state(perturb(params, jax.random.key(3)), opt, jax.random.key(1))
    state, _ = rnnjax.make_train_step(loss_fn, opt)(state, batch_at(0))
    ckpt = Checkpointer(tmp_path / "a")
    ckpt.save(state, data_position=1)
    restored, meta = ckpt.restore(state)
    assert tree_equal(restored.params, state.params) and tree_equal(restored.opt_state, state.opt_state)
    assert tree_equal(jax.random.key_data(restored.key), jax.random.key_data(state.key))
    assert meta["data_position"] == 1

    _, other, _, _ = regression_setup(hidden=5)
    with pytest.raises(CheckpointError, match="another model shape"):
        ckpt.restore(rnnjax.init_state(other, opt, jax.random.key(1)))

    biggest = max((p for p in (tmp_path / "a").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="checkpoint 1 .* fails its digest"):
        Checkpointer(tmp_path / "a").restore(state)
    (tmp_path / "a" / "1" / "rnnjax.sha256").unlink()  # a checkpoint without a digest: orbax's own errors
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        Checkpointer(tmp_path / "a").restore(state)
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        Checkpointer(tmp_path / "empty").restore(state)


def test_unwritable_output_folder(tmp_path):
    _, params, loss_fn, opt = regression_setup()
    state = rnnjax.init_state(params, opt, jax.random.key(1))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match="output folder .* cannot be written"):
        rnnjax.fit(rnnjax.make_train_step(loss_fn, opt), state, batch_at, 2, out_dir=blocker / "run", progress=False)


def _adding_command(out, steps):
    return [sys.executable, "-m", "experiments.adding", "--quick", f"--out={out}", f"--steps={steps}", "--checkpoint_every=25"]


def test_sigkilled_run_resumes_to_the_same_parameters(tmp_path):
    """A real process is killed with SIGKILL mid-run; rerunning the command finishes bit-identically."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    steps = 200
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_adding_command(full, steps), cwd=ROOT, env=env, check=True, capture_output=True)

    proc = subprocess.Popen(_adding_command(killed, steps), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_checkpoint(proc, killed / "checkpoints", 50)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = Checkpointer(killed / "checkpoints").latest_step()
    assert 50 <= interrupted_at < steps

    resumed = subprocess.run(_adding_command(killed, steps), cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    assert "resumed from" in resumed.stdout

    from experiments.adding import QUICK, Config, build
    import dataclasses

    template = build(dataclasses.replace(Config(**QUICK), steps=steps))[0]
    a, _ = Checkpointer(full / "checkpoints").restore(template)
    b, _ = Checkpointer(killed / "checkpoints").restore(template)
    assert int(a.step) == int(b.step) == steps
    assert tree_equal(a.params, b.params) and tree_equal(a.opt_state, b.opt_state)
    full_losses = {r["step"]: r["loss"] for r in rnnjax.train.read_metrics(full / "metrics.jsonl")}
    killed_losses = {r["step"]: r["loss"] for r in rnnjax.train.read_metrics(killed / "metrics.jsonl")}
    assert killed_losses == full_losses  # the same loss at every logged step, before and after the kill


# --- truncated BPTT ---------------------------------------------------------------------------------


def tbptt_setup(T=12):
    cell = rnnjax.lstm(3)
    params = perturb(cell.init(jax.random.key(0), 2), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (T, 2))
    return cell, params, xs


def seq_loss(ys):
    return jnp.sum(jnp.sin(ys) * jnp.arange(1, ys.shape[0] + 1)[:, None])


@pytest.mark.parametrize("fast", [True, False])
def test_one_chunk_is_full_bptt(fast):
    cell, params, xs = tbptt_setup()
    full = jax.grad(lambda p: seq_loss(rnnjax.unroll(cell, p, xs, fast=fast)[1]))(params)
    one = jax.grad(lambda p: seq_loss(rnnjax.truncated_unroll(cell, p, xs, 12, fast=fast)[1]))(params)
    assert_trees_close(one, full, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 4, 5])
def test_chunked_gradient_is_the_sum_over_chunks_by_hand(chunk):
    cell, params, xs = tbptt_setup()
    T = xs.shape[0]
    got = jax.grad(lambda p: seq_loss(rnnjax.truncated_unroll(cell, p, xs, chunk)[1]))(params)
    # by hand: run forward for the carries, then each chunk's loss from a constant carry
    weights = jnp.arange(1, T + 1)[:, None]
    expected = jax.tree.map(jnp.zeros_like, params)
    carry = cell.initial_carry(params)
    for start in range(0, T, chunk):
        stop = min(start + chunk, T)
        c0 = carry

        def chunk_loss(p, c0=c0, start=start, stop=stop):
            _, ys = rnnjax.unroll(cell, p, xs[start:stop], c0, fast=False)
            return jnp.sum(jnp.sin(ys) * weights[start:stop])

        expected = jax.tree.map(jnp.add, expected, jax.grad(chunk_loss)(params))
        carry, _ = rnnjax.unroll(cell, params, xs[start:stop], carry, fast=False)
    assert_trees_close(got, expected, atol=1e-5)
    if chunk < T:  # and it differs from full BPTT
        full = jax.grad(lambda p: seq_loss(rnnjax.unroll(cell, p, xs)[1]))(params)
        assert not np.allclose(got["w_h"], full["w_h"], atol=1e-4)


def test_truncated_values_equal_full_unroll_with_mask():
    cell, params, xs = tbptt_setup()
    mask = jnp.arange(12) < 9
    assert_trees_close(rnnjax.truncated_unroll(cell, params, xs, 5, mask=mask), rnnjax.unroll(cell, params, xs, mask=mask), atol=1e-6)


def test_stateful_training_passes_the_carry_between_batches():
    cell = rnnjax.gru(3)
    params = cell.init(jax.random.key(0), 2)

    def loss_fn(params, batch, key, carry):
        carry, ys = rnnjax.truncated_unroll(cell, params, batch, 4, carry)
        return jnp.mean(ys**2), carry

    opt = rnnjax.make_optimizer("sgd", 0.0)  # no update: the carry alone links the batches
    step = rnnjax.make_train_step(loss_fn, opt, stateful=True)
    state = rnnjax.init_state(params, opt, jax.random.key(1), carry=cell.initial_carry(params))
    stream = jax.random.normal(jax.random.key(5), (16, 2))
    for i in range(4):
        state, _ = step(state, stream[4 * i : 4 * (i + 1)])
    carry_ref, _ = rnnjax.unroll(cell, params, stream)
    assert_trees_close(state.carry, carry_ref, atol=1e-6)


@pytest.mark.parametrize("chunk,match", [(0, "chunk length must be positive, got 0"), (-2, "must be positive"), (13, "chunk length 13 is larger than the sequence \\(12 steps\\)")])
def test_bad_chunk_lengths(chunk, match):
    cell, params, xs = tbptt_setup()
    with pytest.raises(ValueError, match=match):
        rnnjax.truncated_unroll(cell, params, xs, chunk)


def test_fit_evaluates_the_average_of_the_params_and_a_resumed_run_keeps_it(tmp_path):
    """With ``make_optimizer(average=1)`` (the uniform average of every step) the evaluation sees the mean of
    the trajectory, not the last params; the average is in the checkpoint, so a run stopped and resumed
    ends with the same average, bit for bit, as one that was not."""
    _, params, loss_fn, _ = regression_setup()
    opt = rnnjax.make_optimizer("rmsprop", 1e-2, clip_threshold=0.5, average=1.0)
    step = rnnjax.make_train_step(loss_fn, opt)
    seen = []

    def evaluate(p):
        seen.append(p)
        return {"loss": loss_fn(p, batch_at(0), jax.random.key(0))}

    trajectory, state = [], rnnjax.init_state(params, opt, jax.random.key(1))
    for s in range(20):
        state, _ = step(state, batch_at(s))
        trajectory.append(state.params)
    mean = jax.tree.map(lambda *ps: sum(ps) / len(ps), *trajectory)
    assert_trees_close(rnnjax.eval_params(state), mean, atol=1e-6)

    whole, _ = rnnjax.fit(step, rnnjax.init_state(params, opt, jax.random.key(1)), batch_at, 20, out_dir=tmp_path / "a",
                          eval_fn=evaluate, eval_every=10, checkpoint_every=10, progress=False, plot=False)
    assert tree_equal(whole.params, state.params)
    assert_trees_close(seen[-1], mean, atol=1e-6)
    assert not tree_equal(seen[-1], whole.params)
    rnnjax.fit(step, rnnjax.init_state(params, opt, jax.random.key(1)), batch_at, 10, out_dir=tmp_path / "b",
               checkpoint_every=10, progress=False, plot=False)
    resumed, _ = rnnjax.fit(step, rnnjax.init_state(params, opt, jax.random.key(1)), batch_at, 20, out_dir=tmp_path / "b",
                            progress=False, plot=False)
    assert tree_equal(rnnjax.eval_params(resumed), rnnjax.eval_params(whole))
    # without an average, the params themselves are evaluated
    plain = rnnjax.init_state(params, rnnjax.make_optimizer(), jax.random.key(1))
    assert rnnjax.eval_params(plain) is plain.params
