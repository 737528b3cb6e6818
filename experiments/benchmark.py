"""Training-step time of rnnjax against Flax and PyTorch, side by side in one process; and compile time
and memory against sequence length, with and without rematerialisation.

    python -m experiments.benchmark                     # S, M, L x LSTM, GRU, tanh RNN (about 10 min on 2 cores)
    python -m experiments.benchmark --configs=S --cells=lstm --repeats=20
    python -m experiments.benchmark memory              # compile time and memory, T = 100 ... 10,000
    python -m experiments.benchmark profile --config=S --cell=lstm   # where the time goes, XLA vs PyTorch
    python -m experiments.benchmark linear              # minGRU, minLSTM, LRU: parallel vs sequential vs LSTM, T 128 ... 8192
    python -m experiments.benchmark --quick             # a smoke run with tiny shapes (CI runs it)
    make bench                                          # the first command, with tcmalloc where installed

One step = the forward pass over the whole sequence, a linear readout and a mean-squared loss at every
step, backpropagation through time, and clipping by global norm (1.0) + RMSProp (lr 1e-3, decay 0.99).
Variants, timed round-robin (the order rotating every round) so drifts in machine load hit all alike,
median of ``--repeats`` steps after one warm-up step (compile time reported apart):

- ``rnnjax``: ``rnnjax.unroll`` with its default (fast) path, ``jax.vmap`` over the batch, optax chain;
- ``rnnjax autodiff``: the same with ``fast=False``, plain ``jax.grad`` through ``lax.scan``;
- ``Flax``: ``nn.RNN`` over ``nn.OptimizedLSTMCell`` / ``nn.GRUCell`` / ``nn.SimpleCell`` and ``nn.Dense``,
  the same optax chain;
- ``PyTorch``: ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (batch first) and ``nn.Linear``, ``clip_grad_norm_``
  and ``torch.optim.RMSprop``, ``torch.set_num_threads(2)``.

GFLOP/s counts the matrix products only (forward ``2 B T (D + H) G H + 2 B T H O`` with ``G`` gates; the
backward pass twice that), against this machine's matmul peak measured at the start (the faster of XLA
and PyTorch on a 2048 x 2048 product). The memory allocator in use (glibc malloc, or tcmalloc when
preloaded) is printed on every row; ``make bench`` preloads tcmalloc where it is installed (Debian:
``apt-get install libtcmalloc-minimal4``), for every variant alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rnnjax
from experiments import _cli, _common

CONFIGS = {"S": (32, 128, 64, 256), "M": (64, 256, 128, 512), "L": (1, 1000, 32, 128)}  # batch, T, input, hidden
QUICK_CONFIGS = {"S": (4, 12, 6, 8), "L": (1, 40, 3, 5)}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
CELLS = _common.CELLS
LINEAR = ("min_gru", "min_lstm", "lru")
LR, DECAY, CLIP = 1e-3, 0.99, 1.0


def allocator() -> str:
    maps = pathlib.Path("/proc/self/maps")
    if maps.exists() and "tcmalloc" in maps.read_text():
        return "tcmalloc"
    return "glibc malloc"


def matmul_flops(cell: str, batch: int, length: int, inputs: int, hidden: int) -> float:
    forward = 2 * batch * length * ((inputs + hidden) * GATES[cell] * hidden + hidden * inputs)
    return 3.0 * forward


def optimizer():
    return optax.chain(optax.clip_by_global_norm(CLIP), optax.rmsprop(LR, decay=DECAY, eps=1e-8))


def data(batch, length, inputs, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, length, inputs), np.float32), rng.standard_normal((batch, length, inputs), np.float32)


class JaxVariant:
    """A jitted ``(params, opt_state, xs, targets) -> (params, opt_state, loss)``, compiled once."""

    def __init__(self, loss_fn, params, xs, targets):
        opt = optimizer()

        def step(params, opt_state, xs, targets):
            loss, grads = jax.value_and_grad(loss_fn)(params, xs, targets)
            updates, opt_state = opt.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        self.state = (params, opt.init(params))
        self.xs, self.targets = jnp.asarray(xs), jnp.asarray(targets)
        start = time.perf_counter()
        self.step = jax.jit(step, donate_argnums=(0, 1)).lower(*self.state, self.xs, self.targets).compile()
        self.compile_s = time.perf_counter() - start

    def __call__(self):
        params, opt_state, loss = self.step(*self.state, self.xs, self.targets)
        self.state = (params, opt_state)
        return float(jax.block_until_ready(loss))


def rnnjax_variant(cell_name, xs, targets, hidden, fast, parallel=None):
    cell = CELLS[cell_name](hidden, None)
    k_cell, k_out = jax.random.split(jax.random.key(0))
    inputs = xs.shape[-1]
    params = {"cell": cell.init(k_cell, inputs),
              "w_out": jax.random.normal(k_out, (hidden, inputs)) / np.sqrt(hidden), "b_out": jnp.zeros(inputs)}

    def unroll(p, x):
        return rnnjax.unroll(cell, p, x, fast=fast, parallel=parallel)[1]

    def loss_fn(params, xs, targets):
        ys = jax.vmap(lambda x: unroll(params["cell"], x))(xs)
        return jnp.mean((ys @ params["w_out"] + params["b_out"][None, None] - targets) ** 2)

    return JaxVariant(loss_fn, params, xs, targets)


def flax_variant(cell_name, xs, targets, hidden):
    import flax.linen as nn

    cell_cls = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell, "rnn": nn.SimpleCell}[cell_name]
    inputs = xs.shape[-1]

    class Model(nn.Module):
        @nn.compact
        def __call__(self, xs):
            return nn.Dense(inputs)(nn.RNN(cell_cls(hidden))(xs))

    model = Model()
    params = model.init(jax.random.key(0), jnp.asarray(xs))

    def loss_fn(params, xs, targets):
        return jnp.mean((model.apply(params, xs) - targets) ** 2)

    return JaxVariant(loss_fn, params, xs, targets)


class TorchVariant:
    def __init__(self, cell_name, xs, targets, hidden):
        import torch

        torch.manual_seed(0)
        rnn_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell_name]
        inputs = xs.shape[-1]
        self.torch = torch
        self.rnn = rnn_cls(inputs, hidden, batch_first=True)
        self.out = torch.nn.Linear(hidden, inputs)
        self.params = list(self.rnn.parameters()) + list(self.out.parameters())
        self.opt = torch.optim.RMSprop(self.params, lr=LR, alpha=DECAY, eps=1e-8)
        self.xs, self.targets = torch.from_numpy(xs), torch.from_numpy(targets)
        self.compile_s = None

    def __call__(self):
        torch = self.torch
        self.opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(self.out(self.rnn(self.xs)[0]), self.targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, CLIP)
        self.opt.step()
        return float(loss.detach())


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def matmul_peak(n: int = 2048, repeats: int = 10) -> dict[str, float]:
    """GFLOP/s of an ``n x n`` float32 product, the best of ``repeats``: XLA's and, where installed, PyTorch's."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    f = jax.jit(lambda a, b: a @ b)
    jax.block_until_ready(f(a, a))
    out = {}
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(f(a, a))
        times.append(time.perf_counter() - t)
    out["XLA"] = 2 * n**3 / min(times) / 1e9  # a peak: the best of the repeats
    if torch_available():
        import torch

        x = torch.randn(n, n)
        x @ x
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            x @ x
            times.append(time.perf_counter() - t)
        out["PyTorch"] = 2 * n**3 / min(times) / 1e9
    return out


