"""What the language-model experiments share: stateful training over a token stream, and evaluation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import rnnjax
from experiments import _common
from rnnjax.datasets import tokens


def training(cfg, model, train_ids, starts=None):
    """``(state, train_step, batch_fn)``: truncated BPTT over a stream, carry passed between batches.

    ``cfg`` needs ``batch``, ``length``, ``seed`` and the optimiser fields of ``_common.TrainConfig``.
    The carry is reset to zeros at the first batch of every epoch, and at each of ``starts`` (the positions
    where a document begins) when given.
    """
    state, optimizer = initial_state(cfg, model)
    zeros = state.carry
    train = tokens.stream(train_ids, cfg.batch, cfg.length, starts)

    def loss_fn(params, batch, key, carry):
        inputs, targets, reset, resets = batch
        carry = jax.tree.map(lambda c, z: jnp.where(reset, z, c), carry, zeros)
        keys = jax.random.split(key, inputs.shape[0])  # one per stream: its own dropout masks
        logits, carry = jax.vmap(lambda x, c, k, r: model.apply(params, x, c, resets=r, key=k))(inputs, carry, keys, resets)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets)), carry

    def batch_fn(step):
        i = step % train.num_batches
        return train.inputs[i], train.targets[i], jnp.asarray(i == 0), None if train.resets is None else train.resets[i]

    return state, rnnjax.make_train_step(loss_fn, optimizer, stateful=True), batch_fn


def initial_state(cfg, model):
    """``(state, optimizer)``: the training state at step 0, its carry zeros for ``cfg.batch`` streams (also
    the template a saved run is restored into)."""
    k_init, k_run = jax.random.split(jax.random.key(cfg.seed))
    params = model.init(k_init)
    optimizer = _common.make_optimizer(cfg)
    zeros = jax.vmap(lambda _: model.initial_carry(params))(jnp.arange(cfg.batch))
    return rnnjax.init_state(params, optimizer, k_run, carry=zeros), optimizer


def evaluator(model, ids, rows: int = 32, length: int = 200, starts=None):
    """``evaluate(params)``: mean nats per token over the whole id sequence, read as ``rows`` streams (the
    carry reset where a document starts, with ``starts``)."""
    s = tokens.stream(ids, rows, min(length, max(1, (len(ids) - 1) // rows)), starts)

    @jax.jit
    def evaluate(params):
        carry0 = jax.vmap(lambda _: model.initial_carry(params))(jnp.arange(rows))

        def chunk(carry, batch):
            x, y, r = batch
            logits, carry = jax.vmap(lambda x, c, r: model.apply(params, x, c, resets=r))(x, carry, r)
            return carry, jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, y))

        resets = None if s.resets is None else jnp.asarray(s.resets)
        _, sums = jax.lax.scan(chunk, carry0, (jnp.asarray(s.inputs), jnp.asarray(s.targets), resets))
        return jnp.sum(sums) / s.inputs.size

    return evaluate
