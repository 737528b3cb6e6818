"""Input checks that turn shape and dtype mistakes into errors that name the problem.

They run at trace time on static shapes and dtypes, so they cost nothing inside ``jit``.
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp


def hidden_size(value, what: str = "hidden_size") -> int:
    return positive_int(value, what)


def positive_int(value, what: str) -> int:
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, got {value!r}") from None
    if size <= 0:
        raise ValueError(f"{what} must be positive, got {size}")
    return size


def choice(value: str, options, what: str) -> str:
    if value not in options:
        raise ValueError(f"unknown {what} {value!r}; expected one of {sorted(options)}")
    return value


def floating(x, what: str, name: str) -> None:
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise TypeError(
            f"{name}: {what} has dtype {jnp.result_type(x)}, but the cell computes in floating point; "
            f"convert it first (e.g. {what}.astype(jnp.float32), or one-hot encode token ids)"
        )


def features(x, params, name: str, what: str = "x") -> None:
    """``x[..., D]`` must match the input size the params were initialised with."""
    if "w_x" not in params:
        return  # not this cell's params at all: against_cell names what is missing
    expected = params["w_x"].shape[0]
    if x.shape[-1] != expected:
        raise ValueError(
            f"{name}: {what} has {x.shape[-1]} features (shape {tuple(x.shape)}), but the params were "
            f"initialised with input_size={expected}"
        )


def rank(x, expected: int, layout: str, name: str, what: str) -> None:
    if jnp.ndim(x) != expected:
        hint = " (batch with jax.vmap)" if jnp.ndim(x) == expected + 1 else ""
        raise ValueError(
            f"{name}: {what} must have rank {expected}, {layout}, got shape {tuple(jnp.shape(x))}{hint}"
        )


def sequence(xs, mask, params, name: str) -> None:
    rank(xs, 2, "[T, D]", name, "xs")
    floating(xs, "xs", name)
    features(xs, params, name, "xs")
    if mask is not None:
        rank(mask, 1, "[T]", name, "mask")
        if mask.shape[0] != xs.shape[0]:
            raise ValueError(
                f"{name}: mask has length {mask.shape[0]} but the sequence xs has {xs.shape[0]} steps"
            )


def _path(prefix, path) -> str:
    """``params['w_h']``, ``carry.c``: a leaf's place written as it would be read."""
    parts = []
    for k in path:
        if hasattr(k, "name"):
            parts.append(f".{k.name}")
        else:
            parts.append(f"[{getattr(k, 'key', getattr(k, 'idx', k))!r}]")
    return prefix + "".join(parts)


def _same_shapes(given, expected, name: str, what: str, where: str) -> None:
    """``given`` has ``expected``'s structure (dict keys, carry fields) and every leaf its shape."""
    if jax.tree.structure(given) != jax.tree.structure(expected):
        if isinstance(given, dict) and isinstance(expected, dict):
            missing, extra = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
            detail = ", ".join([f"missing {missing}"] * bool(missing) + [f"unexpected {extra}"] * bool(extra))
        else:
            detail = f"got {jax.tree.structure(given)}, expected {jax.tree.structure(expected)}"
        raise ValueError(f"{name}: {what} do not match {where}: {detail}")
    for (path, g), e in zip(jax.tree_util.tree_flatten_with_path(given)[0], jax.tree.leaves(expected)):
        if jnp.shape(g) != e.shape:
            raise ValueError(
                f"{name}: {_path(what, path)} has shape {tuple(jnp.shape(g))}, but {where} gives {e.shape}"
            )


def against_cell(cell, params, carry, input_size: int) -> None:
    """``params`` and ``carry`` have the names and shapes that ``cell.init`` and ``cell.initial_carry``
    give (abstractly: nothing is computed), so params of another cell or another size, or a carry of
    another shape, are refused with the cell named instead of broadcasting or failing deep in XLA."""
    expected = jax.eval_shape(lambda key: cell.init(key, input_size), jax.random.key(0))
    _same_shapes(params, expected, cell.name, "params", f"{cell.name}.init(key, input_size={input_size})")
    if carry is not None:
        expected = jax.eval_shape(cell.initial_carry, params)
        _same_shapes(carry, expected, cell.name, "carry", f"{cell.name}.initial_carry(params)")


def rate(value, what: str) -> float:
    """A dropout rate: a number in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{what} must be in [0, 1), got {value}")
    return float(value)
