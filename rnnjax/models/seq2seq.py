"""An encoder–decoder (Sutskever, Vinyals & Le 2014) with optional attention (Luong, Pham & Manning 2015).

The encoder reads the source ``x_1..x_S``; its final carry (the state after the last valid source token)
starts the decoder, which is a conditional language model over the target: at step ``t`` it reads the
previous target token ``y_{t-1}`` (``<bos>`` first) and predicts ``y_t``, until it emits ``<eos>``.
Training feeds the true previous tokens (teacher forcing); decoding (:mod:`rnnjax.models.decoding`) feeds
its own.

With ``attention=True`` (Luong's global attention, "general" score) the decoder's top state ``h_t`` is
compared with every encoder output ``e_s``: ``a_t = softmax_s(h_t · W_a e_s)`` over the valid source steps,
``c_t = Σ_s a_ts e_s``, and the prediction reads ``h̃_t = tanh(W_c [c_t; h_t])``. Because ``a_t`` depends on
``h_t`` but does not feed back into the recurrence, a whole teacher-forced target is decoded by one
:func:`rnnjax.unroll` and one batched attention, not step by step.

With ``bidirectional=True`` the encoder runs each layer forward and backward (Bahdanau, Cho & Bengio
2015): its outputs are ``[e_fwd; e_bwd]`` (``2H``) and each layer's decoder carry is a learnt linear map of
the two directions' final carries, ``W_l [c_fwd; c_bwd] + b_l`` for every array of the carry (a "bridge").

Regularisation for small corpora (the low-resource recipe of Sennrich & Zhang 2019), active only when
``apply`` is given a key: ``dropout`` on the source and target embeddings, on the decoder's outputs and on
the attention output (Srivastava et al. 2014), ``word_dropout``: a whole source word's embedding zeroed
(Gal & Ghahramani 2016), and ``tie_embeddings``: the output layer reuses the target embedding,
``logits = (h W_p) Eᵀ + b`` (Press & Wolf 2017; ``W_p [H, E]``).

With ``lexical=True`` (and attention) the prediction also reads the source *words* the attention points
at, not only the encoder states (the lexical model of Nguyen & Chiang 2018, "Improving Lexical Choice in
Neural Machine Translation", part of Sennrich & Zhang's recipe): ``f_t = tanh(Σ_s a_ts x_s)`` over the
source embeddings ``x_s`` (``[E]``, after dropout when training), ``l_t = tanh(f_t W_l) + f_t``, and
``l_t W_o`` is added to the logits (``W_l [E, E]``, ``W_o [E, V]``; tied embeddings: ``(l_t W_o) Eᵀ``
with ``W_o [E, E]``, so the target embedding scores the lexical term too).

With ``input_feeding=True`` (and attention; Luong, Pham & Manning 2015, section 3.3) the decoder reads the
previous step's attentional vector with the previous token, ``[y_{t-1}; h̃_{t-1}]`` (``h̃_0 = 0``), so
its recurrence knows what it attended to before. The attention then feeds back into the recurrence and the
teacher-forced target is decoded by one ``lax.scan`` of decoder step and attention (the plain path of the
cell: one step per iteration); the decoder's carry is ``(cell carries, h̃)``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from rnnjax import _checks
from rnnjax._ops import affine, dropout as drop
from rnnjax.layers import stacked
from rnnjax.types import Cell


class Memory(NamedTuple):
    """What the decoder reads of the source: encoder ``outputs [S, H]`` (``[S, 2H]`` bidirectional), their
    ``mask [S]``, the ``carry`` that starts the decoder (the encoder's final one, or its bridge) and, for
    the lexical model, the source ``embeddings [S, E]`` (None without it)."""

    outputs: jax.Array
    mask: jax.Array
    carry: Any
    embeddings: jax.Array | None = None


class Seq2Seq(NamedTuple):
    """Pure functions of an encoder–decoder; each sees one example (batch with ``jax.vmap``).

    Attributes:
      init: ``(key) -> params``.
      encode: ``(params, src [S], src_mask [S] | None) -> Memory``.
      step: ``(params, memory, carry, token) -> (carry, logits [V_tgt])``: one decoder step; start from
        ``memory.carry``.
      apply: ``(params, src [S], src_mask, tgt_in [T], tgt_mask, key=None) -> logits [T, V_tgt]``: teacher
        forcing; with a ``key``, the model's dropout (training), without one deterministic.
    """

    init: Callable[..., Any]
    encode: Callable[..., Memory]
    step: Callable[..., Any]
    apply: Callable[..., Any]
    src_vocab_size: int
    tgt_vocab_size: int


def _ids(tokens, name):
    _checks.rank(tokens, 1, "[T]", "seq2seq", name)
    if not jnp.issubdtype(jnp.result_type(tokens), jnp.integer):
        raise TypeError(f"seq2seq: {name} must be integer ids, got dtype {jnp.result_type(tokens)}")
    return tokens


def seq2seq(src_vocab_size: int, tgt_vocab_size: int, cell: Cell, embed_dim: int, num_layers: int = 1,
            attention: bool = False, fast: bool = True, dropout: float = 0.0, word_dropout: float = 0.0,
            tie_embeddings: bool = False, bidirectional: bool = False, lexical: bool = False,
            input_feeding: bool = False) -> Seq2Seq:
    """Source embedding → ``num_layers`` × ``cell`` encoder; target embedding → ``num_layers`` × ``cell``
    decoder started from the encoder's final carry; (attention →) linear → logits over the target vocabulary.

    Encoder and decoder have separate params and the same architecture (the carry passes between them).
    ``fast``: :func:`rnnjax.unroll`'s fast path for the teacher-forced unrolls (false: the plain scan).
    ``dropout``, ``word_dropout`` (rates in [0, 1)), ``tie_embeddings``, ``bidirectional``, ``lexical`` and
    ``input_feeding`` (both need ``attention``): see the module docstring.
    """
    if lexical and not attention:
        raise ValueError("seq2seq: lexical=True reads the source words through the attention weights; it needs attention=True")
    if input_feeding and not attention:
        raise ValueError("seq2seq: input_feeding=True feeds the attentional vector back; it needs attention=True")
    src_vocab_size = _checks.hidden_size(src_vocab_size, "src_vocab_size")
    tgt_vocab_size = _checks.hidden_size(tgt_vocab_size, "tgt_vocab_size")
    embed_dim = _checks.hidden_size(embed_dim, "embed_dim")
    rate, word_rate = _checks.rate(dropout, "dropout"), _checks.rate(word_dropout, "word_dropout")
    encoder = stacked(cell, num_layers, bidirectional=bidirectional, fast=fast)
    decoder = stacked(cell, num_layers, fast=fast)
    stepper = stacked(cell, num_layers, fast=False)  # one step at a time (decoding, input feeding)
    hidden, width = cell.hidden_size, encoder.output_size  # width: the encoder outputs' features (H or 2H)
    feed = hidden if input_feeding else 0  # the decoder's input: [y_{t-1}; h̃_{t-1}]
    glorot = jax.nn.initializers.glorot_uniform()

    def bridge_init(key):
        # one [2 · size, size] map per array of each layer's carry, stacked: {"w": [L, A, 2n, n], "b": [L, A, n]}
        leaves = jax.tree.leaves(decoder.initial_carry(decoder.init(jax.random.key(0), embed_dim)))
        sizes = {leaf.shape for leaf in leaves}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise ValueError(f"seq2seq: a bidirectional encoder bridges carries of 1-D arrays of one size, got {sorted(sizes)}")
        n, arrays = leaves[0].shape[0], len(leaves) // num_layers
        w = glorot(key, (num_layers * arrays, 2 * n, n)).reshape(num_layers, arrays, 2 * n, n)
        return {"w": w, "b": jnp.zeros((num_layers, arrays, n))}

    def bridge(params, carry):
        # the encoder's ({"fwd": c, "bwd": c}, ...) per layer -> the decoder's (c, ...)
        out = []
        for layer, both in enumerate(carry):
            fwd, tree = jax.tree.flatten(both["fwd"])
            bwd = jax.tree.leaves(both["bwd"])
            mapped = [jnp.concatenate([f, b]) @ params["bridge"]["w"][layer, a] + params["bridge"]["b"][layer, a]
                      for a, (f, b) in enumerate(zip(fwd, bwd))]
            out.append(jax.tree.unflatten(tree, mapped))
        return tuple(out)

    def init(key):
        ks = jax.random.split(key, 7)  # further params fold in their own keys, so these stay as they were
        params = {
            "src_embed": jax.random.normal(ks[0], (src_vocab_size, embed_dim)) * 0.1,
            "tgt_embed": jax.random.normal(ks[1], (tgt_vocab_size, embed_dim)) * 0.1,
            "encoder": encoder.init(ks[2], embed_dim),
            "decoder": decoder.init(ks[3], embed_dim + feed),
            "readout": {"w": glorot(ks[4], (hidden, tgt_vocab_size)), "b": jnp.zeros((tgt_vocab_size,))},
        }
        if tie_embeddings:  # the output layer is the target embedding, read through a projection to its width
            params["readout"] = {"proj": glorot(ks[4], (hidden, embed_dim)), "b": jnp.zeros((tgt_vocab_size,))}
        if attention:
            params["attention"] = {"w_score": glorot(ks[5], (hidden, width)), "w_combine": glorot(ks[6], (width + hidden, hidden))}
        if bidirectional:
            params["bridge"] = bridge_init(jax.random.fold_in(key, 7))  # the other keys as without it
        if lexical:
            k_hidden, k_out = jax.random.split(jax.random.fold_in(key, 8))
            out_width = embed_dim if tie_embeddings else tgt_vocab_size
            params["lexical"] = {"w_hidden": glorot(k_hidden, (embed_dim, embed_dim)), "w_out": glorot(k_out, (embed_dim, out_width))}
        return params

    def encode(params, src, src_mask=None, key=None):
        src = _ids(src, "src")
        mask = jnp.ones(src.shape, bool) if src_mask is None else jnp.asarray(src_mask) != 0
        if mask.shape != src.shape:
            raise ValueError(f"seq2seq: src_mask shape {mask.shape} != src shape {src.shape}")
        xs = params["src_embed"][src]
        if key is not None:
            k_word, k_embed = jax.random.split(key)
            xs = drop(k_embed, rate, drop(k_word, word_rate, xs, (src.shape[0], 1)))
        outputs, carry = encoder.apply(params["encoder"], xs, mask=mask)
        carry = bridge(params, carry) if bidirectional else carry
        if input_feeding:
            carry = (carry, jnp.zeros((hidden,), outputs.dtype))  # h̃_0 = 0
        return Memory(outputs, mask, carry, xs if lexical else None)

    def score_keys(params, memory):
        return memory.outputs @ params["attention"]["w_score"].T  # [S, H]: W_a e_s

    def attend(params, memory, hs, key=None, scored=None):
        # hs [T, H] -> (the attentional vectors h̃ [T, H] (hs without attention), weights [T, S] or None);
        # scored: W_a e_s [S, H] when already computed (input feeding computes it once, not every step)
        keys = (None, None) if key is None else jax.random.split(key)
        if key is not None:
            hs = drop(keys[0], rate, hs)
        if not attention:
            return hs, None
        if scored is None:
            scored = score_keys(params, memory)
        scores = jnp.where(memory.mask[None, :], hs @ scored.T, -jnp.inf)  # [T, S]
        weights = jax.nn.softmax(scores, axis=-1)
        context = weights @ memory.outputs
        hs = jnp.tanh(jnp.concatenate([context, hs], axis=-1) @ params["attention"]["w_combine"])
        if key is not None:
            hs = drop(keys[1], rate, hs)
        return hs, weights

    def output(params, memory, hs, weights):
        # h̃ [T, H] and the attention weights [T, S] -> logits [T, V]
        if lexical:  # [T, E]: the attention-weighted source words, through a residual tanh layer
            words = jnp.tanh(weights @ memory.embeddings)
            words = (jnp.tanh(words @ params["lexical"]["w_hidden"]) + words) @ params["lexical"]["w_out"]
        if tie_embeddings:
            pre = hs @ params["readout"]["proj"]
            return affine(pre + words if lexical else pre, params["tgt_embed"].T, params["readout"]["b"])
        logits = affine(hs, params["readout"]["w"], params["readout"]["b"])
        return logits + words if lexical else logits

    def fed_step(params, memory, scored, carry, y, key=None):
        # input feeding: [y_{t-1}; h̃_{t-1}] -> decoder -> attention -> (carry, (h̃_t [H], weights [S]))
        cells, fed = carry
        hs, cells = stepper.apply(params["decoder"], jnp.concatenate([y, fed])[None], carry=cells)
        fed, weights = attend(params, memory, hs, key, scored)
        return (cells, fed[0]), (fed[0], weights[0])

    def step(params, memory, carry, token):
        y = params["tgt_embed"][jnp.asarray(token)]
        if input_feeding:
            carry, (fed, weights) = fed_step(params, memory, None, carry, y)
            return carry, output(params, memory, fed[None], weights[None])[0]
        hs, carry = stepper.apply(params["decoder"], y[None], carry=carry)
        return carry, output(params, memory, *attend(params, memory, hs))[0]

    def apply(params, src, src_mask, tgt_in, tgt_mask=None, key=None):
        keys = (None, None, None) if key is None else jax.random.split(key, 3)
        memory = encode(params, src, src_mask, keys[0])
        tgt_in = _ids(tgt_in, "tgt_in")
        ys = params["tgt_embed"][tgt_in]
        if key is not None:
            ys = drop(keys[1], rate, ys)
        if not input_feeding:
            hs, _ = decoder.apply(params["decoder"], ys, mask=tgt_mask, carry=memory.carry)
            return output(params, memory, *attend(params, memory, hs, keys[2]))
        # only the recurrence and the attention run step by step; the output layer reads all h̃ at once.
        # The steps after the target's end only feed later padding: no mask needed.
        scored = score_keys(params, memory)
        if key is None:
            body = lambda c, y: fed_step(params, memory, scored, c, y)  # noqa: E731
            _, (hs, weights) = jax.lax.scan(body, memory.carry, ys)
        else:
            body = lambda c, yk: fed_step(params, memory, scored, c, *yk)  # noqa: E731
            _, (hs, weights) = jax.lax.scan(body, memory.carry, (ys, jax.random.split(keys[2], ys.shape[0])))
        return output(params, memory, hs, weights)

    return Seq2Seq(init, encode, step, apply, src_vocab_size, tgt_vocab_size)
