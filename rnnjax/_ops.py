"""Tiny array helpers shared by the cells, the fast path, the MLP and the models."""

import jax
import jax.numpy as jnp


def add_bias(a, b):
    """``a [..., F] + b [F]`` with the broadcast written out (rank promotion stays an error)."""
    return a + b.reshape((1,) * (a.ndim - b.ndim) + b.shape)


def scale(a, v):
    """``a [..., F] * v [F]`` with the broadcast written out."""
    return a * v.reshape((1,) * (a.ndim - v.ndim) + v.shape)


def affine(x, w, b):
    """``x [..., D] @ w [D, F] + b [F]``."""
    return add_bias(x @ w, b)


def path_name(path, sep: str = ".") -> str:
    """A pytree key path as text: dict keys, attribute names and indices joined by ``sep``."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
    return sep.join(parts)


def dropout(key, rate: float, x, shape=None):
    """Inverted dropout (Srivastava et al. 2014): zero with probability ``rate``, scale the rest by
    ``1 / (1 − rate)``; ``shape`` broadcasts one draw over trailing axes (``(T, 1)``: whole words)."""
    if rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape if shape is None else shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)
