"""The encoder–decoder: teacher forcing equals step-by-step decoding; padding and masks change nothing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax.models.seq2seq import seq2seq
from tests.helpers import perturb


def model_and_params(attention, cell=rnnjax.lstm, layers=1, seed=0, bidirectional=False):
    model = seq2seq(11, 9, cell(6), 4, num_layers=layers, attention=attention, bidirectional=bidirectional)
    return model, perturb(model.init(jax.random.key(seed)), jax.random.key(seed + 1))


@pytest.mark.parametrize("attention", [False, True])
@pytest.mark.parametrize("cell,layers,bidirectional", [(rnnjax.lstm, 1, False), (rnnjax.gru, 2, False), (rnnjax.lstm, 2, True)])
def test_teacher_forcing_equals_decoding_step_by_step(attention, cell, layers, bidirectional):
    model, params = model_and_params(attention, cell, layers, bidirectional=bidirectional)
    src, tgt_in = jnp.array([3, 5, 7, 1]), jnp.array([2, 4, 6, 8, 3])
    logits = model.apply(params, src, None, tgt_in)
    memory = model.encode(params, src)
    carry, steps = memory.carry, []
    for token in tgt_in:
        carry, out = model.step(params, memory, carry, token)
        steps.append(out)
    np.testing.assert_allclose(logits, jnp.stack(steps), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention,bidirectional", [(False, False), (True, False), (True, True)])
def test_padding_source_and_target_changes_nothing(attention, bidirectional):
    model, params = model_and_params(attention, bidirectional=bidirectional)
    src, tgt_in = jnp.array([3, 5, 7, 1]), jnp.array([2, 4, 6])
    plain = model.apply(params, src, None, tgt_in)
    src_pad = jnp.array([3, 5, 7, 1, 9, 9, 10])  # junk ids in the padding
    tgt_pad = jnp.array([2, 4, 6, 5, 5])
    padded = model.apply(params, src_pad, jnp.arange(7) < 4, tgt_pad, jnp.arange(5) < 3)
    np.testing.assert_allclose(padded[:3], plain, atol=1e-5, rtol=1e-5)
    batch = jax.vmap(model.apply, (None, 0, 0, 0, 0))(
        params, jnp.stack([src_pad, jnp.array([4, 1, 0, 0, 0, 0, 0])]), jnp.stack([jnp.arange(7) < 4, jnp.arange(7) < 2]),
        jnp.stack([tgt_pad, tgt_pad]), jnp.stack([jnp.arange(5) < 3, jnp.arange(5) < 5]))
    np.testing.assert_allclose(batch[0, :3], plain, atol=1e-5, rtol=1e-5)


def test_attention_reads_the_source_and_the_plain_model_only_its_final_carry():
    src_a, src_b = jnp.array([3, 5, 7, 1]), jnp.array([8, 5, 7, 1])
    tgt_in = jnp.array([2, 4])
    for attention in (False, True):
        model, params = model_and_params(attention)
        a, b = model.apply(params, src_a, None, tgt_in), model.apply(params, src_b, None, tgt_in)
        assert not np.allclose(a, b)  # the first source word matters, through the carry and the attention
        memory = model.encode(params, src_a)
        zeroed = memory._replace(outputs=jnp.zeros_like(memory.outputs))
        same = np.allclose(model.step(params, memory, memory.carry, 2)[1], model.step(params, zeroed, memory.carry, 2)[1])
        assert same != attention  # only attention reads the encoder outputs


def test_gradients_reach_both_embeddings_and_errors_are_clear():
    model, params = model_and_params(True)
    grads = jax.grad(lambda p: jnp.sum(model.apply(p, jnp.array([3, 1]), None, jnp.array([2, 4]))[:, 0]))(params)
    assert np.any(grads["src_embed"][3] != 0) and np.any(grads["tgt_embed"][4] != 0)
    assert np.all(grads["src_embed"][5] == 0)
    with pytest.raises(TypeError, match="src must be integer ids"):
        model.encode(params, jnp.ones(3))
    with pytest.raises(ValueError, match=r"src_mask shape \(2,\) != src shape \(3,\)"):
        model.encode(params, jnp.array([1, 2, 3]), jnp.array([True, False]))
    with pytest.raises(ValueError, match="tgt_vocab_size"):
        seq2seq(3, 0, rnnjax.lstm(4), 2)


def test_dropout_only_with_a_key_and_word_dropout_drops_whole_source_words():
    model = seq2seq(11, 9, rnnjax.lstm(6), 4, attention=True, dropout=0.3, word_dropout=0.5)
    params = perturb(model.init(jax.random.key(0)), jax.random.key(1))
    plain = seq2seq(11, 9, rnnjax.lstm(6), 4, attention=True)
    src, tgt_in = jnp.array([3, 5, 7, 1]), jnp.array([2, 4, 6])
    np.testing.assert_array_equal(model.apply(params, src, None, tgt_in), plain.apply(params, src, None, tgt_in))
    assert not np.allclose(model.apply(params, src, None, tgt_in, key=jax.random.key(2)), plain.apply(params, src, None, tgt_in))
    # word dropout alone, a one-word source: the encoder reads either 0 or the word's embedding / (1 - 0.5)
    words = seq2seq(11, 9, rnnjax.lstm(6), 4, word_dropout=0.5)
    one = jnp.array([3])
    scaled = params | {"src_embed": params["src_embed"] * 2.0}
    zeroed = params | {"src_embed": jnp.zeros_like(params["src_embed"])}
    kept, dropped = words.encode(scaled, one).outputs, words.encode(zeroed, one).outputs
    seen = {"kept": 0, "dropped": 0}
    for k in range(40):
        out = words.encode(params, one, key=jax.random.key(k)).outputs
        if np.allclose(out, kept, atol=1e-6):
            seen["kept"] += 1
        else:
            np.testing.assert_allclose(out, dropped, atol=1e-6)
            seen["dropped"] += 1
    assert seen["kept"] >= 8 and seen["dropped"] >= 8  # about half each
    with pytest.raises(ValueError, match=r"word_dropout must be in \[0, 1\), got 1.0"):
        seq2seq(11, 9, rnnjax.lstm(6), 4, word_dropout=1.0)


def test_tied_embeddings_read_the_output_through_the_target_embedding():
    model = seq2seq(11, 9, rnnjax.lstm(6), 4, attention=True, tie_embeddings=True)
    params = perturb(model.init(jax.random.key(0)), jax.random.key(1))
    assert set(params["readout"]) == {"proj", "b"}  # no separate output matrix
    src, tgt_in = jnp.array([3, 5, 1]), jnp.array([2, 4])
    logits = model.apply(params, src, None, tgt_in)
    # changing target embedding row 7 (a word never fed in) changes the logit of word 7 alone
    moved = params | {"tgt_embed": params["tgt_embed"].at[7].add(1.0)}
    diff = np.asarray(model.apply(moved, src, None, tgt_in) - logits)
    assert np.all(np.abs(diff[:, 7]) > 1e-6) and np.allclose(np.delete(diff, 7, axis=1), 0.0)
    grads = jax.grad(lambda p: jnp.sum(model.apply(p, src, None, tgt_in)[:, 7]))(params)
    assert np.any(grads["tgt_embed"][7] != 0)


def test_bidirectional_encoder_bridges_both_directions_final_carries():
    model, params = model_and_params(False, rnnjax.lstm, 2, bidirectional=True)
    assert params["bridge"]["w"].shape == (2, 2, 12, 6)  # 2 layers, LSTMCarry(h, c), [c_fwd; c_bwd] -> c
    src = jnp.array([3, 5, 7, 1])
    memory = model.encode(params, src)
    assert memory.outputs.shape == (4, 12)
    outputs, carry = rnnjax.stacked(rnnjax.lstm(6), 2, bidirectional=True).apply(params["encoder"], params["src_embed"][src])
    for layer in range(2):
        for a, name in enumerate(("h", "c")):
            both = jnp.concatenate([getattr(carry[layer]["fwd"], name), getattr(carry[layer]["bwd"], name)])
            expected = both @ params["bridge"]["w"][layer, a] + params["bridge"]["b"][layer, a]
            np.testing.assert_allclose(getattr(memory.carry[layer], name), expected, atol=1e-6)
    # the backward direction's start (the first word) reaches the decoder without attention
    tgt_in = jnp.array([2, 4])
    changed = model.apply(params, jnp.array([8, 5, 7, 1]), None, tgt_in)
    assert not np.allclose(changed, model.apply(params, src, None, tgt_in))


@pytest.mark.parametrize("tie", [False, True])
def test_lexical_model_adds_the_attended_source_words_to_the_logits(tie):
    # Nguyen & Chiang 2018: logits += (tanh(f W_l) + f) W_o with f = tanh(Σ_s a_ts x_s), written out here
    model = seq2seq(11, 9, rnnjax.lstm(6), 4, attention=True, tie_embeddings=tie, lexical=True)
    base = seq2seq(11, 9, rnnjax.lstm(6), 4, attention=True, tie_embeddings=tie)
    params = perturb(model.init(jax.random.key(0)), jax.random.key(1))
    assert params["lexical"]["w_hidden"].shape == (4, 4) and params["lexical"]["w_out"].shape == (4, 4 if tie else 9)
    plain = {k: v for k, v in params.items() if k != "lexical"}
    assert jax.tree.structure(plain) == jax.tree.structure(base.init(jax.random.key(0)))
    src, tgt_in = jnp.array([3, 5, 7, 1]), jnp.array([2, 4, 6])
    memory = base.encode(plain, src)
    hs, _ = rnnjax.stacked(rnnjax.lstm(6), 1).apply(plain["decoder"], plain["tgt_embed"][tgt_in], carry=memory.carry)
    weights = jax.nn.softmax(hs @ params["attention"]["w_score"] @ memory.outputs.T, axis=-1)  # [T, S]
    f = jnp.tanh(weights @ params["src_embed"][src])
    lex = (jnp.tanh(f @ params["lexical"]["w_hidden"]) + f) @ params["lexical"]["w_out"]
    expected = base.apply(plain, src, None, tgt_in) + (lex @ params["tgt_embed"].T if tie else lex)
    np.testing.assert_allclose(model.apply(params, src, None, tgt_in), expected, atol=1e-5, rtol=1e-5)
    # step-by-step decoding reads the same source words (the memory carries their embeddings)
    memory = model.encode(params, src)
    np.testing.assert_array_equal(memory.embeddings, params["src_embed"][src])
    carry, steps = memory.carry, []
    for token in tgt_in:
        carry, out = model.step(params, memory, carry, token)
        steps.append(out)
    np.testing.assert_allclose(jnp.stack(steps), expected, atol=1e-5, rtol=1e-5)
    grads = jax.grad(lambda p: jnp.sum(model.apply(p, src, None, tgt_in)))(params)
    assert all(np.any(g != 0) for g in jax.tree.leaves(grads["lexical"]))
    with pytest.raises(ValueError, match="lexical=True .* needs attention=True"):
        seq2seq(11, 9, rnnjax.lstm(6), 4, lexical=True)


@pytest.mark.parametrize("bidirectional,lexical", [(False, False), (True, True)])
def test_input_feeding_feeds_the_last_attentional_vector_to_the_decoder(bidirectional, lexical):
    # Luong et al. 2015, section 3.3, written out as a loop over the LSTM cell's own step:
    # x_t = [y_{t-1}; h̃_{t-1}], h̃_0 = 0; h̃_t = tanh(W_c [c_t; h_t]); logits_t = h̃_t W + b
    cell = rnnjax.lstm(6)
    model = seq2seq(11, 9, cell, 4, attention=True, bidirectional=bidirectional, lexical=lexical, input_feeding=True)
    params = perturb(model.init(jax.random.key(0)), jax.random.key(1))
    assert params["decoder"][0]["w_x"].shape == (4 + 6, 24)  # the token's embedding and h̃
    src, tgt_in = jnp.array([3, 5, 7, 1]), jnp.array([2, 4, 6, 8])
    memory = model.encode(params, src)
    carry, fed = memory.carry
    carry = carry[0]
    np.testing.assert_array_equal(fed, jnp.zeros(6))
    expected = []
    for token in tgt_in:
        x = jnp.concatenate([params["tgt_embed"][token], fed])
        carry, h = cell.step(params["decoder"][0], carry, x)
        weights = jax.nn.softmax(h @ params["attention"]["w_score"] @ memory.outputs.T)
        fed = jnp.tanh(jnp.concatenate([weights @ memory.outputs, h]) @ params["attention"]["w_combine"])
        logits = fed @ params["readout"]["w"] + params["readout"]["b"]
        if lexical:
            f = jnp.tanh(weights @ params["src_embed"][src])
            logits = logits + (jnp.tanh(f @ params["lexical"]["w_hidden"]) + f) @ params["lexical"]["w_out"]
        expected.append(logits)
    expected = jnp.stack(expected)
    np.testing.assert_allclose(model.apply(params, src, None, tgt_in), expected, atol=1e-5, rtol=1e-5)
    # decoding step by step carries h̃ with the cells' carries
    carry, steps = memory.carry, []
    for token in tgt_in:
        carry, out = model.step(params, memory, carry, token)
        steps.append(out)
    np.testing.assert_allclose(jnp.stack(steps), expected, atol=1e-5, rtol=1e-5)
    # padding the target changes nothing before its end, with or without dropout's key
    padded = model.apply(params, src, None, jnp.array([2, 4, 6, 8, 5, 5]), jnp.arange(6) < 4)
    np.testing.assert_allclose(padded[:4], expected, atol=1e-5, rtol=1e-5)
    # the fed vector matters: the second step's logits move with the first step's attention output
    moved = params | {"attention": params["attention"] | {"w_combine": params["attention"]["w_combine"] * 1.5}}
    plain = seq2seq(11, 9, cell, 4, attention=True, bidirectional=bidirectional, lexical=lexical)
    unfed = {**params, "decoder": (params["decoder"][0] | {"w_x": params["decoder"][0]["w_x"][:4]},)}
    np.testing.assert_allclose(plain.apply(unfed, src, None, tgt_in)[0], expected[0], atol=1e-5, rtol=1e-5)  # h̃_0 = 0
    assert not np.allclose(plain.apply(unfed, src, None, tgt_in)[1:], expected[1:], atol=1e-4)
    assert not np.allclose(model.apply(moved, src, None, tgt_in)[1], expected[1], atol=1e-4)
    grads = jax.grad(lambda p, k: jnp.sum(model.apply(p, src, None, tgt_in, key=k)))(params, jax.random.key(3))
    assert np.any(grads["decoder"][0]["w_x"][4:] != 0)  # the rows that read h̃
    with pytest.raises(ValueError, match="input_feeding=True .* needs attention=True"):
        seq2seq(11, 9, cell, 4, input_feeding=True)
