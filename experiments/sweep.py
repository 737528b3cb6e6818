"""Where does training succeed? A learning-rate × clip-threshold sweep on the adding problem, one program.

    python -m experiments.sweep --out runs/sweep                 # 4 x 4 grid, tanh RNN and LSTM
    python -m experiments.sweep --quick --out /tmp/sweep          # a 2 x 2 smoke run
    python -m experiments.sweep bench                             # vmapped sweep vs models one by one

For each cell (a Python loop: a cell changes shapes), every (learning rate, clip threshold, seed) of the
grid trains in one ``jax.jit(jax.vmap(train))`` (``rnnjax.sweep.train_many``): RMSProp with clipping by
global norm (``inf`` = no clipping) on the adding problem, the same batches for every model, ``steps``
updates in one ``lax.scan``. Writes, per cell, ``CELL.csv`` (final and best training loss, final held-out
MSE, per model), ``CELL_curves.png`` and ``CELL_heatmap.png`` (held-out MSE over the grid, the mean over
seeds; "diverged" where it is not finite). The adding problem's baseline (predict 1) has MSE 0.167.
``--shard=true`` spreads the models over every device (``rnnjax.sweep.sweep_mesh``); with
``jax.distributed.initialize()`` first, over every host (see the README).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import rnnjax
from experiments import _cli, _common
from rnnjax import parallel, plotting, sweep
from rnnjax.datasets import adding_task
from rnnjax.run_dir import RunDir

CELLS = _common.CELLS


@dataclasses.dataclass(frozen=True)
class Config(_common.Checked):
    cells: str = "rnn,lstm"
    hidden: int = 64
    length: int = 50
    batch: int = 32
    steps: int = 1500
    learning_rates: str = "1e-4,1e-3,1e-2,1e-1"
    clip_thresholds: str = "0.1,1,10,inf"
    seeds: int = 1
    chunk: int = 0
    shard: bool = False
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        floats(self.learning_rates, "learning_rates"), floats(self.clip_thresholds, "clip_thresholds")
        cells = [c.strip() for c in self.cells.split(",") if c.strip()]
        unknown = [c for c in cells if c not in CELLS]
        if not cells or unknown:
            raise ValueError(f"unknown cells {unknown or self.cells!r}; expected some of {sorted(CELLS)}, comma-separated")


QUICK = dict(hidden=8, length=10, batch=8, steps=40, learning_rates="1e-3,1e-2", clip_thresholds="1,inf")


def floats(text: str, name: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"empty grid: {name} has no values")
    return values


def make_train(cell, cfg: Config, eval_size: int = 500, fast: bool = True):
    """``train(hp) -> {"loss": [steps], "grad_norm": [steps], "eval_mse": ()}`` for ``hp`` with
    ``learning_rate``, ``clip_threshold`` and ``seed``: pure, so it vmaps over a sweep."""
    readout = rnnjax.mlp([1], activation="identity")
    k_data, k_eval = jax.random.split(jax.random.key(cfg.seed))

    def predict(params, xs):
        _, ys = rnnjax.unroll(cell, params["cell"], xs, fast=fast)
        return readout.apply(params["readout"], ys[-1])[0]

    def mse(params, batch):
        xs, targets = batch
        return jnp.mean((jax.vmap(predict, in_axes=(None, 0))(params, xs) - targets) ** 2)

    def train(hp):
        k_init, k_out = jax.random.split(jax.random.fold_in(jax.random.key(cfg.seed + 1), hp["seed"]))
        params = {"cell": cell.init(k_init, 2), "readout": readout.init(k_out, cell.hidden_size)}
        optimizer = rnnjax.make_optimizer("rmsprop", hp["learning_rate"], clip="global_norm", clip_threshold=hp["clip_threshold"])
        step = rnnjax.make_train_step(lambda p, batch, key: mse(p, batch), optimizer)

        def body(state, i):
            state, metrics = step(state, adding_task(jax.random.fold_in(k_data, i), cfg.batch, cfg.length))
            return state, {"loss": metrics["loss"], "grad_norm": metrics["grad_norm"]}

        state, curves = jax.lax.scan(body, rnnjax.init_state(params, optimizer, k_init), jnp.arange(cfg.steps))
        return {**curves, "eval_mse": mse(state.params, adding_task(k_eval, eval_size, cfg.length))}

    return train


def run(cfg: Config, out=None, progress: bool = True):
    out = pathlib.Path(out or "runs/sweep")
    lrs, clips = floats(cfg.learning_rates, "learning_rates"), floats(cfg.clip_thresholds, "clip_thresholds")
    cells = [c.strip() for c in cfg.cells.split(",") if c.strip()]
    hp = sweep.grid(learning_rate=lrs, clip_threshold=clips, seed=list(range(cfg.seeds)))
    # The folder is this run's until it returns: locked, its config saved or compared (rnnjax.run_dir). Over
    # several processes (experiments/launch.py) all of them train; process 0 alone holds and writes the folder.
    with RunDir(out, cfg) if parallel.is_main() else contextlib.nullcontext():
        return _sweep(cfg, out, cells, lrs, clips, hp)


def _sweep(cfg: Config, out: pathlib.Path, cells, lrs, clips, hp):
    summary = {}
    for name in cells:
        start = time.perf_counter()
        mesh = sweep.sweep_mesh() if cfg.shard else None
        results = sweep.train_many(make_train(CELLS[name](cfg.hidden, cfg.length), cfg), hp, chunk_size=cfg.chunk or None, mesh=mesh)
        wall = time.perf_counter() - start
        rows = sweep.table(hp, {"loss": results["loss"]})
        for row, value in zip(rows, results["eval_mse"]):
            row["eval_mse"] = float(value)
        grid = np.asarray(results["eval_mse"], np.float64).reshape(len(lrs), len(clips), cfg.seeds).mean(-1)
        summary[name] = {"models": len(rows), "wall_s": wall, "eval_mse": grid.tolist()}
        if not parallel.is_main():
            continue
        sweep.write_csv(out / f"{name}.csv", rows)
        labels = [f"lr {r['learning_rate']:g}, clip {r['clip_threshold']:g}, seed {r['seed']}" for r in rows]
        plotting.sweep_curves(results["loss"], labels, out / f"{name}_curves.png", ylabel="training MSE")
        plotting.sweep_heatmap(grid, clips, lrs, "clip threshold (global norm)", "learning rate", out / f"{name}_heatmap.png",
                               title=f"{name}({cfg.hidden}), adding T={cfg.length}: held-out MSE after {cfg.steps} steps")
        best = min(rows, key=lambda r: r["eval_mse"] if np.isfinite(r["eval_mse"]) else np.inf)
        print(f"{name}: {len(rows)} models in one program, {wall:.0f} s; best held-out MSE {best['eval_mse']:.4f} "
              f"(lr {best['learning_rate']:g}, clip {best['clip_threshold']:g}); "
              f"{sum(not np.isfinite(r['eval_mse']) for r in rows)} diverged")
        for lr, line in zip(lrs, grid):
            print(f"  lr {lr:<8g}" + " ".join(f"{v:9.4f}" if np.isfinite(v) else "  diverged" for v in line))
    if parallel.is_main():
        (out / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


BENCH_MODELS = (("latency-bound", 16, 1, 1), ("small", 64, 8, 1), ("compute-bound", 512, 64, 10))
"""(label, hidden, batch, step divisor): the compute-bound model trains ``steps // 10`` steps per model,
so each row of the benchmark takes comparable time."""


def _bench_arguments(parser):
    parser.add_argument("--models", type=_cli.positive_int, default=16, help="models in the sweep (default: 16)")
    parser.add_argument("--steps", type=_cli.positive_int, default=50, help="steps per model (default: 50)")
    parser.add_argument("--repeats", type=_cli.positive_int, default=3, help="timed repeats, the median reported (default: 3)")
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny models")


def bench(args):
    """``bench [--models=N] [--steps=S] [--repeats=R] [--quick]``: throughput of an N-model vmapped sweep
    against the same N models trained one after another (one compiled program each way, compile excluded,
    the two interleaved, median of R), for a latency-bound model (LSTM(16), batch 1, S steps), a small one
    (LSTM(64), batch 8, S steps) and a compute-bound one (LSTM(512), batch 64, S // 10 steps); adding
    problem, T 50. ``--quick`` is a smoke run with tiny models."""
    opts = {"models": args.models, "steps": args.steps, "repeats": args.repeats}
    models, quick = BENCH_MODELS, args.quick
    if quick:
        models = tuple((label, 4 * (i + 1), 2 * (i + 1), 1) for i, (label, *_) in enumerate(BENCH_MODELS))
        opts.update(models=2, steps=2, repeats=1)
    n, rows = opts["models"], []
    for label, hidden, batch, divisor in models:
        steps = max(1, opts["steps"] // divisor)
        train = make_train(rnnjax.lstm(hidden), Config(hidden=hidden, batch=batch, length=5 if quick else 50, steps=steps), eval_size=8)
        hp = {k: jnp.asarray(v) for k, v in sweep.grid(learning_rate=list(np.geomspace(1e-4, 1e-2, n)), clip_threshold=[1.0], seed=[0]).items()}
        single = [{k: v[i] for k, v in hp.items()} for i in range(n)]
        one, many = jax.jit(train), jax.jit(jax.vmap(train))
        t = time.perf_counter()
        jax.block_until_ready(one(single[0]))
        compile_one = time.perf_counter() - t
        t = time.perf_counter()
        vmapped_results = jax.block_until_ready(many(hp))
        compile_many = time.perf_counter() - t
        # The same model either way (tests/test_sweep.py checks this closely). Only the first steps here:
        # at lr 1e-2 training is chaotic and float rounding differences grow step by step.
        np.testing.assert_allclose(vmapped_results["loss"][-1, :3], one(single[-1])["loss"][:3], rtol=1e-3)
        times = {"vmapped": [], "in turn": []}
        for _ in range(opts["repeats"]):  # interleaved, so drifts in machine load hit both
            t = time.perf_counter()
            jax.block_until_ready(many(hp))
            times["vmapped"].append(time.perf_counter() - t)
            t = time.perf_counter()
            for h in single:
                jax.block_until_ready(one(h))
            times["in turn"].append(time.perf_counter() - t)
        vm, seq = float(np.median(times["vmapped"])), float(np.median(times["in turn"]))
        rows.append({"model": label, "hidden": hidden, "batch": batch, "steps": steps, "vmapped": n * steps / vm,
                     "in_turn": n * steps / seq, "speedup": seq / vm, "compile_vmapped_s": compile_many, "compile_one_s": compile_one})
    print(f"LSTM on the adding problem (T {5 if quick else 50}), {n} models, median of {opts['repeats']}; "
          f"{jax.device_count()} x {jax.devices()[0].device_kind}")
    print("| model | hidden | batch | steps per model | vmapped sweep (model-steps/s) | one by one (model-steps/s) | speed-up | first call, vmapped / one |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['hidden']} | {r['batch']} | {r['steps']} | {r['vmapped']:.1f} | {r['in_turn']:.1f} | "
              f"{r['speedup']:.2f}x | {r['compile_vmapped_s']:.1f} s / {r['compile_one_s']:.1f} s |")
    return rows


def main(argv=None):
    command = _cli.Command("bench", "time a vmapped sweep against the same models trained in turn", _bench_arguments, bench)
    return _cli.main(Config, QUICK, run, argv, commands=(command,), default_out="runs/sweep")


if __name__ == "__main__":
    main()
