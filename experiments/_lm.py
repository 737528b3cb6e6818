"""What the language-model experiments share: stateful training over a token stream, and evaluation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import rnnjax
from experiments import _common
from rnnjax.datasets import tokens


def training(cfg, model, train_ids):
    """``(state, train_step, batch_fn)``: truncated BPTT over a stream, carry passed between batches.

    ``cfg`` needs ``batch``, ``length``, ``seed`` and the optimiser fields of ``_common.TrainConfig``.
    The carry is reset to zeros at the first batch of every epoch.
    """
    state, optimizer = initial_state(cfg, model)
    zeros = state.carry
    train = tokens.stream(train_ids, cfg.batch, cfg.length)

    def loss_fn(params, batch, key, carry):
        inputs, targets, reset = batch
        carry = jax.tree.map(lambda c, z: jnp.where(reset, z, c), carry, zeros)
        keys = jax.random.split(key, inputs.shape[0])  # one per stream: its own dropout masks
        logits, carry = jax.vmap(lambda x, c, k: model.apply(params, x, c, key=k))(inputs, carry, keys)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets)), carry

    def batch_fn(step):
        i = step % train.num_batches
        return train.inputs[i], train.targets[i], jnp.asarray(i == 0)

    return state, rnnjax.make_train_step(loss_fn, optimizer, stateful=True), batch_fn


def initial_state(cfg, model):
    """``(state, optimizer)``: the training state at step 0, its carry zeros for ``cfg.batch`` streams (also
    the template a saved run is restored into)."""
    k_init, k_run = jax.random.split(jax.random.key(cfg.seed))
    params = model.init(k_init)
    optimizer = _common.make_optimizer(cfg)
    zeros = jax.vmap(lambda _: model.initial_carry(params))(jnp.arange(cfg.batch))
    return rnnjax.init_state(params, optimizer, k_run, carry=zeros), optimizer


def evaluator(model, ids, rows: int = 32, length: int = 200):
    """``evaluate(params)``: mean nats per token over the whole id sequence, read as ``rows`` streams."""
    s = tokens.stream(ids, rows, min(length, max(1, (len(ids) - 1) // rows)))

    @jax.jit
    def evaluate(params):
        carry0 = jax.vmap(lambda _: model.initial_carry(params))(jnp.arange(rows))

        def chunk(carry, batch):
            x, y = batch
            logits, carry = jax.vmap(model.apply, in_axes=(None, 0, 0))(params, x, carry)
            return carry, jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, y))

        _, sums = jax.lax.scan(chunk, carry0, (jnp.asarray(s.inputs), jnp.asarray(s.targets)))
        return jnp.sum(sums) / s.inputs.size

    return evaluate
