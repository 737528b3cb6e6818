"""What the experiments share: the training fields of their configs, the optimiser, and the run."""

from __future__ import annotations

import dataclasses
import math

import optax

import rnnjax


CELLS = {
    "lstm": lambda h: rnnjax.lstm(h),
    "gru": lambda h: rnnjax.gru(h),
    "rnn": lambda h: rnnjax.rnn(h),
    "irnn": lambda h: rnnjax.rnn(h, activation="relu", init="identity"),  # Le, Jaitly & Hinton 2015
    # linear recurrences with a parallel scan (rnnjax.linear; rnnjax.unroll picks it on GPU/TPU)
    "min_gru": lambda h: rnnjax.min_gru(h),
    "min_lstm": lambda h: rnnjax.min_lstm(h),
    "lru": lambda h: rnnjax.lru(h),
}
"""The cells of the experiments (adding problem, copy, sequential MNIST, char LM, sweeps), by config name.
A model reads a cell's outputs ``ys`` (``ys[-1]`` for one prediction per sequence), never its carry: the
LRU's carry is its complex state, not its output."""


def make_cell(name: str, hidden: int):
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; expected one of {sorted(CELLS)}")
    return CELLS[name](hidden)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    hidden: int = 128
    batch: int = 50
    steps: int = 6000
    optimizer: str = "rmsprop"
    learning_rate: float = 1e-3
    schedule: str = "constant"
    clip: str = "global_norm"
    clip_threshold: float = 1.0
    eval_every: int = 250
    checkpoint_every: int = 1000
    seed: int = 0
    # rnnjax.unroll's fast path (the fused backward pass; for a linear cell, the parallel scan on GPU/TPU);
    # false: the plain sequential lax.scan of the cell's step. The same function and gradients up to rounding.
    fast: bool = True

    def __post_init__(self):
        """Values that would make training meaningless are refused before any work, with the field named."""
        for name in ("hidden", "batch", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: only at the end), got {getattr(self, name)}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate}")
        if self.clip != "none" and not (math.isfinite(self.clip_threshold) and self.clip_threshold > 0):
            raise ValueError(f"clip_threshold must be a positive number (or clip=none), got {self.clip_threshold}"
                             " (0 would make every update zero)")


def make_optimizer(cfg: TrainConfig):
    """``rnnjax.make_optimizer`` from a config: ``schedule`` is ``constant`` or ``cosine`` (to lr/10)."""
    if cfg.schedule not in ("constant", "cosine"):
        raise ValueError(f"unknown schedule {cfg.schedule!r}; expected 'constant' or 'cosine'")
    lr = cfg.learning_rate
    if cfg.schedule == "cosine":
        lr = optax.cosine_decay_schedule(cfg.learning_rate, cfg.steps, alpha=0.1)
    clip = None if cfg.clip == "none" else cfg.clip
    return rnnjax.make_optimizer(cfg.optimizer, lr, clip=clip, clip_threshold=cfg.clip_threshold)


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
        config=dataclasses.asdict(cfg),
    )