def interleaved(variants, repeats, where):
    """Times ``{name: step}`` round-robin: one warm-up step each (its loss must be finite), then
    ``repeats`` rounds; returns ``(first losses, median seconds)`` by name."""
    first = {name: v() for name, v in variants.items()}  # warm-up (and the first loss of each)
    for name, loss in first.items():
        if not np.isfinite(loss):
            raise FloatingPointError(f"{name} gave a non-finite loss {loss} on {where}")
    times = {name: [] for name in variants}
    names = list(variants)
    for r in range(repeats):
        # The order rotates every round: a variant right after PyTorch runs while PyTorch's OpenMP threads
        # still spin-wait on the two cores, which slowed whichever variant always came next by up to 50% at L.
        for name in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - t)
    return first, {name: statistics.median(ts) for name, ts in times.items()}


def bench_one(config, cell_name, shape, repeats):
    batch, length, inputs, hidden = shape
    xs, targets = data(batch, length, inputs)
    variants = {
        "rnnjax": rnnjax_variant(cell_name, xs, targets, hidden, fast=True),
        "rnnjax autodiff": rnnjax_variant(cell_name, xs, targets, hidden, fast=False),
        "Flax": flax_variant(cell_name, xs, targets, hidden),
    }
    if torch_available():
        variants["PyTorch"] = TorchVariant(cell_name, xs, targets, hidden)
    first, medians = interleaved(variants, repeats, f"{config}/{cell_name}")
    peers = {k: v for k, v in medians.items() if not k.startswith("rnnjax")}
    fastest = min(peers, key=peers.get)
    return {"config": config, "cell": cell_name, "shape": shape, "median_s": medians, "fastest_peer": fastest,
            "ratio": medians["rnnjax"] / peers[fastest],
            "gflops": matmul_flops(cell_name, *shape) / medians["rnnjax"] / 1e9,
            "compile_s": {k: v.compile_s for k, v in variants.items() if v.compile_s is not None},
            "first_loss": first}


