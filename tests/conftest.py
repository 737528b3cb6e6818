"""Strict JAX settings for the whole suite (after Equinox's tests/conftest.py).

Rank promotion raises, so a missing batch axis cannot hide behind broadcasting.
"""

import gc

import jax
import pytest

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
