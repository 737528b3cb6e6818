"""LAPACK work goes one matrix at a time (``rnnjax._linalg``), so vmapped inits and diagnostics cannot
deadlock XLA's CPU thread pool; and the results are the ones the batched calls give."""

import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax import _linalg, diagnostics, initializers


def lapack_batch_dims(fn, *args):
    """The number of batch dimensions of every LAPACK call in ``jit(fn)``'s lowering."""
    lines = [line for line in jax.jit(fn).lower(*args).as_text().splitlines() if "@lapack_" in line]
    return [int(re.search(r'num_batch_dims = "(\d+)"', line).group(1)) for line in lines]


@pytest.mark.parametrize("shape", [(6, 6), (3, 7), (7, 3)])
def test_orthogonal_init_is_jax_s_draw(shape):
    key = jax.random.key(4)
    np.testing.assert_array_equal(initializers.orthogonal(0.5)(key, shape),
                                  0.5 * jax.nn.initializers.orthogonal()(key, shape))


def test_orthogonal_init_needs_a_matrix_shape():
    with pytest.raises(ValueError, match="2-D"):
        initializers.orthogonal()(jax.random.key(0), (2, 3, 4))


def test_vmapped_inits_send_single_matrices_to_lapack():
    cell = rnnjax.lstm(8)
    keys = jax.random.split(jax.random.key(0), 6).reshape(2, 3)
    dims = lapack_batch_dims(jax.vmap(jax.vmap(lambda k: cell.init(k, 3))), keys)
    assert dims and set(dims) == {0}, dims
    batched = jax.vmap(jax.vmap(lambda k: cell.init(k, 3)))(keys)
    alone = cell.init(keys[1, 2], 3)
    jax.tree.map(lambda b, a: np.testing.assert_array_equal(b[1, 2], a), batched, alone)


def test_batched_helpers_equal_the_batched_lapack_calls():
    a = jax.random.normal(jax.random.key(1), (2, 3, 5, 5))
    q, r = _linalg.qr(a)
    q0, r0 = jnp.linalg.qr(a)
    np.testing.assert_allclose(q, q0, atol=1e-6)
    np.testing.assert_allclose(r, r0, atol=1e-6)
    np.testing.assert_allclose(_linalg.svdvals(a), jnp.linalg.svd(a, compute_uv=False), rtol=1e-5)
    np.testing.assert_allclose(jax.vmap(_linalg.eigvals)(a[0]), jnp.linalg.eigvals(a[0]), rtol=1e-5, atol=1e-6)
    w = jax.random.normal(jax.random.key(2), (4, 5, 20))  # four [5, 4*5] recurrent matrices
    assert lapack_batch_dims(jnp.linalg.svd, w) == [1]  # what the check below would see without _linalg
    dims = lapack_batch_dims(jax.vmap(diagnostics.recurrent_spectrum), w)
    assert dims and set(dims) == {0}, dims


def test_a_vmapped_sweep_of_inits_does_not_hang():
    # Two batched QRs in one program deadlocked jaxlib 0.10.2's LAPACK on a 2-core machine (both pool
    # threads waiting on each other) within a few calls; a subprocess, so a regression fails on time.
    code = textwrap.dedent("""
        import jax, rnnjax
        init = jax.jit(jax.vmap(lambda k: (rnnjax.lstm(128).init(k, 4), rnnjax.gru(128).init(k, 4))))
        for i in range(10):
            jax.block_until_ready(init(jax.random.split(jax.random.key(i), 8)))
        print("done")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0 and "done" in out.stdout, out.stderr[-2000:]
