"""Data-parallel training over a device mesh with ``jax.sharding``: shard the batch, replicate the state.

With the batch split along a mesh axis (``NamedSharding(mesh, P("data"))``) and the params and optimiser
state replicated, the same jitted ``train_step`` runs on every device over its slice of the batch; XLA's
partitioner inserts the all-reduce of the gradients, so the update is the one a single device would make
(up to float rounding). The sweep axis of :mod:`rnnjax.sweep` composes with it in a 2-D mesh
(:func:`rnnjax.sweep.sweep_mesh`). On many hosts, call ``jax.distributed.initialize()`` on each host first.
"""

from __future__ import annotations

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def shard_batch(batch, mesh: Mesh, axis: str = "data"):
    """Places every array of ``batch`` split along its leading (batch) axis over ``mesh``'s ``axis``."""
    if axis not in mesh.shape:
        raise ValueError(f"mesh has no axis {axis!r}; its axes are {tuple(mesh.shape)}")
    devices = mesh.shape[axis]
    for path, leaf in jax.tree_util.tree_leaves_with_path(batch):
        if not leaf.shape or leaf.shape[0] % devices:
            raise ValueError(f"batch array {jax.tree_util.keystr(path) or 'batch'} of shape {leaf.shape}: its leading axis "
                             f"must be a multiple of the {devices} devices of mesh axis {axis!r}")
    return jax.device_put(batch, NamedSharding(mesh, PartitionSpec(axis)))


def replicate(tree, mesh: Mesh):
    """Places a full copy of every array of ``tree`` (params, optimiser state) on every device of ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
