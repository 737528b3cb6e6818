"""What the experiments share: the training fields of their configs, the optimiser, and the run."""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time

import numpy as np
import optax

import rnnjax


def _chrono(cell_fn):
    def make(hidden, t_max):
        if t_max is None:
            raise ValueError("the chrono cells need T_max, the longest dependency in steps; this experiment gives none")
        return cell_fn(hidden, chrono=t_max)

    return make


CELLS = {
    "lstm": lambda h, t: rnnjax.lstm(h),
    "gru": lambda h, t: rnnjax.gru(h),
    "rnn": lambda h, t: rnnjax.rnn(h),
    "irnn": lambda h, t: rnnjax.rnn(h, activation="relu", init="identity"),  # Le, Jaitly & Hinton 2015
    # chrono initialisation (Tallec & Ollivier 2018) with T_max = the task's sequence length
    "chrono_lstm": _chrono(rnnjax.lstm),
    "chrono_gru": _chrono(rnnjax.gru),
    # orthogonal recurrence kept orthogonal through training (Lezcano-Casado & Martínez-Rubio 2019)
    "exp_rnn": lambda h, t: rnnjax.exp_rnn(h),  # Henaff init, the paper's for the copy task
    "exp_rnn_cayley": lambda h, t: rnnjax.exp_rnn(h, init="cayley"),  # rotations near the identity (its MNIST init)
    # elementwise recurrence, |u| bounded by the optimiser (Li et al. 2018; PARAM_BOUNDS)
    "indrnn": lambda h, t: rnnjax.indrnn(h, recurrent_init=(0.0, 1.0) if t is None else (0.5 ** (1 / t), 1.0),
                                         input_scale=1e-3),  # the paper's input init for the adding problem
    # linear recurrences with a parallel scan (rnnjax.linear; rnnjax.unroll picks it on GPU/TPU)
    "min_gru": lambda h, t: rnnjax.min_gru(h),
    "min_lstm": lambda h, t: rnnjax.min_lstm(h),
    "lru": lambda h, t: rnnjax.lru(h),
}
"""The one table of the experiments' cells, by config name (``--cell``): ``CELLS[name](hidden, T)`` with
``T`` the task's longest dependency in steps (the chrono cells' ``T_max``; ``None`` where a task has none).
A model reads a cell's outputs ``ys`` (``ys[-1]`` for one prediction per sequence), never its carry: the
LRU's carry is its complex state, not its output. Models that hand a carry on (the encoder–decoder) take
the cells whose carry is their state."""

LR_SCALES = {"exp_rnn": {"a": 0.1}, "exp_rnn_cayley": {"a": 0.1}}
"""Parameters a cell's recipe trains at a fraction of the learning rate (``rnnjax.make_optimizer(lr_scales=)``):
expRNN's skew-symmetric ``a`` at a tenth (Lezcano-Casado & Martínez-Rubio 2019, ``lr_orth = lr / 10`` in
every experiment of the paper). :func:`make_optimizer` applies them for ``cfg.cell``."""

INDRNN_GAMMA = 2.0
"""IndRNN's bound on a unit's gradient growth over the task's ``T`` steps: ``|u| ≤ γ^{1/T}`` (Li et al. 2018)."""

PARAM_BOUNDS = {"indrnn": lambda t: None if t is None else {"u": (-INDRNN_GAMMA ** (1 / t), INDRNN_GAMMA ** (1 / t))}}
"""Parameters a cell's recipe keeps in an interval by projection after each step, given the task's ``T``
(``rnnjax.make_optimizer(param_bounds=)``); :func:`make_optimizer` applies them for ``cfg.cell``."""

CARRY_CELLS = ("lstm", "gru", "rnn", "irnn")
"""The cells whose carry can start another network (the encoder's final carry starts the decoder)."""


def make_cell(name: str, hidden: int, t_max=None, allowed=None, recurrent_dropout: float = 0.0,
              zoneout: float = 0.0, zoneout_cell: float = 0.0):
    """``CELLS[name](hidden, t_max)``; ``allowed`` narrows the choice for a model that needs it; a
    ``recurrent_dropout`` above 0 wraps it in :func:`rnnjax.recurrent_dropout`, a ``zoneout`` (on ``h``)
    or ``zoneout_cell`` (on an LSTM's ``c``; 0: the same as ``zoneout``) above 0 in :func:`rnnjax.zoneout`."""
    check_cell(name, allowed)
    cell = CELLS[name](hidden, t_max)
    if zoneout or zoneout_cell:
        cell = rnnjax.zoneout(cell, zoneout, cell_rate=zoneout_cell or None)
    return rnnjax.recurrent_dropout(cell, recurrent_dropout) if recurrent_dropout else cell


