"""The optimiser of the recurrent-training recipe: gradient clipping chained with RMSProp.

References:
  Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural networks" (clipping by
  global norm: if ‖g‖ > τ then g ← τ g / ‖g‖).
  Tieleman & Hinton 2012, Lecture 6.5 (RMSProp); Karpathy's char-rnn (RMSProp lr 2e-3, decay 0.95,
  element-wise clipping at ±5).
"""

from __future__ import annotations

from collections.abc import Mapping
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


def _by_key(table, path):
    """``table[k]`` where the leaf at ``path`` is stored under the dict key ``k`` (at any depth), else None."""
    last = path[-1] if path else None
    return table.get(last.key) if isinstance(last, jax.tree_util.DictKey) else None


def scale_by_name(scales: Mapping[str, float]) -> optax.GradientTransformation:
    """Multiplies the update of every leaf stored under a dict key in ``scales`` by its factor; others pass.

    ``scale_by_name({"a": 0.1})`` after an optimiser's step gives the parameters named ``a`` (at any depth
    of the params dict) a tenth of its learning rate. Stateless; the scales are Python numbers, fixed when
    the optimiser is made.
    """
    scales = dict(scales)

    def factor(path):
        return _by_key(scales, path)

    def update(updates, state, params=None):
        del params
        if not scales:
            return updates, state
        return jax.tree_util.tree_map_with_path(
            lambda path, u: u if factor(path) is None else u * jnp.asarray(factor(path), u.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def bound_by_name(bounds: Mapping[str, tuple[float, float]]) -> optax.GradientTransformation:
    """Keeps every parameter stored under a dict key in ``bounds`` inside its ``(low, high)``: the update
    ``Δ`` of such a parameter ``p`` becomes ``clip(p + Δ, low, high) − p``, so after the step it is the
    projection of ``p + Δ`` onto the interval (projected gradient descent); others pass. Needs ``params``.

    IndRNN bounds its recurrent weights this way (Li et al. 2018: ``|u| ≤ γ^{1/T}``).
    """
    bounds = {k: (float(lo), float(hi)) for k, (lo, hi) in dict(bounds).items()}
    for key, (lo, hi) in bounds.items():
        if not lo <= hi:
            raise ValueError(f"param_bounds[{key!r}]: low must be <= high, got {(lo, hi)}")

    def bound(path):
        return _by_key(bounds, path)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("bound_by_name needs the params: optimizer.update(grads, state, params)")

        def project(path, u, p):
            b = bound(path)
            return u if b is None else (jnp.clip(p + u, *b) - p).astype(u.dtype)

        return jax.tree_util.tree_map_with_path(project, updates, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


class ParamAverageState(NamedTuple):
    """The running average of the params after each update (:func:`average_params`).

    Attributes:
      count: the number of updates averaged, an int32 scalar.
      params_average: the average, debiased (a pytree like the params); the params themselves before any update.
    """

    count: jax.Array
    params_average: object


def average_params(decay: float) -> optax.GradientTransformation:
    """An identity transformation that keeps, in its state, the exponential moving average of the params
    after each update (Polyak averaging; Polyak & Juditsky 1992, the exponential form as in Marian's
    "exponential smoothing" and big_vision's ``polyak``).

    With ``θ_t`` the params after update ``t`` and ``d`` the decay, the state holds the *debiased* average

        ``θ̄_t = Σ_{i≤t} d^{t−i} θ_i / Σ_{i≤t} d^{t−i}``,  i.e.  ``θ̄_t = θ̄_{t−1} + w_t (θ_t − θ̄_{t−1})``,
        ``w_t = (1 − d) / (1 − d^t)``,

    so ``θ̄_1 = θ_1`` and early updates are not pulled toward a zero start (Adam's bias correction);
    ``d = 1`` gives ``w_t = 1/t``, the uniform average of every step (Polyak–Ruppert). Place it last in a
    chain, so ``updates`` is the final step: ``θ_t = params + updates``. Read the average with
    :func:`params_average`; :func:`rnnjax.train.eval_params` evaluates it.

    Args:
      decay: ``d`` in [0, 1]; 0 keeps the last params (no averaging), 0.999 averages over about the last
        1,000 updates.
    """
    decay = float(decay)
    if not 0 <= decay <= 1:
        raise ValueError(f"average: the decay must be in [0, 1] (1: a uniform average), got {decay}")

    def init(params):
        return ParamAverageState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.asarray, params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("average_params needs the params: optimizer.update(grads, state, params)")
        count = state.count + 1
        t = count.astype(jnp.float32)
        w = 1.0 / t if decay == 1 else (1.0 - decay) / (1.0 - jnp.float32(decay) ** t)
        new = optax.apply_updates(params, updates)
        average = jax.tree.map(lambda a, p: a + w.astype(a.dtype) * (p - a), state.params_average, new)
        return updates, ParamAverageState(count, average)

    return optax.GradientTransformation(init, update)


def params_average(opt_state):
    """The params' average kept by :func:`average_params` in ``opt_state`` (at any depth), else ``None``."""
    return optax.tree.get(opt_state, "params_average")


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
    lr_scales: Mapping[str, float] | None = None,
    param_bounds: Mapping[str, tuple[float, float]] | None = None,
    average: float | None = None,
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
      lr_scales: ``{name: factor}``: the step of every parameter stored under the dict key ``name`` is
        multiplied by ``factor`` (:func:`scale_by_name`), i.e. that parameter trains at ``factor × lr``
        (RMSProp and Adam are element-wise, so this is a second optimiser with the smaller rate). expRNN
        trains its skew-symmetric ``a`` at a tenth of the rate (Lezcano-Casado & Martínez-Rubio 2019).
      param_bounds: ``{name: (low, high)}``: every parameter stored under the dict key ``name`` is kept in
        the interval by projection after each step (:func:`bound_by_name`; IndRNN's ``|u| ≤ γ^{1/T}``).
      average: a decay in [0, 1]: the state also keeps the exponential moving average of the params
        (:func:`average_params`, last in the chain), which :func:`rnnjax.fit` evaluates
        (:func:`rnnjax.train.eval_params`); ``None`` (default): no average, and the state as without it.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {list(OPTIMIZERS)}")
    if clip is not None and clip not in CLIPS:
        raise ValueError(f"unknown clip {clip!r}; expected one of {list(CLIPS)} or None")
    if not callable(learning_rate):
        _check_non_negative(learning_rate, "learning_rate")
    for key, factor in (lr_scales or {}).items():
        _check_non_negative(factor, f"lr_scales[{key!r}]")
    _check_non_negative(clip_threshold, "clip_threshold")
    bounded = [bound_by_name(param_bounds)] if param_bounds else []  # checks the bounds now
    averaged = [] if average is None else [average_params(average)]  # checks the decay now

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
        scaled = [scale_by_name(lr_scales)] if lr_scales else []  # none: the state's layout as before
        return optax.chain(clipper, record_grad_norm(), step, *scaled, *bounded, *averaged)

    return optax.inject_hyperparams(chain)(
        learning_rate=learning_rate,
        clip_threshold=clip_threshold,
        decay=decay,
        eps=eps,
        momentum=momentum,
        b1=b1,
        b2=b2,
    )
