"""Writes the notebooks in notebooks/ from the cell sources below (outputs stay out of the repository).

    python tools/make_notebooks.py
"""

import pathlib

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = pathlib.Path(__file__).parents[1] / "notebooks"

SETUP = """import pathlib, sys
root = pathlib.Path.cwd()
sys.path.insert(0, str(root.parent if root.name == "notebooks" else root))  # for `experiments`

import jax, jax.numpy as jnp
import matplotlib.pyplot as plt
import rnnjax
from rnnjax import diagnostics
from rnnjax.datasets import adding_task"""

GRADIENT_NORMS = [
    new_markdown_cell(
        "# Gradient norms, step by step\n\n"
        "Pick a cell, an initialisation and a sequence length; see how strongly the loss depends on each "
        "hidden state (`‖∂L/∂h_t‖`), how the product of step Jacobians `∂h_T/∂h_t` shrinks or grows, and "
        "the spectrum of the recurrent matrix. Everything here is computed by `rnnjax.diagnostics`; the "
        "notebook only draws. Sizes are small so it runs in seconds; raise `LENGTH` and `HIDDEN` freely."
    ),
    new_code_cell(SETUP),
    new_code_cell(
        '# Choose: "rnn", "irnn" (ReLU + identity), "lstm" or "gru"; the recurrent scale applies to "rnn".\n'
        'CELL = "rnn"\nSCALE = 1.0\nLENGTH = 60\nHIDDEN = 32\nBATCH = 8\n\n'
        "factories = {\n"
        '    "rnn": lambda: rnnjax.rnn(HIDDEN, recurrent_scale=SCALE),\n'
        '    "irnn": lambda: rnnjax.rnn(HIDDEN, activation="relu", init="identity"),\n'
        '    "lstm": lambda: rnnjax.lstm(HIDDEN),\n'
        '    "gru": lambda: rnnjax.gru(HIDDEN),\n'
        "}\n"
        "cell = factories[CELL]()\n"
        "params = cell.init(jax.random.key(0), 2)\n"
        "xs, targets = adding_task(jax.random.key(1), BATCH, LENGTH)"
    ),
    new_markdown_cell(
        "## ‖∂L/∂h_t‖ for a loss on the last output\n\nThe loss here is the squared last output summed "
        "over units; any `loss_fn(ys, final_carry)` works. The mean over a batch is one `jax.vmap`."
    ),
    new_code_cell(
        "loss_fn = lambda ys, carry: jnp.sum(ys[-1] ** 2)\n"
        "norms = jax.jit(jax.vmap(lambda x: diagnostics.hidden_grad_norms(cell, params, x, loss_fn)))(xs)\n"
        "mean = norms.mean(0)\n"
        "plt.semilogy(range(1, LENGTH + 1), mean)\n"
        'plt.xlabel("t"); plt.ylabel("‖∂L/∂h_t‖"); plt.title(f"{cell.name}, T = {LENGTH}")\n'
        "plt.show()\n"
        'print(f"‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ = {float(mean[0] / mean[-1]):.3g}")'
    ),
    new_markdown_cell("## The Jacobian ∂h_T/∂h_t along one trajectory"),
    new_code_cell(
        "jac = diagnostics.jacobian_norms(cell, params, xs[0])\n"
        'plt.semilogy(jac["spectral"], label="spectral norm")\n'
        'plt.semilogy(jac["frobenius"], label="Frobenius norm")\n'
        'plt.xlabel("t"); plt.title("‖∂h_T/∂h_t‖"); plt.legend(); plt.show()'
    ),
    new_markdown_cell(
        "## The recurrent matrix\n\nFor a linear RNN the spectral radius of `W_R` decides everything: "
        "`W_R^t` vanishes below 1 and explodes above. Gated cells have one block per gate."
    ),
    new_code_cell(
        'spectrum = diagnostics.recurrent_spectrum(params["w_h"])\n'
        'for i, sv in enumerate(spectrum["singular_values"]):\n'
        '    plt.plot(sv, marker=".", label=f"block {i}: radius {float(spectrum[\'spectral_radius\'][i]):.2f}")\n'
        'plt.ylabel("singular value"); plt.legend(); plt.show()'
    ),
]

