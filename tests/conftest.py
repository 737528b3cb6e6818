"""Strict JAX settings for the whole suite (after Equinox's tests/conftest.py).

Rank promotion raises, so a missing batch axis cannot hide behind broadcasting.
"""

import gc
import os
import shutil
import tempfile

# One persistent compilation cache for the whole run, shared by the xdist workers (they inherit the
# controller's environment) and by the experiments the tests start as subprocesses. Why: compiling was most
# of the suite's time, and the same programs come back in every test file (`jax.clear_caches()` below drops
# the in-memory ones), in both workers and in every subprocess; JAX keys each entry on the program, the
# compile options and the versions, so a hit is the same executable. A cache the caller set is kept as is.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="rnnjax-tests-jax-cache-")
    os.environ["RNNJAX_TESTS_OWN_CACHE"] = str(os.getpid())  # the process that made it removes it
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402  (after the environment above: JAX reads it on import)
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drops every compiled program after each test file. In one process the suite compiles thousands of
    programs; kept to the end they grew its memory by gigabytes, and XLA's compiler crashed (SIGSEGV or
    abort in backend_compile) late in CI runs."""
    yield
    jax.clear_caches()
    gc.collect()


def pytest_unconfigure(config):
    if os.environ.get("RNNJAX_TESTS_OWN_CACHE") == str(os.getpid()):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
