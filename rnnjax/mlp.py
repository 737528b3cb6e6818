"""The feed-forward baseline the seed starts from: ``y = g(W x + b)``, layer after layer.

Trained by the chain rule (``jax.grad``): the derivative of the cost with respect to each weight moves
back through the nested layers (Rumelhart, Hinton & Williams 1986). A recurrent net unrolled in time is
this same network with its weights shared across the layers (time steps).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from rnnjax import _checks
from rnnjax import initializers as inits
from rnnjax._ops import affine
from rnnjax.cells import ACTIVATIONS
from rnnjax.types import MLP

_MLP_ACTIVATIONS = {**ACTIVATIONS, "sigmoid": jax.nn.sigmoid, "identity": lambda x: x}


def mlp(sizes: Sequence[int], activation: str = "tanh") -> MLP:
    """A multi-layer perceptron with ``len(sizes)`` dense layers.

    ``h_0 = x``, ``h_l = g(h_{l-1} W_l + b_l)`` for hidden layers, and the last layer is linear
    (``y = h_{L-1} W_L + b_L``) so a loss can apply its own link (softmax, sigmoid, identity).

    Args:
      sizes: output width of each layer, e.g. ``[64, 64, 10]``.
      activation: ``"tanh"``, ``"relu"``, ``"sigmoid"`` or ``"identity"`` between layers.

    Returns:
      An :class:`rnnjax.MLP`: ``init(key, input_size)`` gives a tuple of ``{"w": [D_in, D_out],
      "b": [D_out]}`` (Glorot uniform weights, zero biases); ``apply(params, x [..., D]) -> [..., O]``.
    """
    sizes = tuple(_checks.hidden_size(s, "layer size") for s in sizes)
    if not sizes:
        raise ValueError("sizes must name at least one layer")
    g = _MLP_ACTIVATIONS[_checks.choice(activation, _MLP_ACTIVATIONS, "activation")]

    def init(key, input_size):
        _checks.hidden_size(input_size, "input_size")
        params, fan_in = [], input_size
        for size, k in zip(sizes, jax.random.split(key, len(sizes))):
            params.append({"w": inits.glorot_uniform()(k, (fan_in, size)), "b": jnp.zeros((size,))})
            fan_in = size
        return tuple(params)

    def apply(params, x):
        _checks.floating(x, "x", "mlp")
        if x.shape[-1] != params[0]["w"].shape[0]:
            raise ValueError(
                f"mlp: x has {x.shape[-1]} features (shape {tuple(x.shape)}), but the params were "
                f"initialised with input_size={params[0]['w'].shape[0]}"
            )
        for layer in params[:-1]:
            x = g(affine(x, layer["w"], layer["b"]))
        return affine(x, params[-1]["w"], params[-1]["b"])

    return MLP(init, apply)
