"""Bad input gets an error that names the problem."""

import jax
import jax.numpy as jnp
import pytest

import rnnjax
from tests.helpers import CELLS


@pytest.fixture(params=list(CELLS))
def cell_and_params(request):
    cell = CELLS[request.param](4)
    return cell, cell.init(jax.random.key(0), 3)


@pytest.mark.parametrize("fast", [True, False])
def test_feature_size_differs_from_init(cell_and_params, fast):
    cell, params = cell_and_params
    with pytest.raises(ValueError, match=r"xs has 5 features .* input_size=3"):
        rnnjax.unroll(cell, params, jnp.ones((6, 5)), fast=fast)
    with pytest.raises(ValueError, match=r"x has 5 features .* input_size=3"):
        cell.step(params, cell.initial_carry(params), jnp.ones(5))


def test_wrong_rank(cell_and_params):
    cell, params = cell_and_params
    with pytest.raises(ValueError, match=r"xs must have rank 2, \[T, D\], got shape \(2, 6, 3\) \(batch with jax.vmap\)"):
        rnnjax.unroll(cell, params, jnp.ones((2, 6, 3)))
    with pytest.raises(ValueError, match=r"xs must have rank 2"):
        rnnjax.unroll(cell, params, jnp.ones(3))
    with pytest.raises(ValueError, match=r"x must have rank 1"):
        cell.step(params, cell.initial_carry(params), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"mask must have rank 1"):
        rnnjax.unroll(cell, params, jnp.ones((6, 3)), mask=jnp.ones((6, 1)))


def test_mask_length_differs_from_sequence(cell_and_params):
    cell, params = cell_and_params
    with pytest.raises(ValueError, match="mask has length 5 but the sequence xs has 6 steps"):
        rnnjax.unroll(cell, params, jnp.ones((6, 3)), mask=jnp.ones(5, bool))


def test_integer_data_given_to_a_float_cell(cell_and_params):
    cell, params = cell_and_params
    with pytest.raises(TypeError, match=r"xs has dtype int32.*floating point"):
        rnnjax.unroll(cell, params, jnp.ones((6, 3), jnp.int32))
    with pytest.raises(TypeError, match=r"x has dtype int32"):
        cell.step(params, cell.initial_carry(params), jnp.ones(3, jnp.int32))


def test_unknown_names():
    with pytest.raises(ValueError, match=r"unknown activation 'sigmoidal'; expected one of \['relu', 'tanh'\]"):
        rnnjax.rnn(4, activation="sigmoidal")
    with pytest.raises(ValueError, match=r"unknown recurrent init 'xavier'"):
        rnnjax.rnn(4, init="xavier")
    with pytest.raises(ValueError, match=r"unknown input init 'he'"):
        rnnjax.rnn(4, input_init="he")
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'"):
        rnnjax.mlp([3], activation="gelu")


@pytest.mark.parametrize("factory", [rnnjax.rnn, rnnjax.lstm, rnnjax.gru])
@pytest.mark.parametrize("size", [0, -3])
def test_non_positive_hidden_size(factory, size):
    with pytest.raises(ValueError, match=f"hidden_size must be positive, got {size}"):
        factory(size)


def test_non_integer_sizes():
    with pytest.raises(TypeError, match="hidden_size must be an integer, got 2.5"):
        rnnjax.lstm(2.5)
    with pytest.raises(ValueError, match="input_size must be positive, got 0"):
        rnnjax.lstm(3).init(jax.random.key(0), 0)
    with pytest.raises(ValueError, match="layer size must be positive"):
        rnnjax.mlp([4, 0])


def test_net_errors():
    with pytest.raises(ValueError, match="num_layers must be positive, got 0"):
        rnnjax.stacked(rnnjax.lstm(3), 0)
    with pytest.raises(ValueError, match="num_layers=3 but 2 cells were given"):
        rnnjax.stacked([rnnjax.lstm(3), rnnjax.gru(3)], 3)
    net = rnnjax.stacked(rnnjax.lstm(3), 2)
    params = net.init(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="xs has 4 features"):
        net.apply(params, jnp.ones((5, 4)))
    with pytest.raises(ValueError, match="params hold 1 layers but the net has 2"):
        net.apply(params[:1], jnp.ones((5, 2)))


def test_mlp_errors():
    f = rnnjax.mlp([4, 2])
    params = f.init(jax.random.key(0), 3)
    with pytest.raises(ValueError, match="x has 5 features"):
        f.apply(params, jnp.ones(5))
    with pytest.raises(TypeError, match="x has dtype int32"):
        f.apply(params, jnp.ones(3, jnp.int32))