def check_cell(name: str, allowed=None) -> None:
    allowed = tuple(CELLS) if allowed is None else allowed
    if name not in allowed:
        raise ValueError(f"unknown cell {name!r}; expected one of {sorted(allowed)}")


ZERO_ALLOWED = {"seed": "", "subwords": " (0: words)", "patience": " (0: no early stopping)", "dictionary_entries": " (0: none)", "bible_verses": " (0: none)", "permutation_seed": "", "eval_every": " (0: only at the end)",
                "checkpoint_every": " (0: only at the end)", "run_folds": " (0: all folds)", "chunk": " (0: one chunk)",
                "remat": " (0: no remat)", "eval_subset": " (0: all)", "train_subset": " (0: all)", "min_count": "",
                "t_max": " (0: the task's length)"}
"""Integer settings for which 0 means something (a seed; "only at the end"; "all"; "none"), with what it
means. Every other integer setting is a size or a count and must be at least 1."""


def check_values(cfg) -> None:
    """Refuses, with the field named, settings that would make a run meaningless (before any work is done):
    sizes and counts below 1 (other integers below 0), NaN or infinite numbers, a learning rate or clip
    threshold that is not positive (0 would make every update zero), a dropout rate outside [0, 1), a
    negative temperature, beam width or length penalty; a cell not in the table, a name not in the config's
    ``CHOICES``."""
    if hasattr(cfg, "cell"):  # ``CELL_CHOICES``: a config's narrower choice (the encoder–decoder's)
        check_cell(cfg.cell, getattr(type(cfg), "CELL_CHOICES", None))
    choices = {}
    for klass in reversed(type(cfg).__mro__):  # ``CHOICES``: {field: allowed values}, a subclass adding its own
        choices.update(vars(klass).get("CHOICES", {}))
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"unknown {name} {getattr(cfg, name)!r}; expected one of {list(allowed)}")
    for field in dataclasses.fields(cfg):
        name, value = field.name, getattr(cfg, field.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, int):
            low = 0 if name in ZERO_ALLOWED else 1
            if value < low:
                raise ValueError(f"{name} must be at least {low}{ZERO_ALLOWED.get(name, '')}, got {value}")
            continue
        if name.startswith("clip") and getattr(cfg, "clip", "") == "none":
            continue
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
        if ("learning_rate" in name or name.startswith("clip") or name.endswith("scale")) and value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value}"
                             + (" (0 would make every update zero)" if name.startswith("clip") else ""))
        if name.endswith("dropout") and not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


@dataclasses.dataclass(frozen=True)
class Checked:
    """A config whose numbers are checked when it is made (:func:`check_values`); subclasses add fields."""

    def __post_init__(self):
        check_values(self)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig(Checked):
    """The fields of every trained experiment's config: the model's width, the batch, the optimiser."""

    CHOICES = {"optimizer": rnnjax.optim.OPTIMIZERS, "clip": (*rnnjax.optim.CLIPS, "none"), "schedule": ("constant", "cosine", "stable_decay")}

    hidden: int = 128
    batch: int = 50
    optimizer: str = "rmsprop"
    learning_rate: float = 1e-3
    schedule: str = "constant"
    clip: str = "global_norm"
    clip_threshold: float = 1.0
    seed: int = 0
    # the exponential moving average of the params, evaluated and tested in their place (Polyak averaging,
    # rnnjax.optim.average_params): its decay, e.g. 0.999 for about the last 1,000 updates; 1: the uniform
    # average of all of them; 0: none
    average: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if self.average:
            rnnjax.optim.average_params(self.average)  # refuses a decay outside [0, 1] now, before any work


@dataclasses.dataclass(frozen=True)
class TrainConfig(OptimizerConfig):
    """An experiment trained for ``steps`` updates by ``rnnjax.fit``, evaluated and checkpointed every so often."""

    steps: int = 6000
    eval_every: int = 250
    checkpoint_every: int = 1000
    # rnnjax.unroll's fast path (the fused backward pass; for a linear cell, the parallel scan on GPU/TPU);
    # false: the plain sequential lax.scan of the cell's step. The same function and gradients up to rounding.
    fast: bool = True

    def extendable(self) -> tuple[str, ...]:
        """Settings a resumed run may raise (:class:`rnnjax.run_dir.RunDir`): ``steps`` when the learning rate
        does not depend on it (a constant schedule), so rerunning a finished run's command with a larger
        ``--steps`` continues it from its last checkpoint; a decaying schedule is stretched by it, so not then."""
        return ("steps",) if self.schedule == "constant" else ()


STABLE_FRACTION = 0.8
"""``stable_decay``: the share of the steps at the full rate before the decay."""


