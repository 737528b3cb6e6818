"""Training: a pure, jitted ``train_step`` and the host loop every experiment uses.

``train_step(state, batch) -> (state, metrics)`` is handed a loss and an optimiser (it knows nothing of
models); it is compiled once and reports, every step, the loss, the gradient's global norm before and
after clipping, the update norm and the parameter norm (big_vision's habit). :func:`fit` runs it, logs
metrics to ``metrics.jsonl``, evaluates, checkpoints, resumes, draws the loss curve, and stops with a
clear message when a metric is not finite.
"""

from __future__ import annotations

import contextlib
import json
import math
import pathlib
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnnjax._ops import path_name
from rnnjax.checkpoint import Checkpointer
from rnnjax.optim import params_average
from rnnjax.run_dir import RunDir, read_metrics


class TrainState(NamedTuple):
    """Everything a training run carries from step to step.

    Attributes:
      params: the model's params.
      opt_state: the optimiser's state (with ``hyperparams`` when made by :func:`rnnjax.make_optimizer`).
      step: the number of updates done, an int32 scalar; also the data position (batch ``step`` is next).
      key: the run's PRNG key; step ``s`` uses ``jax.random.fold_in(key, s)``, never the key itself.
      carry: the recurrent state passed from batch to batch by stateful (streaming) training, else None.
    """

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array
    carry: Any = None


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or infinity; the message names the step and the metric."""


def init_state(params, optimizer, key, carry=None) -> TrainState:
    return TrainState(params, optimizer.init(params), jnp.zeros([], jnp.int32), key, carry)


def eval_params(state: TrainState):
    """The params to evaluate: the average the optimiser keeps (``make_optimizer(average=…)``,
    :func:`rnnjax.optim.average_params`) when it keeps one, else ``state.params``.

    :func:`fit` evaluates these, so model selection and the checkpoint's averaged params agree; an
    experiment's test and a model loaded from a checkpoint should read them too.
    """
    average = params_average(state.opt_state)
    return state.params if average is None else average


def _norm(tree):
    return optax.tree.norm(tree).astype(jnp.float32)


def group_grad_norms(grads) -> dict:
    """``{"grad_norm/<path>": ‖g‖}`` for every parameter array, e.g. ``grad_norm/cell/w_h``."""
    out = {}
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        out[f"grad_norm/{path_name(path, '/')}"] = jnp.sqrt(jnp.sum(jnp.square(g))).astype(jnp.float32)
    return out


def make_train_step(loss_fn: Callable, optimizer: optax.GradientTransformation, stateful: bool = False):
    """Builds ``train_step(state, batch) -> (state, metrics)``, jitted.

    Args:
      loss_fn: ``loss_fn(params, batch, key) -> loss`` or ``-> (loss, aux)`` with ``aux`` a dict of
        scalars to report; when ``stateful``, ``loss_fn(params, batch, key, carry) -> (loss, carry)``,
        and the returned carry (gradient stopped) is fed to the next batch: truncated BPTT over a
        stream.
      optimizer: any optax transformation; :func:`rnnjax.make_optimizer`'s also reports the gradient norm
        after clipping and the learning rate.

    Returns:
      The jitted step. ``metrics`` holds ``loss``, ``grad_norm`` (before clipping),
      ``grad_norm_clipped``, ``update_norm``, ``param_norm``, ``learning_rate`` (when known), one
      ``grad_norm/<path>`` per parameter array (e.g. ``grad_norm/cell/w_h``: where the gradient is) and
      the ``aux`` scalars, each a float32 scalar.
    """

    def step_fn(state: TrainState, batch):
        key = jax.random.fold_in(state.key, state.step)
        if stateful:
            (loss, carry), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, key, state.carry)
            carry, aux = jax.lax.stop_gradient(carry), {}
        else:
            (loss, aux), grads = jax.value_and_grad(_with_aux(loss_fn), has_aux=True)(state.params, batch, key)
            carry = state.carry
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = _norm(grads)
        clipped = optax.tree.get(opt_state, "grad_norm_clipped")
        metrics = {
            "loss": jnp.asarray(loss, jnp.float32),
            "grad_norm": grad_norm,
            "grad_norm_clipped": grad_norm if clipped is None else clipped,
            "update_norm": _norm(updates),
            "param_norm": _norm(params),
            **group_grad_norms(grads),
            **{k: jnp.asarray(v, jnp.float32) for k, v in aux.items()},
        }
        hyper = getattr(opt_state, "hyperparams", None)
        if hyper is not None and "learning_rate" in hyper:
            metrics["learning_rate"] = jnp.asarray(hyper["learning_rate"], jnp.float32)
        return TrainState(params, opt_state, state.step + 1, state.key, carry), metrics

    return jax.jit(step_fn)


def _with_aux(loss_fn):
    def wrapped(params, batch, key):
        out = loss_fn(params, batch, key)
        return out if isinstance(out, tuple) else (out, {})

    return wrapped


def check_finite(step: int, metrics: dict) -> None:
    """Raises :class:`NonFiniteError` naming the step and the first non-finite metric."""
    for name in ("loss", "grad_norm", *sorted(k for k in metrics if k not in ("loss", "grad_norm"))):
        if name in metrics and not math.isfinite(float(metrics[name])):
            raise NonFiniteError(
                f"training stopped at step {step}: {name} is {float(metrics[name])} "
                "(the last good checkpoint, if any, is intact; try a smaller learning rate or clipping)"
            )


def fit(
    train_step: Callable,
    state: TrainState,
    batch_fn: Callable[[int], Any],
    steps: int,
    *,
    out_dir=None,
    eval_fn: Callable[[Any], dict] | None = None,
    eval_every: int = 0,
    log_every: int = 10,
    checkpoint_every: int = 0,
    resume: bool = True,
    progress: bool = True,
    plot: bool = True,
    config=None,
    stop: Callable[[list[dict]], bool] | None = None,
    on_eval: Callable[[TrainState, list[dict]], TrainState] | None = None,
):
    """Runs ``train_step`` until ``state.step == steps`` (or ``stop`` says so); returns ``(state, history)``.

    Args:
      train_step: from :func:`make_train_step`.
      state: the initial state (also the template a checkpoint is restored into).
      batch_fn: ``batch_fn(step) -> batch``, a pure function of the step, so the data position is the
        step and a resumed run sees exactly the batches the interrupted one would have.
      steps: the total number of updates.
      out_dir: a folder, or a :class:`rnnjax.run_dir.RunDir` the caller already holds, that receives
        ``metrics.jsonl`` (one line per logged or evaluated step; each with ``steps_per_s`` of this sitting
        and ``train_s``, the seconds the run has trained, compile included, summed over resumed sittings),
        ``metrics.json`` (the last values),
        ``loss_curve.png`` and ``checkpoints/``; ``None`` writes nothing.
      eval_fn: ``eval_fn(params) -> dict of scalars``, run every ``eval_every`` steps and at the end on
        :func:`eval_params` (the optimiser's average of the params when it keeps one).
      checkpoint_every: save every so many steps (and at the end); 0 saves only at the end.
      resume: continue from the newest checkpoint in ``out_dir`` if there is one.
      config: the run's settings (a JSON-able dict, or a dataclass such as an experiment's ``Config``: a
        field added since the run was saved then resumes it at its default), saved to
        ``out_dir/config.json`` at the start and compared with it on a resume (:mod:`rnnjax.run_dir`: the folder is locked for the run, a changed
        config is refused, ``metrics.jsonl`` keeps each step once, ``metrics.json`` never loses keys).
      stop: early stopping: ``stop(history)`` is called after each evaluation; ``True`` ends training at
        that step (checkpointed when there is a folder), e.g. after so many evaluations without a better one.
      on_eval: ``on_eval(state, history) -> state``, called after each evaluation (the record is already in
        ``metrics.jsonl``) and before ``stop`` and the checkpoint: e.g. to lower the learning rate held in
        the optimiser state on a plateau, which the checkpoint then keeps.

    Raises:
      NonFiniteError: when the loss or a norm is NaN or infinite; checkpoints already written stay.
      OSError: when ``out_dir`` cannot be written.
      RunDirError: when ``out_dir`` is in use by another run or holds a run with another ``config``.
      CheckpointError: when the newest checkpoint cannot be read or fails its digest.
    """
    if config is not None and isinstance(out_dir, RunDir):
        raise ValueError("fit: config goes to the RunDir that is passed as out_dir, which has checked it already")
    owned = out_dir is not None and not isinstance(out_dir, RunDir)  # a RunDir: the caller holds it for longer
    # Several processes (rnnjax.parallel): all train and all take part in each checkpoint (orbax writes it
    # once); process 0 alone holds the folder and writes the metrics, the summary and the plot.
    main = jax.process_index() == 0
    folder = None if out_dir is None else out_dir.path if isinstance(out_dir, RunDir) else pathlib.Path(out_dir)
    with RunDir(out_dir, config) if owned and main else contextlib.nullcontext(out_dir if main else None) as run:
        out = None if run is None else run.path
        ckpt = None if folder is None else Checkpointer(folder / "checkpoints")
        if ckpt is not None and resume and ckpt.latest_step() is not None:
            state, meta = ckpt.restore(state)
            print(f"resumed from {ckpt.directory} at step {meta['step']}")
        trained_s = 0.0  # seconds spent in earlier sittings of this run, so ``train_s`` adds up over resumes
        if run is not None:
            kept = run.cut_metrics(int(state.step))  # the steps after the checkpoint will be logged again
            trained_s = float(kept[-1].get("train_s", 0.0)) if kept else 0.0
        summary = None if folder is None else folder / "metrics.json"  # read by every process: all stop alike
        if summary is not None and summary.exists() and json.loads(summary.read_text()).get("stopped_early") == int(state.step):
            steps = int(state.step)  # the run ended here by ``stop``: a rerun must not train on past it
        history: list[dict] = []
        log = None if out is None else open(out / "metrics.jsonl", "a")
        start_step = int(state.step)
        bar = _progress(start_step, steps, progress and main)
        t0, last = time.perf_counter(), {}
        try:
            for step in range(start_step, steps):
                state, metrics = train_step(state, batch_fn(step))
                done = step + 1
                record = evaluated = None
                if done % max(log_every, 1) == 0 or done == steps:
                    record = {"step": done, **{k: float(v) for k, v in metrics.items()}}
                    check_finite(done, record)
                if eval_fn is not None and ((eval_every and done % eval_every == 0) or done == steps):
                    evaluated = {f"eval_{k}": float(v) for k, v in eval_fn(eval_params(state)).items()}
                    record = {**(record or {"step": done}), **evaluated}
                if record is not None:
                    rate = (done - start_step) / (time.perf_counter() - t0)
                    record["steps_per_s"] = rate
                    record["train_s"] = trained_s + time.perf_counter() - t0
                    history.append(record)
                    last = record
                    if log is not None:
                        log.write(json.dumps(record) + "\n")
                        log.flush()
                    bar.update(done, record)
                if evaluated is not None and on_eval is not None:
                    state = on_eval(state, history)
                stopping = evaluated is not None and stop is not None and bool(stop(history))
                if ckpt is not None and ((checkpoint_every and done % checkpoint_every == 0) or done == steps or stopping):
                    ckpt.save(state, data_position=done)
                if stopping:
                    last["stopped_early"] = done
                    break
        finally:
            bar.close()
            if log is not None:
                log.close()
        if not history and eval_fn is not None:  # resumed at the end: nothing ran, but report where it stands
            last = {"step": int(state.step), **{f"eval_{k}": float(v) for k, v in eval_fn(eval_params(state)).items()},
                    "train_s": trained_s}
            history.append(last)
        if run is not None:
            run.write_summary(last)
            if plot:
                from rnnjax.plotting import loss_curve

                loss_curve(read_metrics(out / "metrics.jsonl"), out / "loss_curve.png")
        return state, history


class _progress:
    """A tqdm bar showing loss and throughput, or nothing."""

    def __init__(self, start, total, enabled):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)
        self.n = start

    def update(self, done, record):
        if self.bar is not None:
            self.bar.update(done - self.n)
            shown = {k: f"{v:.4g}" for k, v in record.items() if k in ("loss", "eval_loss", "grad_norm")}
            self.bar.set_postfix(shown)
        self.n = done

    def close(self):
        if self.bar is not None:
            self.bar.close()


def tree_equal(a, b) -> bool:
    """Bitwise equality of two pytrees of arrays (for resumed-run checks)."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    return ta == tb and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))
