"""The adding problem: gated cells remember across T steps, a tanh RNN does not.

    python -m experiments.adding --cell=lstm --out runs/adding-lstm     # T 200
    python -m experiments.adding --cell=rnn --out runs/adding-rnn
    python -m experiments.adding --quick --out /tmp/adding              # T 20, ~10 s smoke run
    python -m experiments.adding --cell=chrono_lstm --seeds=3 --out runs/adding-chrono   # 3 seeds, median and spread
    python -m experiments.launch --processes=2 --devices=2 -- experiments.adding --quick --batch=64 --data_parallel=true --out /tmp/adding-dp

A cell (``lstm``, ``gru``, tanh ``rnn``, ``irnn``: ReLU with identity init, ``chrono_lstm`` and
``chrono_gru``: chrono init with ``T_max = length``, the orthogonal ``exp_rnn``, or the linear recurrences
``min_gru``, ``min_lstm``, ``lru`` with their parallel unroll) reads the two-channel sequence; a linear
readout of its last output predicts the sum of the two marked values. Training
is RMSProp with clipping by global norm (``rnnjax.make_optimizer``), batches drawn from ``fold_in(key,
step)``. Predicting 1 always gives MSE 1/6 ≈ 0.167. See the README's results table for what each cell
reaches at T 200 and how long it takes on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

import rnnjax
from experiments import _cli, _common
from rnnjax import parallel
from rnnjax.datasets import adding_task

BASELINE = 1 / 6


@dataclasses.dataclass(frozen=True)
class Config(_common.TrainConfig):
    cell: str = "lstm"
    length: int = 200
    learning_rate: float = 3e-3
    schedule: str = "cosine"
    seeds: int = 1  # > 1: seed, seed + 1, ... each in OUT/seed-K, summarised in OUT/seeds.json
    data_parallel: bool = False  # the batch split over every device of every process (experiments/launch.py)


QUICK = dict(length=20, hidden=32, steps=400, eval_every=100, checkpoint_every=100, learning_rate=1e-2)


def build(cfg: Config):
    """``(state, train_step, batch_fn, eval_fn)`` for a config."""
    cell = _common.make_cell(cfg.cell, cfg.hidden, t_max=cfg.length)
    readout = rnnjax.mlp([1], activation="identity")
    k_init, k_out, k_data, k_eval, k_run = jax.random.split(jax.random.key(cfg.seed), 5)
    params = {"cell": cell.init(k_init, 2), "readout": readout.init(k_out, cfg.hidden)}
    optimizer = _common.make_optimizer(cfg, t_max=cfg.length)

    def predict(params, xs):
        _, ys = rnnjax.unroll(cell, params["cell"], xs, fast=cfg.fast)
        return readout.apply(params["readout"], ys[-1])[0]

    def mse(params, batch):
        xs, targets = batch
        return jnp.mean((jax.vmap(predict, in_axes=(None, 0))(params, xs) - targets) ** 2)

    def loss_fn(params, batch, key):
        del key
        return mse(params, batch)

    batch_fn = jax.jit(lambda step: adding_task(jax.random.fold_in(k_data, step), cfg.batch, cfg.length))
    eval_batch = adding_task(k_eval, 1000, cfg.length)
    eval_mse = jax.jit(mse)
    state = rnnjax.init_state(params, optimizer, k_run)
    train_step = rnnjax.make_train_step(loss_fn, optimizer)
    if cfg.data_parallel:
        # One mesh axis over every device of every process; the state replicated, each batch split along it;
        # XLA all-reduces the gradients. Row r of step s is drawn from its own key, fold_in(fold_in(k, s), r),
        # so each process draws only its rows (parallel.process_rows) and the global batch is the same for
        # any number of processes (not the batch of a run without --data_parallel).
        mesh = Mesh(np.asarray(jax.devices()), ("data",))
        rows = parallel.process_rows(cfg.batch)

        @jax.jit
        def local_rows(step):
            keys = jax.vmap(lambda r: jax.random.fold_in(jax.random.fold_in(k_data, step), r))(jnp.arange(rows.start, rows.stop))
            xs, targets = jax.vmap(lambda k: adding_task(k, 1, cfg.length))(keys)
            return xs[:, 0], targets[:, 0]

        batch_fn = lambda step: parallel.shard_local_batch(local_rows(step), mesh)  # noqa: E731
        state, eval_batch = parallel.replicate(state, mesh), parallel.replicate(eval_batch, mesh)
    return state, train_step, batch_fn, lambda params: {"mse": eval_mse(params, eval_batch)}


def run(cfg: Config, out=None, progress: bool = True):
    """Trains and returns ``(state, history)``; with ``seeds > 1`` every seed, and returns their summary."""
    if cfg.seeds > 1:
        return _common.over_seeds(cfg, out, lambda one, folder: run(one, folder, progress)[1], "eval_mse", below=0.01)
    parts = build(cfg)
    print(f"adding problem, T={cfg.length}, {cfg.cell}({cfg.hidden}), {cfg.steps} steps; baseline MSE {BASELINE:.3f}")
    start = time.perf_counter()
    state, history = _common.train(cfg, parts, out, progress)
    final = history[-1]["eval_mse"]
    print(f"final test MSE {final:.4f} ({final / BASELINE:.3f} x baseline) after {cfg.steps} steps, {time.perf_counter() - start:.0f} s")
    return state, history


def main(argv=None):
    return _cli.main(Config, QUICK, run, argv)


if __name__ == "__main__":
    main()