def learning_rate(cfg: OptimizerConfig, steps: int | None = None):
    """The config's learning rate over ``steps`` updates (by default ``cfg.steps``): a number, or a schedule.

    ``constant``: ``cfg.learning_rate`` throughout. ``cosine``: from it to a tenth of it over the steps
    (Loshchilov & Hutter 2017, without restarts). ``stable_decay``: constant for the first
    :data:`STABLE_FRACTION` of the steps, then the same cosine to a tenth over the rest (warmup–stable–decay
    without the warmup; Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed
    Training Durations"): a long run learns at the full rate and still ends on a settled, not a noisy, model.
    """
    if cfg.schedule not in OptimizerConfig.CHOICES["schedule"]:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; expected one of {list(OptimizerConfig.CHOICES['schedule'])}")
    steps = steps or cfg.steps
    if cfg.schedule == "cosine":
        return optax.cosine_decay_schedule(cfg.learning_rate, steps, alpha=0.1)
    if cfg.schedule == "stable_decay":
        stable = int(STABLE_FRACTION * steps)
        decay = optax.cosine_decay_schedule(cfg.learning_rate, max(steps - stable, 1), alpha=0.1)
        return optax.join_schedules([optax.constant_schedule(cfg.learning_rate), decay], [stable])
    return cfg.learning_rate


def make_optimizer(cfg: OptimizerConfig, steps: int | None = None, t_max: int | None = None):
    """``rnnjax.make_optimizer`` from a config: the rate of :func:`learning_rate` (over ``steps``, by default
    ``cfg.steps``); the cell's :data:`LR_SCALES` when the config names a cell, and its
    :data:`PARAM_BOUNDS` for the task's longest dependency ``t_max`` (as given to :func:`make_cell`)."""
    lr = learning_rate(cfg, steps)
    clip = None if cfg.clip == "none" else cfg.clip
    cell = getattr(cfg, "cell", None)
    bounds = PARAM_BOUNDS[cell](t_max) if cell in PARAM_BOUNDS else None
    return rnnjax.make_optimizer(cfg.optimizer, lr, clip=clip, clip_threshold=cfg.clip_threshold,
                                 lr_scales=LR_SCALES.get(cell), param_bounds=bounds,
                                 average=cfg.average or None)


def train(cfg: TrainConfig, parts, out=None, progress: bool = True):
    """Runs ``rnnjax.fit`` on ``parts = (state, train_step, batch_fn, eval_fn)``."""
    state, train_step, batch_fn, eval_fn = parts
    return rnnjax.fit(
        train_step,
        state,
        batch_fn,
        cfg.steps,
        out_dir=out,
        eval_fn=eval_fn,
        eval_every=cfg.eval_every,
        log_every=50,
        checkpoint_every=cfg.checkpoint_every,
        progress=progress,
        config=cfg,
    )


def over_seeds(cfg, out, run_one, metric: str, below: float | None = None):
    """Runs ``run_one(cfg_k, folder)`` for the seeds ``cfg.seed .. cfg.seed + cfg.seeds - 1`` in turn, each
    in its own run folder ``out/seed-K`` (so each resumes on its own), and writes ``out/seeds.json``: the
    final ``metric`` of every seed, their median, min and max, and the fraction of seeds below ``below``.
    ``run_one`` returns the run's history (``history[-1][metric]`` is the final value). Returns the summary.
    """
    if out is None:
        raise ValueError(f"seeds={cfg.seeds} needs an output folder (--out): each seed has its own run folder in it")
    out = pathlib.Path(out)
    rows = []
    with rnnjax.run_dir.RunDir(out, cfg):
        for k in range(cfg.seeds):
            one = dataclasses.replace(cfg, seed=cfg.seed + k, seeds=1)
            start = time.perf_counter()
            history = run_one(one, out / f"seed-{one.seed}")
            # train_s: the seed's training time over all its sittings (a resumed seed keeps its earlier time)
            wall = history[-1].get("train_s", time.perf_counter() - start)
            rows.append({"seed": one.seed, metric: float(history[-1][metric]), "wall_s": wall})
        values = np.asarray([r[metric] for r in rows])
        summary = {"metric": metric, "seeds": rows, "median": float(np.median(values)), "min": float(values.min()),
                   "max": float(values.max()), "steps": cfg.steps}
        if below is not None:
            summary[f"fraction_below_{below:.3g}"] = float(np.mean(values < below))
        (out / "seeds.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{cfg.seeds} seeds: {metric} median {summary['median']:.4g} (min {summary['min']:.4g}, max {summary['max']:.4g})"
          + (f"; {summary[f'fraction_below_{below:.3g}']:.0%} of seeds below {below:.3g}" if below is not None else ""))
    return summary