CURES = [
    new_markdown_cell(
        "# Vanishing and exploding gradients, and their cures\n\n"
        "Three cures from the notes this project grew from: **initialisation** (the recurrent scale, "
        "identity with ReLU), **gates** (LSTM, GRU), and **clipping** (Pascanu, Mikolov & Bengio 2013). "
        "Small sizes; `python -m experiments.gradient_flow` makes the full-size figures."
    ),
    new_code_cell(SETUP + "\nfrom experiments.gradient_flow import model, train, mean_grad_norms, Config"),
    new_code_cell(
        "LENGTH, HIDDEN = 50, 32\n"
        "cfg = Config(length=LENGTH, hidden=HIDDEN, batch=20, steps=30, explode_length=20)\n"
        "xs, targets = adding_task(jax.random.key(1), 8, LENGTH)"
    ),
    new_markdown_cell(
        "## Initialisation: the recurrent scale sets the decay rate\n\n"
        "A tanh RNN with orthogonal `W_R` scaled by 0.5, 1.0 and 1.5, and the IRNN (ReLU, identity)."
    ),
    new_code_cell(
        "inits = {\n"
        '    "tanh, scale 0.5": lambda h: rnnjax.rnn(h, recurrent_scale=0.5),\n'
        '    "tanh, scale 1.0": lambda h: rnnjax.rnn(h, recurrent_scale=1.0),\n'
        '    "tanh, scale 1.5": lambda h: rnnjax.rnn(h, recurrent_scale=1.5),\n'
        '    "IRNN": lambda h: rnnjax.rnn(h, activation="relu", init="identity"),\n'
        "}\n"
        "for label, factory in inits.items():\n"
        "    cell, readout, params = model(factory, HIDDEN, jax.random.key(0))\n"
        "    plt.semilogy(mean_grad_norms(cell, readout, params, xs, targets), label=label)\n"
        'plt.xlabel("t"); plt.ylabel("‖∂L/∂h_t‖"); plt.legend(); plt.show()'
    ),
    new_markdown_cell("## Gates: the LSTM's and GRU's additive paths keep the gradient alive"),
    new_code_cell(
        'for label, factory in {"tanh RNN": rnnjax.rnn, "LSTM": rnnjax.lstm, "GRU": rnnjax.gru}.items():\n'
        "    cell, readout, params = model(factory, HIDDEN, jax.random.key(0))\n"
        "    plt.semilogy(mean_grad_norms(cell, readout, params, xs, targets), label=label)\n"
        'plt.xlabel("t"); plt.legend(); plt.show()'
    ),
    new_markdown_cell(
        "## Clipping: the same exploding network, trained with and without it\n\n"
        "A tanh RNN with recurrent scale 1.5 and plain SGD. Without clipping one huge gradient throws the "
        "weights far away; clipped by global norm at 1, the step size stays bounded."
    ),
    new_code_cell(
        "for label, clip in [(\"no clipping\", None), (\"clipped at 1\", \"global_norm\")]:\n"
        "    cell, readout, params = model(lambda h: rnnjax.rnn(h, recurrent_scale=1.5), HIDDEN, jax.random.key(0))\n"
        "    optimizer = rnnjax.make_optimizer(\"sgd\", 0.1, clip=clip, clip_threshold=1.0)\n"
        "    _, history = train(cell, readout, params, cfg, jax.random.key(3), optimizer, 30, cfg.explode_length)\n"
        "    plt.semilogy([r[\"loss\"] for r in history], label=label)\n"
        'plt.xlabel("step"); plt.ylabel("training loss"); plt.legend(); plt.show()'
    ),
]


def write(name, cells):
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    write("gradient_norms.ipynb", GRADIENT_NORMS)
    write("vanishing_exploding.ipynb", CURES)
    print("wrote", sorted(p.name for p in HERE.glob("*.ipynb")))
