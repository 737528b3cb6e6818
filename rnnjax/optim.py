"""The optimiser of the recurrent-training recipe: gradient clipping chained with RMSProp.

References:
  Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural networks" (clipping by
  global norm: if ‖g‖ > τ then g ← τ g / ‖g‖).
  Tieleman & Hinton 2012, Lecture 6.5 (RMSProp); Karpathy's char-rnn (RMSProp lr 2e-3, decay 0.95,
  element-wise clipping at ±5).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("rmsprop", "adam", "sgd")
CLIPS = ("global_norm", "value")


class ClippedGradNormState(NamedTuple):
    """Holds ‖g‖ after clipping, so a train step can report it (``optax.tree.get``)."""

    grad_norm_clipped: jax.Array


def record_grad_norm() -> optax.GradientTransformation:
    """An identity transformation that records the global norm of what passes through it."""

    def init(params):
        del params
        return ClippedGradNormState(jnp.zeros([], jnp.float32))

    def update(updates, state, params=None):
        del state, params
        return updates, ClippedGradNormState(optax.tree.norm(updates).astype(jnp.float32))

    return optax.GradientTransformation(init, update)


def _check_non_negative(value, what):
    try:
        v = float(value)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return  # a traced value (inside vmap or jit) is the caller's to check
    if not v >= 0:
        raise ValueError(f"{what} must be non-negative, got {value}")


def make_optimizer(
    name: str = "rmsprop",
    learning_rate=1e-3,
    *,
    clip: str | None = "global_norm",
    clip_threshold=1.0,
    decay=0.9,
    eps=1e-8,
    momentum=0.0,
    b1=0.9,
    b2=0.999,
) -> optax.GradientTransformationExtraArgs:
    """Clipping, then an adaptive step: ``optax.chain(clip, record ‖g‖, rmsprop | adam | sgd)``.

    The whole chain is wrapped in ``optax.inject_hyperparams``, so ``learning_rate`` and
    ``clip_threshold`` (and ``decay``, ``eps``, ``momentum``, ``b1``, ``b2``) live in the optimiser state as
    arrays: ``state.hyperparams["learning_rate"]`` can be changed between steps, and a sweep can
    ``jax.vmap`` over them, without recompiling. ``learning_rate`` may also be an optax schedule.

    RMSProp here is ``ν ← decay·ν + (1 − decay)·g²``, ``Δ = −lr·g / (√ν + eps)`` with ``ν₀ = 0``: exactly
    ``torch.optim.RMSprop(lr, alpha=decay, eps=eps)`` (PyTorch's default ``alpha`` is 0.99, ours 0.9 as in
    Arjovsky et al. 2016) and Torch7's ``optim.rmsprop`` used by char-rnn. (optax's own default puts
    ``eps`` inside the square root; this one does not, so results carry over from PyTorch.)

    Args:
      name: ``"rmsprop"``, ``"adam"`` (Kingma & Ba 2015) or ``"sgd"`` (with optional ``momentum``).
      learning_rate: step size ≥ 0, or a schedule ``step -> lr``.
      clip: ``"global_norm"`` (Pascanu et al. 2013), ``"value"`` (each component to
        ``[-clip_threshold, clip_threshold]``, char-rnn's ±5), or ``None``.
      clip_threshold: τ ≥ 0; ``jnp.inf`` disables clipping while keeping the state's layout.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {list(OPTIMIZERS)}")
    if clip is not None and clip not in CLIPS:
        raise ValueError(f"unknown clip {clip!r}; expected one of {list(CLIPS)} or None")
    if not callable(learning_rate):
        _check_non_negative(learning_rate, "learning_rate")
    _check_non_negative(clip_threshold, "clip_threshold")

    def chain(learning_rate, clip_threshold, decay, eps, momentum, b1, b2):
        clipper = {
            "global_norm": lambda: optax.clip_by_global_norm(clip_threshold),
            "value": lambda: optax.clip(clip_threshold),
            None: optax.identity,
        }[clip]()
        if name == "rmsprop":
            step = optax.rmsprop(learning_rate, decay=decay, eps=eps, eps_in_sqrt=False)
        elif name == "adam":
            step = optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)
        else:
            step = optax.sgd(learning_rate, momentum=momentum)
        return optax.chain(clipper, record_grad_norm(), step)

    return optax.inject_hyperparams(chain)(
        learning_rate=learning_rate,
        clip_threshold=clip_threshold,
        decay=decay,
        eps=eps,
        momentum=momentum,
        b1=b1,
        b2=b2,
    )
