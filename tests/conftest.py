"""Strict JAX settings for the whole suite (after Equinox's tests/conftest.py).

Rank promotion raises, so a missing batch axis cannot hide behind broadcasting.
"""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)
