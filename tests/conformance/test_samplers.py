"""Every public ``jax.random`` sampler on a keyfan key equals JAX's own Threefry, bit for bit.

For each sampler and stream: the eager call, a jitted call at every dtype the sampler takes
(64-bit ones when x64 or ``jax_explicit_x64_dtypes="allow"`` permits them), ``vmap`` over split
keys, and 0-sized shapes, each against JAX's ``threefry2x32`` key under the matching
``jax_threefry_partitionable`` value. An error must be the same error on both sides.
``jax.random.poisson`` is the one exception (JAX refuses non-built-in implementations):
``kf.poisson`` stands in for it, tested in ``test_poisson.py``.

The samplers built on JAX's gamma primitive (``GAMMA_FAMILY``) are equal to within a few ulps,
not bitwise: JAX's ``_gamma_impl`` (jax/_src/random/core.py) vmaps its per-element rejection
loop only for its built-in ``threefry2x32`` implementation and runs it under ``lax.map`` for
every other, and XLA's vectorised and scalar ``log``/``exp`` differ in the last bits. The keys
and uniform bits they consume are bitwise JAX's (the other tests show it).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from keyfan._jaxinternals import JAX_VERSION
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
GAMMA_FAMILY = {"gamma", "loggamma", "beta", "dirichlet", "chisquare", "f", "t", "generalized_normal", "ball"}
MAX_ULP = 8  # measured at most 4 (f: a ratio of two gamma draws, each a few ulps off)
CLOSE_BEFORE_JAX_0_7 = {"laplace"}
"""Equal to within MAX_ULP (measured: 1 ulp, on "threefry-legacy") on JAX 0.5 and 0.6, whose XLA
compiles its log1p differently for the two programs; bitwise from JAX 0.7."""
EXPENSIVE = GAMMA_FAMILY | {"binomial", "multinomial", "orthogonal", "multivariate_normal", "lognormal"}
"""Samplers with a rejection loop or a decomposition (seconds to compile each): drawn at their
default dtype, eager and jitted."""
CORE = {"bits", "uniform", "normal", "randint", "bernoulli", "categorical", "permutation", "choice", "gumbel",
        "truncated_normal", "exponential", "rademacher"}
"""The samplers the flag-matrix subprocesses (``test_flags.py``) rerun: every bits width and
every bits-to-value path (floats of each width, integers, booleans, shuffles)."""
QUICK = os.environ.get("KEYFAN_CONFORMANCE_QUICK") == "1"


def _dtypes(dtypes):
    return [None] + [d for d in dtypes if allow_x64_dtypes() or ("64" not in d and d != "complex128")]


def _all_modes(draw, dtypes):
    """One jitted program: the draw at every dtype, and the default draw vmapped over 3 keys."""
    def program(key):
        out = {str(dt): draw(key, dt) for dt in dtypes}
        out["vmap"] = jax.vmap(lambda k: draw(k, None))(jax.random.split(key, 3))
        return out
    return jax.jit(program)


SWEPT_LATER = sorted(set(SAMPLERS) - JAX_ONLY - EXPENSIVE - CORE)
"""JAX's samplers that are arithmetic over the uniform bits a core sampler reads: checked at every
dtype, their default (``None``) first, eager, jitted and vmapped (``test_sampler_dtypes_equal_jax``),
in the slow tier and the compatibility subset. (``test_sampler_equals_jax`` leaves them out: its
check at the default dtype alone is part of that one.)"""


LEGACY_DEFAULT = {"bits", "normal"}
"""The core samplers the default tier checks on the legacy stream: every raw bits width and a float.
The legacy stream differs from "threefry" only in how raw bits come from a key; the other core
samplers read them through the same bits-to-value paths (checked on "threefry"), and on the
legacy stream in the slow tier and in ``tests/test_sample.py::test_many_seeds_equal_canonical``."""


BUILT_ON_A_DEFAULT_CASE = (GAMMA_FAMILY - {"gamma"}) | {"multinomial"}
"""JAX's samplers that are JAX's own arithmetic over another sampler checked in the default tier
(``gamma``; ``binomial`` for ``multinomial``), at seconds of compile each: the slow tier, on
``"threefry"`` only. On the legacy stream they would repeat the same JAX code over legacy
``gamma``/``binomial`` draws (checked there, slow tier) at about 10 CPU-s each."""


def _cases():
    """Every sampler on both streams. The default tier keeps the core samplers on ``"threefry"``
    (they read every bits width through every bits-to-value path the others use), ``LEGACY_DEFAULT``
    on the legacy stream and, on ``"threefry"``, the samplers with a loop or decomposition of their
    own (``EXPENSIVE``, but those built on a default case); the legacy stream's other samplers run in
    the slow tier and in the compatibility subset, JAX's other samplers (``SWEPT_LATER``: JAX's
    arithmetic over the same uniform bits) in ``test_sampler_dtypes_equal_jax`` there."""
    for name in sorted(set(SAMPLERS) - JAX_ONLY - set(SWEPT_LATER)):
        for stream in STREAMS:
            if stream != "threefry" and name in BUILT_ON_A_DEFAULT_CASE:
                continue  # JAX's arithmetic over legacy gamma/binomial draws, both checked (slow tier)
            slow = name in BUILT_ON_A_DEFAULT_CASE or (stream != "threefry" and name not in LEGACY_DEFAULT)
            yield pytest.param(name, stream, marks=[pytest.mark.slow] if slow else [], id=f"{name}-{stream}")


@pytest.mark.bitwise
@pytest.mark.parametrize(("name", "stream"), list(_cases()))
def test_sampler_equals_jax(name, stream):
    """Eager, and one jitted program: every dtype (core samplers) or the default dtype (the
    others), plus the default draw vmapped over split keys."""
    if QUICK and name not in CORE:
        pytest.skip("checked under the default flags; the flag matrix reruns the core samplers")
    draw, dtypes = SAMPLERS[name]
    _check_sampler(name, stream, draw, _dtypes(dtypes) if name in CORE else [None])


@pytest.mark.slow
@pytest.mark.bitwise
@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("name", SWEPT_LATER)
def test_sampler_dtypes_equal_jax(name, stream):
    """The non-core samplers at every dtype they take (the default tier checks their default)."""
    if QUICK:
        pytest.skip("checked under the default flags")
    draw, dtypes = SAMPLERS[name]
    _check_sampler(name, stream, draw, _dtypes(dtypes))


def _check_sampler(name, stream, draw, dtypes):
    ours, theirs = keyfan_key(SEED, stream), jax_key(SEED)
    close = name in GAMMA_FAMILY or (name in CLOSE_BEFORE_JAX_0_7 and JAX_VERSION < (0, 7, 0))
    compare = assert_close_ulps if close else assert_same_outcome
    compare(outcome(draw, ours, None), reference(stream, outcome, draw, theirs, None), f"{name} eager on {stream!r}")
    together = outcome(_all_modes(draw, dtypes), ours)
    if together[0] == "ok":
        compare(together, reference(stream, outcome, _all_modes(draw, dtypes), theirs),
                f"{name} jit at dtypes {dtypes} and vmap on {stream!r}")
        return
    for dt in dtypes:  # one dtype raised: find which, and check JAX raises there too
        jitted = jax.jit(lambda k, dt=dt: draw(k, dt))
        compare(outcome(jitted, ours), reference(stream, outcome, jitted, theirs),
                f"{name} jit dtype={dt} on {stream!r}")


def assert_close_ulps(ours, theirs, what: str) -> None:
    """Same outcome, shapes and dtypes, values within ``MAX_ULP`` units in the last place."""
    if ours[0] == "error" or theirs[0] == "error":
        return assert_same_outcome(ours, theirs, what)
    for a, b in zip(ours[1], theirs[1], strict=True):
        assert (a.shape, a.dtype) == (b.shape, b.dtype), what
        eps = float(jnp.finfo(a.dtype).eps)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        ulp = eps * np.maximum(np.abs(b64), float(jnp.finfo(a.dtype).tiny) / eps)
        np.testing.assert_array_less(np.abs(a64 - b64), MAX_ULP * ulp + 1e-300, err_msg=what)


@pytest.mark.bitwise
@pytest.mark.parametrize("stream", [pytest.param("threefry", id="threefry"),
                                    pytest.param("threefry-legacy", id="threefry-legacy", marks=pytest.mark.slow)])
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
