"""Figures drawn from arrays and metric records (matplotlib, headless)."""

from __future__ import annotations

import pathlib


def loss_curve(records: list[dict], path, keys=("loss", "eval_loss"), log_y: bool = True):
    """Draws the given metrics against ``step`` into a PNG at ``path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in keys:
        points = [(r["step"], r[key]) for r in records if key in r]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, label=key, marker="." if len(points) < 30 else None)
    ax.set_xlabel("step")
    if log_y:
        ax.set_yscale("log")
    ax.legend()
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def _save(fig, path):
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sweep_curves(curves, labels: list[str], path, ylabel: str = "loss", log_y: bool = True):
    """Every model's curve ``curves [N, S]`` in one figure (a diverged model's curve stops where it
    became non-finite); returns the path."""
    import numpy as np

    plt = _pyplot()
    curves = np.asarray(curves, np.float64)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.cm.viridis(np.linspace(0, 1, max(len(curves), 2)))
    for curve, label, color in zip(curves, labels, colors):
        ax.plot(np.where(np.isfinite(curve), curve, np.nan), label=label, color=color, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    if len(curves) <= 16:
        ax.legend(fontsize=6, ncol=2)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def sweep_heatmap(values, x, y, xlabel: str, ylabel: str, path, title: str = ""):
    """``values [len(y), len(x)]`` as a heatmap with each cell's number written in it (non-finite cells
    read "diverged"); returns the path."""
    import numpy as np

    plt = _pyplot()
    values = np.asarray(values, np.float64)
    fig, ax = plt.subplots(figsize=(1.3 * len(x) + 2, 1.0 * len(y) + 1.5))
    from matplotlib.colors import LogNorm, Normalize

    shown = np.where(np.isfinite(values), values, np.nan)
    finite = shown[np.isfinite(shown)]
    # losses span decades: a log scale when they are positive, so small differences near the best show
    norm = LogNorm() if finite.size and finite.min() > 0 else Normalize()
    cmap = plt.get_cmap("viridis_r").with_extremes(bad="lightgrey")
    image = ax.imshow(shown, cmap=cmap, norm=norm, aspect="auto")
    for i in range(len(y)):
        for j in range(len(x)):
            v = values[i, j]
            dark = np.isfinite(v) and sum(image.cmap(image.norm(v))[:3]) < 1.5
            ax.text(j, i, f"{v:.3g}" if np.isfinite(v) else "diverged", ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(x)), [f"{v:g}" for v in x])
    ax.set_yticks(range(len(y)), [f"{v:g}" for v in y])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax)
    return _save(fig, path)
