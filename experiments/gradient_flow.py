"""Gradient flow in recurrent nets: vanishing, exploding, and what truncation does.

    python -m experiments.gradient_flow --out runs/gradient_flow                  # all three figures
    python -m experiments.gradient_flow --figure=norms --length=1000 --out ...    # one figure, longer T
    python -m experiments.gradient_flow --quick --out /tmp/gf                     # a smoke run, ~1 minute

Figures (PNG, in ``--out``):

- ``hidden_grad_norms.png``: ``‖∂L/∂h_t‖`` against t on the adding problem (L: the squared error of the
  prediction read from the last state), at initialisation and after ``steps`` updates, for a tanh RNN
  with orthogonal recurrent scale 0.9, 1.0 and 1.1, the ReLU IRNN, the LSTM and the GRU; the mean over
  ``eval_batch`` sequences, log scale (the figure of Arjovsky, Shah & Bengio 2016). ``ratios.json``
  holds ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ for each cell before and after training.
- ``exploding.png``: a tanh RNN with recurrent scale ``explode_scale`` trained by plain SGD, with and
  without clipping by global norm: gradient norm and loss per step. Unclipped, the gradient norm spikes
  and the loss blows up (training stops at the first non-finite value); clipped, it trains.
- ``truncation.png``: ``‖∂L/∂h_t‖`` of the trained LSTM with truncated BPTT chunks of 10 and 50 steps and
  with full BPTT: the gradient reaches back one chunk at most.

On a 2-core CPU the default run (T 200, 1500 updates per cell) takes about 6 minutes.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import jax
import jax.numpy as jnp

import rnnjax
from experiments import _cli, _common
from rnnjax import diagnostics
from rnnjax.datasets import adding_task
from rnnjax.run_dir import RunDir
from rnnjax.train import NonFiniteError, check_finite

FIGURE_CELLS = {
    "rnn-0.9": lambda h, t: rnnjax.rnn(h, recurrent_scale=0.9),
    "rnn-1.0": lambda h, t: rnnjax.rnn(h, recurrent_scale=1.0),
    "rnn-1.1": lambda h, t: rnnjax.rnn(h, recurrent_scale=1.1),
    **{name: _common.CELLS[name] for name in ("irnn", "lstm", "gru", "chrono_lstm", "exp_rnn")},
}
"""The lines of the ``‖∂L/∂h_t‖`` figure, ``(hidden, T) -> cell``: cells of the experiments' table
(``_common.CELLS``; chrono with ``T_max = T``) and the tanh RNN at
three scales of its recurrent weights (below, at and above the edge of chaos)."""


@dataclasses.dataclass(frozen=True)
class Config(_common.Checked):
    figure: str = "all"
    length: int = 200
    hidden: int = 128
    batch: int = 50
    steps: int = 1500
    learning_rate: float = 1e-3
    eval_batch: int = 20
    explode_scale: float = 1.5
    explode_length: int = 50
    explode_steps: int = 300
    explode_learning_rate: float = 0.1
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        if self.figure not in FIGURES:
            raise ValueError(f"unknown figure {self.figure!r}; expected one of {list(FIGURES)}")


QUICK = dict(length=20, hidden=16, steps=40, eval_batch=4, explode_scale=3.0, explode_length=10, explode_steps=40)
FIGURES = ("norms", "exploding", "truncation", "all")


def model(cell_fn, hidden, key):
    cell = cell_fn(hidden)
    readout = rnnjax.mlp([1], activation="identity")
    k1, k2 = jax.random.split(key)
    return cell, readout, {"cell": cell.init(k1, 2), "readout": readout.init(k2, hidden)}


def _loss_of_ys(readout, params, target):
    """L(ys) for one sequence: the squared error of the prediction read from the last output."""
    return lambda ys, carry: (readout.apply(params["readout"], ys[-1])[0] - target) ** 2


def mean_grad_norms(cell, readout, params, xs, targets, truncate=None):
    """``‖∂L/∂h_t‖`` averaged over a batch of sequences: ``[T]``."""

    def one(x, y):
        return diagnostics.hidden_grad_norms(cell, params["cell"], x, _loss_of_ys(readout, params, y), truncate=truncate)

    return jnp.mean(jax.vmap(one)(xs, targets), axis=0)


def train(cell, readout, params, cfg, key, optimizer=None, steps=None, length=None):
    """Trains on the adding problem; returns ``(params, history)`` (history: loss and gradient norm)."""
    optimizer = optimizer or rnnjax.make_optimizer("rmsprop", cfg.learning_rate, clip_threshold=1.0)
    length = length or cfg.length

    def loss_fn(params, batch, key):
        xs, ys = batch

        def predict(x):
            carry, _ = rnnjax.unroll(cell, params["cell"], x)
            return readout.apply(params["readout"], diagnostics._hidden(carry))[0]

        return jnp.mean((jax.vmap(predict)(xs) - ys) ** 2)

    step = rnnjax.make_train_step(loss_fn, optimizer)
    state = rnnjax.init_state(params, optimizer, key)
    history = []
    for i in range(steps or cfg.steps):
        new_state, metrics = step(state, adding_task(jax.random.fold_in(key, i), cfg.batch, length))
        record = {"step": i + 1, **{k: float(metrics[k]) for k in ("loss", "grad_norm")}}
        history.append(record)
        try:
            check_finite(i + 1, record)
        except NonFiniteError as err:
            print(f"  {err}")
            break  # keep the last parameters whose gradient was finite
        state = new_state
    return state.params, history


def figure_norms(cfg, out, key):
    import matplotlib.pyplot as plt

    xs, targets = adding_task(jax.random.fold_in(key, 10**6), cfg.eval_batch, cfg.length)
    curves, ratios, trained = {}, {}, {}
    for index, (name, cell_fn) in enumerate(FIGURE_CELLS.items()):
        start = time.perf_counter()
        cell, readout, params = model(lambda h: cell_fn(h, cfg.length), cfg.hidden, jax.random.fold_in(key, index))
        before = mean_grad_norms(cell, readout, params, xs, targets)
        ratios[name] = {"init": float(before[0] / before[-1])}
        if cfg.steps:  # steps=0 draws the initialisation alone (cheap at T = 1000)
            optimizer = rnnjax.make_optimizer("rmsprop", cfg.learning_rate, clip_threshold=1.0,
                                              lr_scales=_common.LR_SCALES.get(name))  # expRNN's a at lr/10
            params, history = train(cell, readout, params, cfg, jax.random.fold_in(key, 7), optimizer)
            after = mean_grad_norms(cell, readout, params, xs, targets)
            diverged = not all(map(jnp.isfinite, (history[-1]["loss"], history[-1]["grad_norm"])))
            ratios[name].update(trained=float(after[0] / after[-1]), final_loss=history[-1]["loss"],
                                steps_done=len(history) - diverged, diverged=bool(diverged))
        curves[name] = (before, after) if cfg.steps else (before,)
        trained[name] = (cell, readout, params)
        print(f"  {name:8s} ‖∂L/∂h_1‖/‖∂L/∂h_T‖: " + ", ".join(f"{k} {v:.4g}" for k, v in ratios[name].items()
              if isinstance(v, float)) + f"{' (diverged)' if ratios[name].get('diverged') else ''} ({time.perf_counter() - start:.0f} s)")
    panels = [(0, "at initialisation")] + ([(1, f"after {cfg.steps} updates")] if cfg.steps else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, (idx, title) in zip(axes, panels):
        for name, pair in curves.items():
            ax.semilogy(range(1, cfg.length + 1), jnp.maximum(pair[idx], 1e-30), label=name)
        ax.set_title(f"adding problem, T = {cfg.length}: {title}")
        ax.set_xlabel("t")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("‖∂L/∂h_t‖ (mean over sequences)")
    axes[-1].legend()
    fig.tight_layout()
    fig.savefig(out / "hidden_grad_norms.png", dpi=100)
    plt.close(fig)
    (out / "ratios.json").write_text(json.dumps({"length": cfg.length, "steps": cfg.steps, "ratios": ratios}, indent=2) + "\n")
    return trained, (xs, targets)


def figure_exploding(cfg, out, key):
    import matplotlib.pyplot as plt

    runs = {}
    for label, clip in [("no clipping", None), ("clipped at 1", "global_norm")]:
        cell, readout, params = model(lambda h: rnnjax.rnn(h, recurrent_scale=cfg.explode_scale), cfg.hidden, key)
        optimizer = rnnjax.make_optimizer("sgd", cfg.explode_learning_rate, clip=clip, clip_threshold=1.0)
        _, history = train(cell, readout, params, cfg, jax.random.fold_in(key, 3), optimizer, cfg.explode_steps, cfg.explode_length)
        runs[label] = history
        print(f"  {label}: {len(history)} steps, last loss {history[-1]['loss']:.4g}, max gradient norm "
              f"{max(r['grad_norm'] for r in history):.4g}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, history in runs.items():
        steps = [r["step"] for r in history]
        axes[0].semilogy(steps, [r["grad_norm"] for r in history], label=label)
        axes[1].semilogy(steps, [r["loss"] for r in history], label=label)
    axes[0].set_title(f"tanh RNN, recurrent scale {cfg.explode_scale}, SGD: gradient norm")
    axes[1].set_title("training loss (a run stops at the first NaN/inf)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "exploding.png", dpi=100)
    plt.close(fig)
    return runs


def figure_truncation(cfg, out, key, trained=None, data=None):
    import matplotlib.pyplot as plt

    if trained is None:
        cell, readout, params = model(lambda h: FIGURE_CELLS["lstm"](h, cfg.length), cfg.hidden, key)
        params, _ = train(cell, readout, params, cfg, jax.random.fold_in(key, 7))
    else:
        cell, readout, params = trained
    xs, targets = data or adding_task(jax.random.fold_in(key, 10**6), cfg.eval_batch, cfg.length)
    fig, ax = plt.subplots(figsize=(6, 4))
    chunks = [c for c in (10, 50) if c < cfg.length] + [None]
    reaches = {}
    for chunk in chunks:
        norms = mean_grad_norms(cell, readout, params, xs, targets, truncate=chunk)
        reach = reaches[chunk or "full"] = int(jnp.sum(norms > 0))
        print(f"  chunk {chunk or 'full'}: the gradient reaches back {reach} steps")
        ax.semilogy(range(1, cfg.length + 1), jnp.where(norms > 0, norms, jnp.nan), label=f"chunk {chunk or 'full'} (reach {reach})")
    ax.set_title(f"trained LSTM, T = {cfg.length}: truncated BPTT")
    ax.set_xlabel("t")
    ax.set_ylabel("‖∂L/∂h_t‖")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "truncation.png", dpi=100)
    plt.close(fig)
    return reaches


def run(cfg: Config, out=None):
    # The folder is this run's until it returns: locked, its config saved or compared (rnnjax.run_dir).
    with RunDir(out or "runs/gradient_flow", cfg) as held:
        return _figures(cfg, held.path)


def _figures(cfg: Config, out: pathlib.Path):
    key = jax.random.key(cfg.seed)
    trained = data = None
    results = {}
    if cfg.figure in ("norms", "all"):
        print("‖∂L/∂h_t‖ at initialisation and after training:")
        models, data = figure_norms(cfg, out, key)
        trained = models["lstm"]
        results["ratios"] = json.loads((out / "ratios.json").read_text())["ratios"]
    if cfg.figure in ("exploding", "all"):
        print("exploding gradients, with and without clipping:")
        results["exploding"] = figure_exploding(cfg, out, key)
    if cfg.figure in ("truncation", "all"):
        print("how far back truncated BPTT reaches:")
        results["reach"] = figure_truncation(cfg, out, key, trained, data)
    print(f"figures in {pathlib.Path(out).absolute()}")
    return results


def main(argv=None):
    return _cli.main(Config, QUICK, run, argv, default_out="runs/gradient_flow")


if __name__ == "__main__":
    main()
