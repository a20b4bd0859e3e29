"""Every public ``jax.random`` sampler on a keyfan key equals JAX's own Threefry, bit for bit.

For each sampler and stream: the eager call, a jitted call at every dtype the sampler takes
(64-bit ones when x64 or ``jax_explicit_x64_dtypes="allow"`` permits them), ``vmap`` over split
keys, and 0-sized shapes, each against JAX's ``threefry2x32`` key under the matching
``jax_threefry_partitionable`` value. An error must be the same error on both sides.
``jax.random.poisson`` is the one exception (JAX refuses non-built-in implementations):
``kf.poisson`` stands in for it, tested in ``test_poisson.py``.
"""

from __future__ import annotations

import jax
import pytest

from tests.conformance._support import (
    STREAMS,
    allow_x64_dtypes,
    assert_same_outcome,
    jax_key,
    keyfan_key,
    outcome,
    reference,
)
from tests.conformance.samplers import KEY_FUNCTIONS, SAMPLERS

SEED = 1701
JAX_ONLY = {"poisson"}


def _dtypes(dtypes):
    return [None] + [d for d in dtypes if allow_x64_dtypes() or "64" not in d and d != "complex128"]


def _all_modes(draw, dtypes):
    """One jitted program: the draw at every dtype, and the default draw vmapped over 3 keys."""
    def program(key):
        out = {str(dt): draw(key, dt) for dt in dtypes}
        out["vmap"] = jax.vmap(lambda k: draw(k, None))(jax.random.split(key, 3))
        return out
    return jax.jit(program)


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("name", sorted(set(SAMPLERS) - JAX_ONLY))
def test_sampler_equals_jax(name, stream):
    draw, dtypes = SAMPLERS[name]
    dtypes = _dtypes(dtypes)
    ours, theirs = keyfan_key(SEED, stream), jax_key(SEED)
    assert_same_outcome(outcome(draw, ours, None), reference(stream, outcome, draw, theirs, None),
                        f"{name} eager on {stream!r}")
    together = outcome(_all_modes(draw, dtypes), ours)
    if together[0] == "ok":
        assert_same_outcome(together, reference(stream, outcome, _all_modes(draw, dtypes), theirs),
                            f"{name} jit at dtypes {dtypes} and vmap on {stream!r}")
        return
    for dt in dtypes:  # one dtype raised: find which, and check JAX raises there too
        jitted = jax.jit(lambda k, dt=dt: draw(k, dt))
        assert_same_outcome(outcome(jitted, ours), reference(stream, outcome, jitted, theirs),
                            f"{name} jit dtype={dt} on {stream!r}")


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 5)], ids=str)
def test_zero_sized_draws(stream, shape):
    def draws(key):
        return {
            "bits8": jax.random.bits(key, shape, "uint8"),
            "bits": jax.random.bits(key, shape),
            "normal": jax.random.normal(key, shape),
            "uniform": jax.random.uniform(key, shape, "bfloat16"),
            "randint": jax.random.randint(key, shape, 0, 9),
            "split": jax.random.split(key, shape),
            "bernoulli": jax.random.bernoulli(key, 0.5, shape),
            "gamma": jax.random.gamma(key, 2.0, shape),
            "permutation": jax.random.permutation(key, shape[0]),
        }
    ours, theirs = keyfan_key(SEED, stream), jax_key(SEED)
    for mode, fn in (("eager", draws), ("jit", jax.jit(draws))):
        assert_same_outcome(outcome(fn, ours), reference(stream, outcome, fn, theirs), f"{mode} {shape} on {stream!r}")


def test_every_sampler_is_covered():
    public = {n for n in dir(jax.random) if not n.startswith("_") and callable(getattr(jax.random, n))}
    missing = public - set(SAMPLERS) - KEY_FUNCTIONS
    assert not missing, f"jax.random functions not in the conformance suite: {sorted(missing)}"