def run(configs, cells, repeats, quick=False):
    torch_threads = None
    if torch_available():
        import torch

        torch.set_num_threads(2)
        torch_threads = torch.get_num_threads()
    peak = matmul_peak(512 if quick else 2048)  # the quick run's figure is only a smoke test
    best_peak = max(peak.values())
    print(f"{time.strftime('%Y-%m-%d')}; jax {jax.__version__} on {jax.devices()[0].device_kind} ({os.cpu_count()} cores); "
          f"allocator: {allocator()}; PyTorch threads: {torch_threads}")
    n = 512 if quick else 2048
    print(f"matmul peak ({n} x {n} float32): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()))
    print(f"median of {repeats} steps after a warm-up step, interleaved\n")
    print("| config | cell | rnnjax | rnnjax autodiff | Flax | PyTorch | rnnjax / fastest peer | rnnjax GFLOP/s (% of peak) "
          "| compile: rnnjax / autodiff / Flax | allocator |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for config in configs:
        for cell in cells:
            row = bench_one(config, cell, (QUICK_CONFIGS if quick else CONFIGS)[config], repeats)
            rows.append(row)
            m, c = row["median_s"], row["compile_s"]
            ms = [f"{m[k] * 1e3:.1f} ms" if k in m else "not installed" for k in ("rnnjax", "rnnjax autodiff", "Flax", "PyTorch")]
            print(f"| {config} {row['shape']} | {cell} | " + " | ".join(ms) + f" | **{row['ratio']:.2f}** ({row['fastest_peer']}) | "
                  f"{row['gflops']:.0f} ({100 * row['gflops'] / best_peak:.0f}%) | "
                  f"{c['rnnjax']:.1f} / {c['rnnjax autodiff']:.1f} / {c['Flax']:.1f} s | {allocator()} |", flush=True)
    return {"peak": peak, "rows": rows}


# ---- compile time and memory against sequence length ----

def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def memory_row(length, batch, inputs, hidden, remat, fast=True):
    """Compile time and XLA's buffer sizes for one LSTM training step at sequence length ``length``."""
    cell = rnnjax.lstm(hidden)
    params = {"cell": cell.init(jax.random.key(0), inputs), "w_out": jnp.zeros((hidden, inputs)), "b_out": jnp.zeros(inputs)}
    xs = jax.ShapeDtypeStruct((batch, length, inputs), jnp.float32)

    def loss_fn(params, xs, targets):
        ys = jax.vmap(lambda x: rnnjax.unroll(cell, params["cell"], x, fast=fast, remat=remat)[1])(xs)
        return jnp.mean((ys @ params["w_out"] + params["b_out"][None, None] - targets) ** 2)

    opt = optimizer()

    def step(params, opt_state, xs, targets):
        loss, grads = jax.value_and_grad(loss_fn)(params, xs, targets)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    start = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt.init(params), xs, xs).compile()
    compile_s = time.perf_counter() - start
    mem = compiled.memory_analysis()
    total = mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes - mem.alias_size_in_bytes
    return {"T": length, "remat": remat, "compile_s": compile_s, "temp_bytes": mem.temp_size_in_bytes, "total_bytes": total,
            "compiled": compiled, "params": params, "opt": opt}


_RSS_CHILD = """
import resource, sys, time, jax, jax.numpy as jnp, numpy as np
from experiments import benchmark
T, B, D, H, remat = (int(a) if a != "None" else None for a in sys.argv[1:6])
row = benchmark.memory_row(T, B, D, H, remat)
params, opt = row["params"], row["opt"]
xs = jnp.asarray(np.random.default_rng(0).standard_normal((B, T, D), np.float32))
state = (params, opt.init(params))
t = time.perf_counter()
out = jax.block_until_ready(row["compiled"](*state, xs, xs))
print(time.perf_counter() - t, float(out[2]), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def measured_step(length, batch, inputs, hidden, remat):
    """Runs one training step in a fresh process: (step seconds, loss, peak resident bytes of the process)."""
    args = [str(a) for a in (length, batch, inputs, hidden, remat)]
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, *args], capture_output=True, text=True,
                         cwd=pathlib.Path(__file__).parents[1], check=False)
    if out.returncode:
        raise RuntimeError(f"the measured step failed:\n{out.stderr[-3000:]}")
    seconds, loss, rss = out.stdout.split()[-3:]
    return float(seconds), float(loss), int(rss)


def memory(lengths=(100, 300, 1000, 3000, 10000), batch=32, inputs=32, hidden=512, run_longest=True):
    print(f"LSTM({hidden}), batch {batch}, input {inputs}: one training step (default path; remat = chunks of "
          f"~sqrt(T) steps, which run the plain path); XLA's own buffer sizes from the compiled program; allocator: {allocator()}\n")
    print("| T | compile (s) | temporaries | all buffers | compile, remat (s) | temporaries, remat | all buffers, remat |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for length in lengths:
        remat = max(1, round(length**0.5))
        plain, rem = memory_row(length, batch, inputs, hidden, None), memory_row(length, batch, inputs, hidden, remat)
        rows.append((plain, rem))
        print(f"| {length} | {plain['compile_s']:.2f} | {mib(plain['temp_bytes'])} | {mib(plain['total_bytes'])} | "
              f"{rem['compile_s']:.2f} (remat={remat}) | {mib(rem['temp_bytes'])} | {mib(rem['total_bytes'])} |", flush=True)
    measured = None
    if run_longest:
        length = lengths[-1]
        remat = max(1, round(length**0.5))
        seconds, loss, rss = measured_step(length, batch, inputs, hidden, remat)
        measured = {"T": length, "remat": remat, "seconds": seconds, "loss": loss, "rss_bytes": rss}
        print(f"\nmeasured: one step at T = {length} with remat={remat}: {seconds:.2f} s, loss {loss:.4f}, peak resident "
              f"memory of the whole process {mib(rss)}")
    return {"rows": rows, "measured": measured}


# ---- linear recurrences: parallel scan against sequential unroll ----


def linear(lengths=(128, 512, 2048, 8192), batch=16, inputs=32, hidden=128, repeats=5):
    """Training-step time of minGRU, minLSTM and the LRU unrolled in parallel (``lax.associative_scan``,
    ``parallel=True``) and sequentially (``lax.scan`` of ``step``, ``parallel=False``), and of the LSTM (rnnjax's default path),
    against T; the same step as the main table. Interleaved per T, order rotating, median of ``repeats``."""
    print(f"{time.strftime('%Y-%m-%d')}; jax {jax.__version__} on {jax.devices()[0].device_kind} ({os.cpu_count()} cores); "
          f"allocator: {allocator()}; batch {batch}, inputs {inputs}, hidden {hidden}; median of {repeats} steps\n")
    head = [f"{c} {m}" for c in LINEAR for m in ("parallel", "sequential")] + ["LSTM"]
    print("| T | " + " | ".join(head) + " | " + " | ".join(f"{c} seq / par" for c in LINEAR) + " | LSTM / minGRU parallel | compile: minGRU par / seq |")
    print("|---|" + "---|" * (len(head) + len(LINEAR) + 2))
    rows = []
    for length in lengths:
        xs, targets = data(batch, length, inputs)
        variants = {f"{c} {m}": rnnjax_variant(c, xs, targets, hidden, fast=True, parallel=(m == "parallel"))
                    for c in LINEAR for m in ("parallel", "sequential")}
        variants["LSTM"] = rnnjax_variant("lstm", xs, targets, hidden, fast=True)
        _, m = interleaved(variants, repeats, f"T = {length}")
        rows.append({"length": length, "median_s": m, "compile_s": {k: v.compile_s for k, v in variants.items()}})
        print(f"| {length} | " + " | ".join(f"{m[h] * 1e3:.1f} ms" for h in head) + " | "
              + " | ".join(f"**{m[f'{c} sequential'] / m[f'{c} parallel']:.1f}x**" for c in LINEAR)
              + f" | {m['LSTM'] / m['min_gru parallel']:.1f}x | {variants['min_gru parallel'].compile_s:.1f} / "
              f"{variants['min_gru sequential'].compile_s:.1f} s |", flush=True)
    return rows


# ---- where the time goes ----

def _median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def profile(config="S", cell_name="lstm", repeats=10, quick=False):
    """Splits one training step into parts, each timed alone for rnnjax (XLA) and PyTorch: the whole step,
    the forward pass alone, the recurrent products alone (``h @ W_h`` at every step with the step's
    nonlinearity between, so each product waits for the previous one, as in the real recurrence) and
    the input projection (one ``[B T, D] x [D, G H]`` product)."""
    import torch

    torch.set_num_threads(2)
    batch, length, inputs, hidden = (QUICK_CONFIGS if quick else CONFIGS)[config]
    G = GATES[cell_name]
    xs, targets = data(batch, length, inputs)
    ours, theirs = rnnjax_variant(cell_name, xs, targets, hidden, fast=True), TorchVariant(cell_name, xs, targets, hidden)
    rows = [("training step", _median_time(ours, repeats), _median_time(theirs, repeats), matmul_flops(cell_name, batch, length, inputs, hidden))]

    params = ours.state[0]
    cell = CELLS[cell_name](hidden, None)
    fwd = jax.jit(lambda p, xs: jnp.mean(jax.vmap(lambda x: rnnjax.unroll(cell, p["cell"], x)[1])(xs) @ p["w_out"]))
    jxs = jnp.asarray(xs)
    tx = torch.from_numpy(xs)

    def torch_forward():
        with torch.no_grad():
            theirs.out(theirs.rnn(tx)[0]).mean()

    rows.append(("forward pass only", _median_time(lambda: jax.block_until_ready(fwd(params, jxs)), repeats),
                 _median_time(torch_forward, repeats), matmul_flops(cell_name, batch, length, inputs, hidden) / 3))

    w_h = jax.random.normal(jax.random.key(1), (hidden, G * hidden)) / np.sqrt(hidden)
    recurrence = jax.jit(lambda w, h0: jax.lax.scan(lambda h, _: (jnp.tanh((h @ w)[:, :hidden]), None), h0, None, length)[0])
    h0 = jnp.zeros((batch, hidden))
    tw, th = torch.from_numpy(np.array(w_h)), torch.zeros(batch, hidden)

    def torch_recurrence():
        h = th
        for _ in range(length):
            h = torch.tanh(torch.mm(h, tw)[:, :hidden])
        return h

    rows.append((f"recurrent products alone ({length} x [{batch}, {hidden}] x [{hidden}, {G * hidden}])",
                 _median_time(lambda: jax.block_until_ready(recurrence(w_h, h0)), repeats), _median_time(torch_recurrence, repeats),
                 2.0 * length * batch * hidden * G * hidden))
    w_x = jax.random.normal(jax.random.key(2), (inputs, G * hidden))
    proj = jax.jit(lambda x, w: x.reshape(-1, inputs) @ w)
    tw_x = torch.from_numpy(np.array(w_x))
    rows.append((f"input projection ([{batch * length}, {inputs}] x [{inputs}, {G * hidden}])",
                 _median_time(lambda: jax.block_until_ready(proj(jxs, w_x)), repeats),
                 _median_time(lambda: torch.mm(tx.reshape(-1, inputs), tw_x), repeats), 2.0 * batch * length * inputs * G * hidden))
    print(f"{config} {(batch, length, inputs, hidden)}, {cell_name}; median of {repeats}; allocator: {allocator()}\n")
    print("| part | rnnjax (XLA) | PyTorch | rnnjax / PyTorch | XLA GFLOP/s | PyTorch GFLOP/s |")
    print("|---|---|---|---|---|---|")
    for name, a, b, flops in rows:
        print(f"| {name} | {a * 1e3:.2f} ms | {b * 1e3:.2f} ms | {a / b:.2f} | {flops / a / 1e9:.0f} | {flops / b / 1e9:.0f} |")
    return rows


def _names(text: str, table, what: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    bad = [c for c in names if c not in table]
    if bad or not names:
        raise ValueError(f"unknown {what} {bad or '(none given)'}; expected some of {sorted(table)}, comma-separated")
    return names


@dataclasses.dataclass(frozen=True)
class Config(_common.Checked):
    configs: str = ""  # comma-separated names from CONFIGS (QUICK_CONFIGS with tiny); "" is all of them
    cells: str = "lstm,gru,rnn"
    repeats: int = 10
    tiny: bool = False  # the tiny shapes of QUICK_CONFIGS: a smoke run

    def __post_init__(self):
        super().__post_init__()
        _names(self.configs or ",".join(self.table), self.table, "configs")
        _names(self.cells, GATES, "cells")

    @property
    def table(self):
        return QUICK_CONFIGS if self.tiny else CONFIGS


QUICK = dict(tiny=True, repeats=3)


def _main_table(cfg: Config, out=None):
    del out  # the benchmark prints its tables; it keeps no run folder
    configs = _names(cfg.configs or ",".join(cfg.table), cfg.table, "configs")
    return run(configs, _names(cfg.cells, GATES, "cells"), cfg.repeats, quick=cfg.tiny)


def _profile_arguments(parser):
    parser.add_argument("--config", choices=list(CONFIGS), default="S", help="the shape (default: S)")
    parser.add_argument("--cell", choices=list(GATES), default="lstm", help="the cell (default: lstm)")
    parser.add_argument("--repeats", type=_cli.positive_int, default=10, help="timed repeats (default: 10)")
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny shapes")


def _linear_arguments(parser):
    def lengths(raw):
        values = [_cli.positive_int(v) for v in raw.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated lengths >= 1, got {raw!r}")
        return tuple(values)

    parser.add_argument("--lengths", type=lengths, default=(128, 512, 2048, 8192), help="T values (default: 128,512,2048,8192)")
    for name, default in (("batch", 16), ("inputs", 32), ("hidden", 128), ("repeats", 5)):
        parser.add_argument(f"--{name}", type=_cli.positive_int, default=default, help=f"(default: {default})")
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny shapes")


def _memory_arguments(parser):
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny shapes")


def _linear(args):
    if args.quick:
        return linear(lengths=(16, 64), batch=2, inputs=3, hidden=8, repeats=2)
    return linear(args.lengths, batch=args.batch, inputs=args.inputs, hidden=args.hidden, repeats=args.repeats)


COMMANDS = (
    _cli.Command("profile", "split one training step into parts, XLA against PyTorch", _profile_arguments,
                 lambda a: profile(a.config, a.cell, a.repeats, a.quick)),
    _cli.Command("linear", "minGRU, minLSTM, LRU: parallel against sequential, and the LSTM, against T",
                 _linear_arguments, _linear),
    _cli.Command("memory", "compile time and memory against T, with and without remat", _memory_arguments,
                 lambda a: memory(lengths=(20, 80), batch=2, inputs=3, hidden=8) if a.quick else memory()),
)


def main(argv=None):
    return _cli.main(Config, QUICK, _main_table, argv, commands=COMMANDS, folder=False)


if __name__ == "__main__":
    main()
