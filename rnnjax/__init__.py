"""rnnjax: recurrent neural networks as pure JAX functions.

Cells (:func:`rnn`, :func:`lstm`, :func:`gru`, :func:`exp_rnn`, :func:`indrnn`, and the linear recurrences :func:`min_gru`,
:func:`min_lstm`, :func:`lru` with a parallel unroll) are NamedTuples of pure functions; :func:`unroll` runs one
over a sequence with ``jax.lax.scan``; :func:`stacked` builds deep and bidirectional nets; :func:`mlp` is
the feed-forward baseline. Weight converters live in :mod:`rnnjax.interop`.
"""

from rnnjax import initializers
from rnnjax.cells import exp_rnn, gru, indrnn, lstm, recurrent_dropout, rnn, zoneout
from rnnjax.layers import stacked
from rnnjax.linear import linear_scan, lru, min_gru, min_lstm
from rnnjax.mlp import mlp
from rnnjax.optim import make_optimizer
from rnnjax.tbptt import truncated_unroll
from rnnjax.train import TrainState, eval_params, fit, init_state, make_train_step
from rnnjax.types import MLP, Cell, LSTMCarry, Net
from rnnjax.unroll import unroll

__all__ = [
    "MLP",
    "TrainState",
    "Cell",
    "LSTMCarry",
    "Net",
    "eval_params",
    "exp_rnn",
    "gru",
    "fit",
    "indrnn",
    "init_state",
    "initializers",
    "linear_scan",
    "lru",
    "lstm",
    "make_optimizer",
    "make_train_step",
    "min_gru",
    "min_lstm",
    "mlp",
    "recurrent_dropout",
    "rnn",
    "stacked",
    "truncated_unroll",
    "unroll",
    "zoneout",
]
__version__ = "0.1.0"
