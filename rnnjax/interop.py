"""Weights from PyTorch and Flax recurrent layers, as rnnjax nets and params.

The conversions are exact re-parametrisations, so the returned net reproduces the source layer's outputs
to float rounding; the test suite uses them as an independent oracle for rnnjax's cells.

Conventions converted here:

- PyTorch keeps two biases (``b_ih`` and ``b_hh``); where they are summed before any nonlinearity they
  become one ``b``. The GRU's ``b_hn`` sits inside the reset product and stays separate.
- PyTorch and Flax write the GRU as ``h_t = (1 - z') h~ + z' h_{t-1}``; rnnjax (after Cho et al. 2014)
  as ``h_t = (1 - z) h_{t-1} + z h~``. Since ``z = 1 - z' = σ(-a_z')``, the update gate's weights and
  bias change sign.
- Weights are transposed to ``[in, out]`` and gates keep PyTorch's order (LSTM i, f, g, o; GRU r, z, n).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from rnnjax.cells import gru, lstm, rnn
from rnnjax.layers import stacked


def _np(t):
    return np.asarray(t.detach().cpu().numpy(), dtype=np.float32)


def _negate_update_gate(a, hidden_size, axis=-1):
    """Flips the sign of the z block (the second of r, z, n) along ``axis``."""
    a = np.array(a, copy=True)
    index = [slice(None)] * a.ndim
    index[axis] = slice(hidden_size, 2 * hidden_size)
    a[tuple(index)] *= -1
    return a


def _torch_layer(kind, hidden_size, get, has_bias):
    w_ih, w_hh = get("weight_ih"), get("weight_hh")
    zeros = np.zeros(w_ih.shape[0], np.float32)
    b_ih = get("bias_ih") if has_bias else zeros
    b_hh = get("bias_hh") if has_bias else zeros
    if kind != "GRU":
        params = {"w_x": w_ih.T, "w_h": w_hh.T, "b": b_ih + b_hh}
        if kind == "LSTM" and get("weight_hr", None) is not None:  # proj_size: h_t = W_hr (o ⊙ tanh(c_t))
            params["w_proj"] = get("weight_hr").T
        return params
    H = hidden_size
    b = np.concatenate([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H :]])
    return {
        "w_x": _negate_update_gate(w_ih.T, H),
        "w_h": _negate_update_gate(w_hh.T, H),
        "b": _negate_update_gate(b, H),
        "b_hn": b_hh[2 * H :],
    }


def from_torch(module, fast: bool = True):
    """Converts a ``torch.nn.RNN``, ``torch.nn.LSTM`` or ``torch.nn.GRU`` into ``(net, params)``.

    Any ``num_layers``, ``bidirectional``, ``bias``, ``batch_first``, and ``nonlinearity`` of
    ``"tanh"`` or ``"relu"`` for ``nn.RNN``. ``net.apply(params, xs [T, D], mask=None) -> (ys, carry)``
    matches the module's output for the same input as a batch of one; the carry's layers follow the
    module's ``h_n`` (and ``c_n``) order. Dropout between layers is a training-time choice and is not
    carried over (the net corresponds to ``module.eval()``).

    An ``nn.LSTM(proj_size=P)`` becomes ``rnnjax.lstm(H, proj_size=P)`` (``weight_hr`` is ``w_proj``).

    Raises:
      TypeError: for other modules.
    """
    import torch

    kinds = {torch.nn.RNN: "RNN", torch.nn.LSTM: "LSTM", torch.nn.GRU: "GRU"}
    kind = kinds.get(type(module))
    if kind is None:
        raise TypeError(f"from_torch takes torch.nn.RNN, LSTM or GRU, got {type(module).__name__}")
    H = module.hidden_size
    if kind == "RNN":
        cell = rnn(H, activation=module.nonlinearity)
    elif kind == "LSTM":
        cell = lstm(H, proj_size=module.proj_size or None)
    else:
        cell = gru(H, reset_after=True)
    state = {k: _np(v) for k, v in module.state_dict().items()}
    layers = []
    for layer in range(module.num_layers):
        directions = []
        for suffix in ("", "_reverse")[: 2 if module.bidirectional else 1]:
            def get(name, default=KeyError, s=suffix, l=layer):
                key = f"{name}_l{l}{s}"
                if default is KeyError or key in state:
                    return state[key]
                return default

            p = _torch_layer(kind, H, get, module.bias)
            directions.append({k: jnp.asarray(v) for k, v in p.items()})
        layers.append({"fwd": directions[0], "bwd": directions[1]} if module.bidirectional else directions[0])
    net = stacked(cell, module.num_layers, bidirectional=module.bidirectional, fast=fast)
    return net, tuple(layers)


def _dense(params, name):
    return np.asarray(params[name]["kernel"], np.float32)


def _bias(params, name):
    return np.asarray(params[name]["bias"], np.float32)


def from_flax(module, variables, fast: bool = True):
    """Converts a Flax linen cell and its variables into ``(net, params)`` for a one-layer net.

    Supported: ``nn.SimpleCell`` (tanh or relu, ``residual=False``), ``nn.LSTMCell``,
    ``nn.OptimizedLSTMCell`` and ``nn.GRUCell``, with their default gate functions.
    ``net.apply(params, xs [T, D])`` matches ``nn.RNN(module)`` on the same sequence; rnnjax's LSTM carry
    is ``LSTMCarry(h, c)`` where Flax's is ``(c, h)``.
    """
    import flax.linen as nn
    import jax

    p = variables["params"] if "params" in variables else variables
    H = module.features
    name = type(module).__name__
    if isinstance(module, nn.SimpleCell):
        if module.residual:
            raise ValueError("from_flax: SimpleCell(residual=True) is not supported")
        activations = {jnp.tanh: "tanh", nn.tanh: "tanh", jax.nn.relu: "relu", nn.relu: "relu"}
        activation = activations.get(module.activation_fn)
        if activation is None:
            raise ValueError(f"from_flax: SimpleCell activation {module.activation_fn} is not tanh or relu")
        cell = rnn(H, activation=activation)
        params = {"w_x": _dense(p, "i"), "w_h": _dense(p, "h"), "b": _bias(p, "i")}
    elif isinstance(module, (nn.LSTMCell, nn.OptimizedLSTMCell)):
        cell = lstm(H)
        gates = "ifgo"
        params = {
            "w_x": np.concatenate([_dense(p, "i" + g) for g in gates], axis=1),
            "w_h": np.concatenate([_dense(p, "h" + g) for g in gates], axis=1),
            "b": np.concatenate([_bias(p, "h" + g) for g in gates]),
        }
    elif isinstance(module, nn.GRUCell):
        cell = gru(H, reset_after=True)
        params = {
            "w_x": _negate_update_gate(np.concatenate([_dense(p, "i" + g) for g in "rzn"], axis=1), H),
            "w_h": _negate_update_gate(np.concatenate([_dense(p, "h" + g) for g in "rzn"], axis=1), H),
            "b": _negate_update_gate(np.concatenate([_bias(p, "i" + g) for g in "rzn"]), H),
            "b_hn": _bias(p, "hn"),
        }
    else:
        raise TypeError(f"from_flax takes SimpleCell, LSTMCell, OptimizedLSTMCell or GRUCell, got {name}")
    net = stacked(cell, 1, fast=fast)
    return net, ({k: jnp.asarray(v) for k, v in params.items()},)
