"""Data-parallel training over a device mesh with ``jax.sharding``: shard the batch, replicate the state;
and the same over several processes with JAX's multi-process runtime (``jax.distributed``).

With the batch split along a mesh axis (``NamedSharding(mesh, P("data"))``) and the params and optimiser
state replicated, the same jitted ``train_step`` runs on every device over its slice of the batch; XLA's
partitioner inserts the all-reduce of the gradients, so the update is the one a single device would make
(up to float rounding). The sweep axis of :mod:`rnnjax.sweep` composes with it in a 2-D mesh
(:func:`rnnjax.sweep.sweep_mesh`).

Several processes (hosts, or several on one machine): each calls :func:`initialize` before anything else
touches JAX; ``jax.devices()`` then lists every process's devices and one mesh spans them. Each process
loads only its rows of a batch (:func:`process_rows`) and :func:`shard_local_batch` joins them into one
global array; the jitted step is the same. ``experiments/launch.py`` starts the processes.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               timeout_s: int = 60) -> None:
    """``jax.distributed.initialize`` with what the CPU needs: cross-process collectives on CPU go through
    gloo (``jax_cpu_collectives_implementation``), which JAX leaves off by default. With no arguments, JAX
    reads them from the cluster (SLURM, Open MPI, Kubernetes, cloud TPU). ``timeout_s`` bounds the wait for
    the other processes to join."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes, process_id, initialization_timeout=timeout_s)


def is_main() -> bool:
    """Whether this is process 0, the one that writes the run's files."""
    return jax.process_index() == 0


def process_rows(batch_size: int) -> slice:
    """The rows of a global batch of ``batch_size`` that this process loads: process ``i`` of ``P`` takes
    rows ``[i B/P, (i + 1) B/P)``, which :func:`shard_local_batch` places on its own devices."""
    count, index = jax.process_count(), jax.process_index()
    if batch_size % count:
        raise ValueError(f"a global batch of {batch_size} does not split over {count} processes; use a multiple of {count}")
    per = batch_size // count
    return slice(index * per, (index + 1) * per)


def _check_leading(batch, devices: int, axis: str, what: str):
    for path, leaf in jax.tree_util.tree_leaves_with_path(batch):
        if not np.shape(leaf) or np.shape(leaf)[0] % devices:
            raise ValueError(f"batch array {jax.tree_util.keystr(path) or 'batch'} of shape {np.shape(leaf)}: its leading axis "
                             f"must be a multiple of the {devices} {what} of mesh axis {axis!r}")


def shard_batch(batch, mesh: Mesh, axis: str = "data"):
    """Places every array of ``batch`` split along its leading (batch) axis over ``mesh``'s ``axis``
    (one process: the whole batch is here; several: see :func:`shard_local_batch`)."""
    if axis not in mesh.shape:
        raise ValueError(f"mesh has no axis {axis!r}; its axes are {tuple(mesh.shape)}")
    _check_leading(batch, mesh.shape[axis], axis, "devices")
    return jax.device_put(batch, NamedSharding(mesh, PartitionSpec(axis)))


def shard_local_batch(local_batch, mesh: Mesh, axis: str = "data"):
    """The global batch whose rows :func:`process_rows` are ``local_batch`` on this process, split along
    ``mesh``'s ``axis`` (``jax.make_array_from_process_local_data``). Each process passes its own rows;
    the mesh's ``axis`` must span every process's devices. With one process it equals :func:`shard_batch`."""
    if axis not in mesh.shape:
        raise ValueError(f"mesh has no axis {axis!r}; its axes are {tuple(mesh.shape)}")
    _check_leading(local_batch, mesh.shape[axis] // jax.process_count(), axis, "local devices")
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), local_batch)


def replicate(tree, mesh: Mesh):
    """Places a full copy of every array of ``tree`` (params, optimiser state) on every device of ``mesh``
    (several processes: each process passes the same values, e.g. made from the same key)."""
    return place(tree, NamedSharding(mesh, PartitionSpec()))


def place(tree, sharding: NamedSharding):
    """Every array of ``tree``, the same on every process, laid out by ``sharding`` (which may span several
    processes: each keeps only its devices' slices)."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda a: _global(a, sharding), tree)


def _global(a, sharding):
    if isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(_global(jax.random.key_data(a), sharding), impl=jax.random.key_impl(a))
    host = np.asarray(a)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def fetch(tree):
    """Every array of ``tree`` whole, as numpy, on every process (gathered across processes when it is
    split over them)."""
    def whole(a):
        if a.is_fully_addressable or a.is_fully_replicated:
            return np.asarray(a)
        return np.asarray(jax.jit(lambda x: x, out_shardings=NamedSharding(a.sharding.mesh, PartitionSpec()))(a))
    return jax.tree.map(whole, tree)
