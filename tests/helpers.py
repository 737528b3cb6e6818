"""Small shared helpers for the tests."""

import os
import time

import jax
import numpy as np

import rnnjax

CELLS = {
    "rnn-tanh": lambda h: rnnjax.rnn(h),
    "rnn-relu": lambda h: rnnjax.rnn(h, activation="relu", init="identity", recurrent_scale=0.5),
    "lstm": lambda h: rnnjax.lstm(h),
    "gru": lambda h: rnnjax.gru(h),
    "gru-reset-after": lambda h: rnnjax.gru(h, reset_after=True),
    "indrnn": lambda h: rnnjax.indrnn(h, recurrent_init=(0.5, 1.0)),
}


def perturb(params, key, scale=0.3):
    """Adds noise to every param, so zero biases and special inits do not hide a wrong term."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return tree.unflatten([p + scale * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys)])


def assert_trees_close(a, b, atol=1e-5, rtol=1e-5):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb, (ta, tb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol)


def assert_directional_derivatives(loss, grads, params, eps=1e-6, rtol=1e-6, atol=1e-9):
    """For each param ``name``: ``<grads[name], v>`` equals the central difference of ``loss`` along a random
    ``v`` (float64), so a wrong term in any gradient shows up whichever direction it points."""
    import jax.numpy as jnp

    for name in params:
        direction = jax.random.normal(jax.random.key(7), params[name].shape, jnp.float64)
        numeric = (loss({**params, name: params[name] + eps * direction})
                   - loss({**params, name: params[name] - eps * direction})) / (2 * eps)
        np.testing.assert_allclose(jnp.sum(grads[name] * direction), numeric, rtol=rtol, atol=atol, err_msg=name)


def saved_steps(checkpoints):
    """The steps saved so far in the checkpoint folder of a run that may still be writing it.

    Read from the folder's names, not through orbax: a live run deletes old steps while it saves new ones,
    and orbax's listing stats each step it has just listed, which fails when the run deletes one in between.
    A step's folder gets its number only when it is complete (orbax writes under a temporary name and renames).
    """
    try:
        return sorted(int(name) for name in os.listdir(checkpoints) if name.isdigit())
    except FileNotFoundError:
        return []


def wait_for_checkpoint(proc, checkpoints, at_least, timeout=120):
    """Waits until the running ``proc`` has saved a step of at least ``at_least``; returns that step. If
    the process ends or the time runs out first, it is killed and the test fails."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        steps = saved_steps(checkpoints)
        if steps and steps[-1] >= at_least:
            return steps[-1]
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    raise AssertionError(f"the run finished (or stalled) before it saved step {at_least} (exit status {proc.returncode})")
