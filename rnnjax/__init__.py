"""rnnjax: recurrent neural networks as pure JAX functions."""

from rnnjax import initializers
from rnnjax.cells import gru, lstm, rnn
from rnnjax.types import Cell, LSTMCarry, MLP, Net
from rnnjax.unroll import unroll

__all__ = ["Cell", "LSTMCarry", "MLP", "Net", "gru", "initializers", "lstm", "rnn", "unroll"]
