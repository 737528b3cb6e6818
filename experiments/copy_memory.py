"""The copy-memory task: reproduce ten symbols after T blank steps.

    python -m experiments.copy_memory --cell=gru --out runs/copy-gru      # T 100
    python -m experiments.copy_memory --quick --out /tmp/copy             # T 10, a smoke run
    python -m experiments.copy_memory --cell=exp_rnn --length=500 --steps=1000 --seeds=3 --out runs/copy-T500-exp_rnn

The input is one-hot (blank, 8 symbols, delimiter); a linear readout of every hidden state gives logits
over the classes, trained with the mean cross-entropy over all steps (``rnnjax.datasets.copy_task``).
A memoryless model scores ``10 ln 8 / (T + 20)`` nats per step: 0.173 at T 100, 0.040 at T 500; with
``--seeds=N`` the summary counts the seeds below a tenth of it (the task solved). See the README's results
table for what the cells reach and how long it takes on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import optax

import rnnjax
from experiments import _cli, _common
from rnnjax.datasets import copy_baseline, copy_task

N_SYMBOLS, N_COPY = 8, 10
N_CLASSES = N_SYMBOLS + 2


@dataclasses.dataclass(frozen=True)
class Config(_common.TrainConfig):
    cell: str = "gru"
    length: int = 100
    seeds: int = 1  # > 1: seed, seed + 1, ... each in OUT/seed-K, summarised in OUT/seeds.json
    # the longest dependency the cell's recipe is set for (chrono T_max, IndRNN's bound); 0: the sequence,
    # length + 20. Tallec & Ollivier 2018 use 3T/2 for the copy task.
    t_max: int = 0


QUICK = dict(length=10, hidden=32, steps=300, eval_every=100, checkpoint_every=100, learning_rate=3e-3)


def build(cfg: Config):
    t_max = cfg.t_max or cfg.length + 2 * N_COPY
    cell = _common.make_cell(cfg.cell, cfg.hidden, t_max=t_max)
    readout = rnnjax.mlp([N_CLASSES], activation="identity")
    k_init, k_out, k_data, k_eval, k_run = jax.random.split(jax.random.key(cfg.seed), 5)
    params = {"cell": cell.init(k_init, N_CLASSES), "readout": readout.init(k_out, cfg.hidden)}
    optimizer = _common.make_optimizer(cfg, t_max=t_max)

    def logits(params, tokens):
        _, hs = rnnjax.unroll(cell, params["cell"], jax.nn.one_hot(tokens, N_CLASSES), fast=cfg.fast)
        return readout.apply(params["readout"], hs)

    def metrics(params, batch):
        inputs, targets = batch
        out = jax.vmap(logits, in_axes=(None, 0))(params, inputs)
        xent = optax.softmax_cross_entropy_with_integer_labels(out, targets)
        recalled = jnp.mean(jnp.argmax(out[:, -N_COPY:], -1) == targets[:, -N_COPY:])
        return {"xent": jnp.mean(xent), "recall_accuracy": recalled}

    def loss_fn(params, batch, key):
        del key
        m = metrics(params, batch)
        return m["xent"], {"recall_accuracy": m["recall_accuracy"]}

    batch_fn = jax.jit(lambda step: copy_task(jax.random.fold_in(k_data, step), cfg.batch, cfg.length, N_SYMBOLS, N_COPY))
    eval_batch = copy_task(k_eval, 1000, cfg.length, N_SYMBOLS, N_COPY)
    eval_fn = jax.jit(lambda params: metrics(params, eval_batch))
    state = rnnjax.init_state(params, optimizer, k_run)
    return state, rnnjax.make_train_step(loss_fn, optimizer), batch_fn, eval_fn


def run(cfg: Config, out=None, progress: bool = True):
    """Trains and returns ``(state, history)``; with ``seeds > 1`` every seed, and returns their summary."""
    if cfg.seeds > 1:
        solved = 0.1 * copy_baseline(cfg.length, N_SYMBOLS, N_COPY)  # "solved": below a tenth of the memoryless baseline
        return _common.over_seeds(cfg, out, lambda one, folder: run(one, folder, progress)[1], "eval_xent", below=solved)
    parts = build(cfg)
    baseline = copy_baseline(cfg.length, N_SYMBOLS, N_COPY)
    print(f"copy task, T={cfg.length}, {cfg.cell}({cfg.hidden}), {cfg.steps} steps; memoryless baseline {baseline:.4f} nats")
    start = time.perf_counter()
    state, history = _common.train(cfg, parts, out, progress)
    final = history[-1]
    print(
        f"final test cross-entropy {final['eval_xent']:.4f} nats (baseline {baseline:.4f}), recall accuracy "
        f"{final['eval_recall_accuracy']:.3f} after {cfg.steps} steps, {time.perf_counter() - start:.0f} s"
    )
    return state, history


def main(argv=None):
    return _cli.main(Config, QUICK, run, argv)


if __name__ == "__main__":
    main()
