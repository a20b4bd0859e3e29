"""``jax.random.poisson`` on a keyfan key: JAX refuses it; ``kf.poisson`` gives JAX's values.

JAX's ``poisson`` checks ``key_impl is threefry2x32.threefry_prng_impl`` and raises
``NotImplementedError`` for every other implementation, with no hook to route it elsewhere.
``kf.poisson`` runs JAX's algorithm on the key's stream and equals ``jax.random.poisson`` on
JAX's Threefry (matching ``jax_threefry_partitionable``), bit for bit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import keyfan as kf
from tests.conformance._support import (
    STREAMS,
    assert_same_outcome,
    jax_key,
    keyfan_key,
    outcome,
    reference,
    x64,
)
from tests.conftest import LEGACY_SLOW

LAMS = [0.0, 0.5, 3.0, 9.99, 10.0, 42.0, 1e4]  # Knuth below 10, rejection from 10 on


@pytest.mark.parametrize("stream", STREAMS)
def test_jax_poisson_refuses_keyfan_keys(stream):
    with pytest.raises(NotImplementedError, match="only implemented for the threefry2x32"):
        jax.random.poisson(kf.key(0, stream), 3.0)


@pytest.mark.bitwise
@pytest.mark.parametrize("stream", LEGACY_SLOW)  # legacy raw bits: test_samplers.LEGACY_DEFAULT
def test_kf_poisson_equals_jax_poisson(stream):
    dtypes = [None, "int8"] + (["int64"] if x64() else [])  # kf samplers take 64-bit dtypes under x64 only
    lam = jnp.asarray(LAMS)
    seed = 1701
    ours, theirs = keyfan_key(seed, stream), jax_key(seed)
    for dt in dtypes:
        kf_draw = jax.jit(lambda k, dt=dt: kf.poisson(k, batch=(), shape=(len(LAMS),), dtype=dt, lam=lam))
        jax_draw = jax.jit(lambda k, dt=dt: jax.random.poisson(k, lam, (len(LAMS),), dt or int))  # None: JAX >= 0.7
        assert_same_outcome(outcome(kf_draw, ours), reference(stream, outcome, jax_draw, theirs),
                            f"poisson dtype={dt} seed={seed} on {stream!r}")
    # eager, a shape that broadcasts lam, and per-example rates in a batch (the canonical vmap)
    assert_same_outcome(outcome(lambda k: kf.poisson(k, batch=(), shape=(2, 3), lam=4.0), ours),
                        reference(stream, outcome, lambda k: jax.random.poisson(k, 4.0, (2, 3)), theirs), "eager")
    rates = jnp.array([[1.0], [5.0], [50.0], [0.0]])
    canonical = jax.jit(jax.vmap(lambda k, r: jax.random.poisson(k, r, (2,))))
    assert_same_outcome(outcome(lambda k: kf.poisson(k, batch=(4,), shape=(2,), lam=rates), ours),
                        reference(stream, outcome, lambda k: canonical(jax.random.split(k, 4), rates), theirs),
                        "batch")


def test_kf_poisson_checks_its_arguments():
    with pytest.raises(ValueError, match="lam"):
        kf.poisson(kf.key(0), batch=(), shape=(3,), lam=-1.0)
    with pytest.raises(ValueError, match="lam"):
        kf.poisson(kf.key(0), batch=(2,), shape=(3,), lam=jnp.ones(4))
    with pytest.raises(TypeError, match="dtype"):
        kf.poisson(kf.key(0), batch=(), shape=(3,), dtype="float32", lam=1.0)
