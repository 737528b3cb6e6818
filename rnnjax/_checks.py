"""Input checks that turn shape and dtype mistakes into errors that name the problem.

They run at trace time on static shapes and dtypes, so they cost nothing inside ``jit``.
"""

from __future__ import annotations

import operator

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
