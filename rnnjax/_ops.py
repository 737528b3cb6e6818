"""Tiny array helpers shared by the cells, the fast path and the MLP."""


def add_bias(a, b):
    """``a [..., F] + b [F]`` with the broadcast written out (rank promotion stays an error)."""
    return a + b.reshape((1,) * (a.ndim - b.ndim) + b.shape)


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
