"""Times one training step of a recurrent net: plain autodiff through ``lax.scan`` against the fast path.

    python experiments/bench_step.py                  # LSTM, B 32, T 128, D 64, H 256 (~1 min on 2 cores)
    python experiments/bench_step.py --cell gru --repeats 30

A step is ``jax.value_and_grad`` of a mean-squared loss over ``jax.vmap(unroll)`` of a batch, then an
RMSProp update, all under one ``jax.jit``; the three variants differ only in ``unroll``'s path:

- ``autodiff``: ``unroll(..., fast=False)``, ``jax.grad`` through ``lax.scan``;
- ``fused``: ``unroll(..., fast=True)`` with the backend's default layout (in-loop weight gradients on CPU);
- ``fused-hoisted``: the fast path forced to hoist the input projection and form each weight gradient
  as one large matmul after the backward scan (the default on GPU/TPU).

Variants are timed round-robin, so background load hits all of them alike; the script prints the median
time of each and its ratio to autodiff. It checks first that all three give the same loss and gradients.
Timings are noisy on shared machines: compare ratios from one run, never a single number across runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax

import rnnjax
from rnnjax import fused


def make_step(cell, optimizer, path):
    def unroll_one(params, xs):
        if path == "autodiff":
            return rnnjax.unroll(cell, params, xs, fast=False)[1]
        if path == "fused":
            return rnnjax.unroll(cell, params, xs, fast=True)[1]
        carry = cell.initial_carry(params)
        return fused.unroll(cell.core, params, xs, carry, hoist=True)[1]

    def loss_fn(params, xs, targets):
        ys = jax.vmap(unroll_one, in_axes=(None, 0))(params, xs)
        return jnp.mean((ys - targets) ** 2)

    @jax.jit
    def step(params, opt_state, xs, targets):
        loss, grads = jax.value_and_grad(loss_fn)(params, xs, targets)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, grads

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--inputs", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)

    cell = {"lstm": rnnjax.lstm, "gru": rnnjax.gru, "rnn": rnnjax.rnn}[args.cell](args.hidden)
    kp, kx, ky = jax.random.split(jax.random.key(0), 3)
    params = cell.init(kp, args.inputs)
    xs = jax.random.normal(kx, (args.batch, args.length, args.inputs))
    targets = jax.random.normal(ky, (args.batch, args.length, args.hidden))
    optimizer = optax.rmsprop(1e-3)
    opt_state = optimizer.init(params)

    paths = ["autodiff", "fused", "fused-hoisted"]
    steps = {p: make_step(cell, optimizer, p) for p in paths}
    results = {p: jax.block_until_ready(steps[p](params, opt_state, xs, targets)) for p in paths}
    ref_loss, ref_grads = results["autodiff"][2], results["autodiff"][3]
    for p in paths[1:]:
        loss, grads = results[p][2], results[p][3]
        err = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(ref_grads), jax.tree.leaves(grads)))
        scale = max(float(jnp.max(jnp.abs(a))) for a in jax.tree.leaves(ref_grads))
        assert abs(float(loss - ref_loss)) < 1e-5 and err < 1e-4 * scale, (p, float(loss - ref_loss), err)

    times = {p: [] for p in paths}
    for _ in range(args.repeats):
        for p in paths:
            start = time.perf_counter()
            jax.block_until_ready(steps[p](params, opt_state, xs, targets))
            times[p].append(time.perf_counter() - start)

    base = statistics.median(times["autodiff"])
    print(
        f"{args.cell} train step, B {args.batch}, T {args.length}, D {args.inputs}, H {args.hidden}, "
        f"{jax.default_backend()} ({jax.device_count()} device), jax {jax.__version__}, "
        f"median of {args.repeats}"
    )
    for p in paths:
        med = statistics.median(times[p])
        print(f"  {p:14s} {med * 1e3:8.1f} ms   autodiff/this = {base / med:5.2f}x")


if __name__ == "__main__":
    main()
