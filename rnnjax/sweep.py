"""Hyperparameter sweeps as one compiled program: every model of a grid trained by one ``jax.vmap``.

A sweep is a training function of the hyperparameters, ``train_fn(hp) -> results`` (``hp`` a dict of
scalars, ``results`` any pytree, e.g. the loss at every step), written as pure JAX (a ``lax.scan`` over
steps). What varies is an array, so ``jax.jit(jax.vmap(train_fn))`` trains all the models at once, and
the same compiled program serves every chunk of the sweep. Structural choices (cell kind, hidden size)
change shapes: loop over them in Python, one sweep each.

Scale-out: given a ``jax.sharding.Mesh`` with a ``"sweep"`` axis, each chunk of models is laid out along
that axis (``NamedSharding(mesh, P("sweep"))``), so every device trains its own share and XLA inserts no
communication between models. Over several processes (:func:`rnnjax.parallel.initialize` first in each),
``jax.devices()`` lists every process's devices and the same mesh spans them; every process gets every
model's results.
"""

from __future__ import annotations

import csv
import itertools
import math
import pathlib
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rnnjax import parallel


def size(hparams: Mapping[str, np.ndarray]) -> int:
    """The number of models in a sweep; raises unless every array is 1-D, non-empty and of one length."""
    if not hparams:
        raise ValueError("empty sweep: no hyperparameter arrays given")
    lengths = {}
    for name, values in hparams.items():
        shape = np.shape(values)
        if len(shape) != 1:
            raise ValueError(f"hyperparameter {name!r} must be a 1-D array (one value per model), got shape {shape}")
        lengths[name] = shape[0]
    if len(set(lengths.values())) != 1:
        raise ValueError("hyperparameter arrays have different lengths: " + ", ".join(f"{k} {v}" for k, v in lengths.items()))
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError("empty sweep: the hyperparameter arrays have length 0")
    return n


def grid(**axes) -> dict[str, np.ndarray]:
    """The Cartesian product of the given value lists, flattened: ``grid(lr=[1, 2], clip=[3, 4, 5])`` has
    6 models, ``lr`` varying slowest. Values become float32 arrays (ints stay int32)."""
    if not axes:
        raise ValueError("empty grid: give at least one axis, e.g. grid(learning_rate=[1e-3, 1e-2])")
    for name, values in axes.items():
        if len(values) == 0:
            raise ValueError(f"empty grid: axis {name!r} has no values")
    combos = list(itertools.product(*axes.values()))
    out = {}
    for i, (name, values) in enumerate(axes.items()):
        dtype = np.int32 if all(isinstance(v, (int, np.integer)) for v in values) else np.float32
        out[name] = np.asarray([c[i] for c in combos], dtype)
    return out


def random_search(key, n: int, **ranges) -> dict[str, np.ndarray]:
    """``n`` models with each hyperparameter drawn from ``(low, high)`` uniformly, or log-uniformly with
    ``(low, high, "log")``; the same key gives the same sweep."""
    if n < 1:
        raise ValueError(f"random_search needs n >= 1, got {n}")
    if not ranges:
        raise ValueError("empty sweep: give at least one range, e.g. learning_rate=(1e-4, 1e-1, 'log')")
    out = {}
    for k, (name, spec) in zip(jax.random.split(key, len(ranges)), ranges.items()):
        low, high, *scale = spec
        if not low < high:
            raise ValueError(f"range of {name!r} must have low < high, got {low} and {high}")
        u = np.asarray(jax.random.uniform(k, (n,)))
        if scale == ["log"]:
            if low <= 0:
                raise ValueError(f"a log range needs low > 0, got {low} for {name!r}")
            out[name] = np.exp(np.log(low) + u * (np.log(high) - np.log(low))).astype(np.float32)
        elif not scale:
            out[name] = (low + u * (high - low)).astype(np.float32)
        else:
            raise ValueError(f"unknown scale {scale[0]!r} for {name!r}; expected 'log' or none")
    return out


def sweep_mesh(devices=None, data: int = 1) -> Mesh:
    """A ``Mesh`` of ``devices`` (default: all) shaped ``(sweep, data)`` = ``(n // data, data)``."""
    devices = np.asarray(jax.devices() if devices is None else devices)
    if data < 1 or devices.size % data:
        raise ValueError(f"data axis of size {data} does not divide the {devices.size} devices")
    return Mesh(devices.reshape(devices.size // data, data), ("sweep", "data"))


def train_many(train_fn: Callable, hparams: Mapping[str, np.ndarray], chunk_size: int | None = None,
               mesh: Mesh | None = None, axis: str = "sweep"):
    """Trains every model of the sweep: ``jax.jit(jax.vmap(train_fn))`` over chunks of ``chunk_size``.

    Args:
      train_fn: ``hp -> results``, pure; ``hp`` maps each name of ``hparams`` to one scalar.
      hparams: ``{name: [N]}`` arrays.
      chunk_size: models per compiled call (default all); the last chunk is padded by repeating its
        last model, so every call has one shape, and the padding is dropped.
      mesh: lay each chunk out along ``mesh``'s ``axis``; the chunk size must be a multiple of its size.

    Returns:
      ``results`` with a leading axis of ``N``, as numpy arrays.
    """
    n = size(hparams)
    chunk = n if chunk_size is None else int(chunk_size)
    if chunk < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    chunk = min(chunk, n)
    sharding = None
    if mesh is not None:
        if axis not in mesh.shape:
            raise ValueError(f"mesh has no axis {axis!r}; its axes are {tuple(mesh.shape)}")
        if chunk % mesh.shape[axis]:
            raise ValueError(f"mesh axis {axis!r} of {mesh.shape[axis]} devices does not divide the {chunk} models "
                             f"per chunk; choose a sweep (or chunk_size) that is a multiple of {mesh.shape[axis]}")
        sharding = NamedSharding(mesh, PartitionSpec(axis))
    run = jax.jit(jax.vmap(train_fn))
    parts = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        take = np.concatenate([np.arange(start, stop), np.full(chunk - (stop - start), stop - 1)]).astype(int)
        hp = {k: jnp.asarray(np.asarray(v)[take]) for k, v in hparams.items()}
        if sharding is not None:
            hp = parallel.place(hp, sharding)  # over several processes too: each keeps its devices' models
        out = parallel.fetch(run(hp))  # every model's results on every process
        parts.append(jax.tree.map(lambda a, m=stop - start: a[:m], out))
    return jax.tree.map(lambda *a: np.concatenate(a), *parts)


def table(hparams: Mapping[str, np.ndarray], curves: Mapping[str, np.ndarray]) -> list[dict]:
    """One row per model: its hyperparameters, and for each curve ``[N, S]`` the final value and the best
    (lowest finite) value with the step it was reached at. A diverged model's final value is nan/inf."""
    n = size(hparams)
    rows = []
    for i in range(n):
        row = {k: np.asarray(v)[i].item() for k, v in hparams.items()}
        for name, curve in curves.items():
            c = np.asarray(curve, np.float64).reshape(n, -1)[i]
            finite = np.where(np.isfinite(c), c, np.inf)
            row[f"final_{name}"] = float(c[-1])
            row[f"best_{name}"] = float(finite.min()) if np.isfinite(finite.min()) else math.nan
            row[f"best_{name}_step"] = int(finite.argmin()) if np.isfinite(finite.min()) else -1
        rows.append(row)
    return rows


def write_csv(path, rows: list[dict]) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
