"""Portable float draws (``portable=True``): an executable specification, run in NumPy.

Each portable draw must equal, bit for bit, the same ``keyfan._portable`` functions run in
NumPy on the draw's raw words (``kf.bits``, identical on every machine). NumPy computes each
IEEE operation on its own and never fuses a multiply with an add, so the reference is the value
any IEEE machine computes for that sequence of operations; the tests/isa matrix reruns these
tests under every CPU instruction set. The functions' accuracy is measured against
``scipy.special`` over every input keyfan gives them (the whole 2**23 grid for ``normal``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

import keyfan as kf
from keyfan import _portable as P
from tests.conftest import LEGACY_SLOW, assert_bitwise_equal

SEED = 2024
BATCH, SHAPE = (37, 3), (5,)
SIZE = {"batch": BATCH, "shape": SHAPE}
F32 = np.float32


def words(key, batch=BATCH, shape=SHAPE, path=None):
    """The raw uint32 words behind a per-example draw (below ``path``'s split key if given)."""
    if path is None:
        return np.asarray(kf.bits(key, batch=batch, shape=shape))
    f = lambda k: jax.random.bits(jax.random.split(k)[path], shape)  # noqa: E731
    for _ in batch:
        f = jax.vmap(f)
    return np.asarray(jax.jit(f)(kf.fan_out(key, batch)))


LO = np.linspace(-3.0, 1.0, BATCH[0] * BATCH[1], dtype=F32).reshape(*BATCH, 1)
HI = LO + F32(2.5)

# name: (portable draw, its NumPy reference from the words)
CASES = {
    "uniform": (lambda k: kf.uniform(k, **SIZE, portable=True),
                lambda w: P.uniform(w, F32(0), F32(1))),
    "uniform_bounds": (lambda k: kf.uniform(k, **SIZE, minval=LO, maxval=HI, portable=True),
                       lambda w: P.uniform(w, LO, HI)),
    "normal": (lambda k: kf.normal(k, **SIZE, portable=True), P.normal),
    "truncated_normal": (lambda k: kf.truncated_normal(k, **SIZE, lower=LO, upper=HI, portable=True),
                         lambda w: P.truncated_normal(w, *P.truncation_bounds(LO, HI))),
    "truncated_normal_infinite": (
        lambda k: kf.truncated_normal(k, **SIZE, lower=-np.inf, upper=0.5, portable=True),
        lambda w: P.truncated_normal(w, *P.truncation_bounds(F32(-np.inf), F32(0.5)))),
    "truncated_normal_tail": (lambda k: kf.truncated_normal(k, **SIZE, lower=3.0, upper=np.inf, portable=True),
                              lambda w: P.truncated_normal(w, *P.truncation_bounds(F32(3.0), F32(np.inf)))),
    "gumbel": (lambda k: kf.gumbel(k, **SIZE, portable=True), P.gumbel),
    "normal_bfloat16": (lambda k: kf.normal(k, **SIZE, dtype=jnp.bfloat16, portable=True),
                        lambda w: P.normal(w).astype(jnp.bfloat16)),
    "uniform_float16": (lambda k: kf.uniform(k, **SIZE, dtype=jnp.float16, minval=-1.0, maxval=3.0, portable=True),
                        lambda w: P.uniform(w, F32(-1), F32(3)).astype(np.float16)),
}


LEGACY_DEFAULT = {"normal"}
"""The portable draws the default tier checks on the legacy stream as well: the portable mode reads
the same raw words on both streams (``words``), so one draw shows the legacy words arrive; the
others on the legacy stream are the slow tier's."""


@pytest.mark.bitwise
@pytest.mark.parametrize("name,stream", [
    pytest.param(name, stream, id=f"{name}-{stream}",
                 marks=[pytest.mark.slow] if stream != "threefry" and name not in LEGACY_DEFAULT else [])
    for stream in ("threefry", "threefry-legacy") for name in CASES])
def test_portable_draw_equals_its_numpy_reference(name, stream):
    draw, reference = CASES[name]
    key = kf.key(SEED, stream)
    with np.errstate(invalid="ignore", over="ignore"):  # infinite bounds: NumPy warns, the values are exact
        expected = reference(words(key))
    assert_bitwise_equal(draw(key), expected)
    assert_bitwise_equal(jax.jit(draw)(key), expected)


@pytest.mark.bitwise
def test_portable_complex_normal_and_categorical_equal_their_references():
    key = kf.key(SEED)
    scale = np.sqrt(0.5)
    re, im = (P.scaled(P.normal(words(key, path=p)), scale) for p in (0, 1))
    assert_bitwise_equal(kf.normal(key, **SIZE, dtype=jnp.complex64, portable=True), jax.lax.complex(re, im))
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4], F32))
    gumbels = P.gumbel(words(key, shape=(7, 4)))
    expected = np.argmax(gumbels + logits, axis=-1).astype(np.int32)
    assert_bitwise_equal(kf.categorical(key, batch=BATCH, logits=logits, shape=(7,), portable=True), expected)
    half = jnp.asarray(logits, jnp.bfloat16)  # 16-bit logits: added in float32
    expected = np.argmax(gumbels + np.asarray(half, F32), axis=-1).astype(np.int32)
    assert_bitwise_equal(kf.categorical(key, batch=BATCH, logits=half, shape=(7,), portable=True), expected)


@pytest.mark.bitwise
@pytest.mark.parametrize("name", ["bits", "randint", "bernoulli", "bernoulli_high"])
def test_integer_and_boolean_samplers_are_the_same_with_portable(name):
    key = kf.key(SEED)
    draw = {"bits": lambda **kw: kf.bits(key, **SIZE, dtype="uint8", **kw),
            "randint": lambda **kw: kf.randint(key, **SIZE, minval=-5, maxval=1000, **kw),
            "bernoulli": lambda **kw: kf.bernoulli(key, **SIZE, p=0.3, **kw),
            "bernoulli_high": lambda **kw: kf.bernoulli(key, **SIZE, p=1e-8, mode="high", **kw)}[name]
    assert_bitwise_equal(draw(portable=True), draw())


def poisson_reference(key, lam, shape):
    """kf.poisson(portable=True) of one example, in NumPy: JAX's two loops on the same keys
    and words (``jax.random.split``/``bits``: integers), with the portable arithmetic."""
    from keyfan import _portable_poisson as PP
    lam = np.broadcast_to(np.asarray(lam, F32), shape)
    use_knuth = np.isnan(lam) | (lam < 10)
    lam_knuth, lam_rejection = np.where(use_knuth, lam, F32(0)), np.where(use_knuth, F32(1e5), lam)
    bits = lambda k: np.asarray(jax.random.bits(k, shape))  # noqa: E731
    k, log_prod, rng = np.zeros(shape, np.int32), np.zeros(shape, F32), key
    while (log_prod > -lam_knuth).any():
        rng, sub = jax.random.split(rng)
        k = np.where(log_prod > -lam_knuth, k + 1, k)
        log_prod = log_prod + PP.knuth_log_uniform(bits(sub))
    constants = PP.rejection_constants(lam_rejection)
    k_out, accepted, rng = np.full(shape, F32(-1)), np.zeros(shape, bool), key
    while (~accepted).any():
        rng, sub0, sub1 = jax.random.split(rng, 3)
        k_new, accept = PP.rejection_step(bits(sub0), bits(sub1), constants)
        k_out, accepted = np.where(accept, k_new, k_out), accepted | accept
    result = np.where(use_knuth, k - 1, k_out.astype(np.int32))
    return np.where(lam == 0, 0, result).astype(np.int32)


@pytest.mark.bitwise
@pytest.mark.parametrize("stream", LEGACY_SLOW)  # the legacy words: test_portable_draw_equals_its_numpy_reference
def test_portable_poisson_equals_its_numpy_reference(stream):
    key = kf.key(SEED, stream)
    lam = np.array([0.0, 0.5, 4.0, 9.9, 10.0, 30.0, 1e3, 1e5], F32)
    batched = np.asarray(kf.poisson(key, batch=(3,), shape=(8,), lam=lam, portable=True))
    with np.errstate(all="ignore"):  # the rejection loop's 1/0 at u = -0.5 (rejected) warns in NumPy
        for i in range(3):
            row_key = kf.at(key, i, batch_shape=(3,))
            expected = poisson_reference(row_key, lam, (8,))
            assert_bitwise_equal(batched[i], expected)
    assert_bitwise_equal(kf.poisson(row_key, batch=(), shape=(8,), lam=lam, portable=True), expected)


@pytest.mark.bitwise
def test_portable_uniform_on_0_1_is_jax_uniform():
    key = kf.key(SEED)
    assert_bitwise_equal(kf.uniform(key, **SIZE, portable=True), kf.uniform(key, **SIZE))


@pytest.mark.bitwise
@pytest.mark.parametrize("name", ["normal", "truncated_normal",
                                  # the same row-key and chunking paths again (their values: the numpy references)
                                  pytest.param("gumbel", marks=pytest.mark.slow),
                                  pytest.param("uniform_bounds", marks=pytest.mark.slow)])
def test_portable_rows_do_not_depend_on_batch_chunks_or_offset(name):
    draw = {"normal": lambda k, b, **kw: kf.normal(k, batch=b, shape=(6,), portable=True, **kw),
            "truncated_normal": lambda k, b, **kw: kf.truncated_normal(k, batch=b, shape=(6,), lower=-0.5, upper=1.5,
                                                                      portable=True, **kw),
            "gumbel": lambda k, b, **kw: kf.gumbel(k, batch=b, shape=(6,), portable=True, **kw),
            "uniform_bounds": lambda k, b, **kw: kf.uniform(k, batch=b, shape=(6,), minval=-2.0, maxval=7.0,
                                                            portable=True, **kw)}[name]
    key = kf.key(SEED)
    whole = np.asarray(draw(key, (1000,)))
    assert_bitwise_equal(draw(key, (1000,), chunk_size=96), whole)
    assert_bitwise_equal(draw(key, (300,), offset=500), whole[500:800])
    assert_bitwise_equal(draw(key, (10,)), whole[:10])
    for i in (0, 7, 999):
        assert_bitwise_equal(draw(kf.at(key, i), ()), whole[i])
    assert_bitwise_equal(jax.vmap(lambda k: draw(k, (4,)))(kf.fan_out(key, (3,))),
                         np.stack([np.asarray(draw(kf.at(key, i), (4,))) for i in range(3)]))


def test_portable_argument_errors():
    key = kf.key(0)
    with pytest.raises(TypeError, match="portable must be True or False, got str 'yes'"):
        kf.normal(key, batch=(2,), portable="yes")
    with pytest.raises(TypeError, match="portable must be True or False"):
        kf.bits(key, batch=(2,), portable=1)
    with jax.enable_x64(True):
        with pytest.raises(ValueError, match=r"portable=True draws float32, float16, bfloat16 only.*float64"):
            kf.uniform(key, batch=(2,), dtype=jnp.float64, portable=True)
        with pytest.raises(ValueError, match=r"portable=True draws float32, float16, bfloat16, complex64 only"):
            kf.normal(key, batch=(2,), dtype=jnp.complex128, portable=True)
    for sampler in (lambda **kw: kf.gumbel(key, batch=(2,), **kw),
                    lambda **kw: kf.categorical(key, batch=(2,), logits=jnp.zeros(3), **kw)):
        with pytest.raises(ValueError, match=r"mode 'low' only.*got mode='high'"):
            sampler(mode="high", portable=True)


# -- Accuracy ------------------------------------------------------------------------------------

def _ulps(actual, exact):
    actual, exact = np.asarray(actual, np.float64), np.asarray(exact, np.float64)
    return np.abs(actual - exact) / np.spacing(np.abs(exact).astype(F32)).astype(np.float64)


def _grid(step: int) -> np.ndarray:
    """Words of every ``step``-th value of the 23-bit uniform grid from both ends (every input the
    portable samplers can see when ``step == 1``), and all of the first and last 4096 (the tails)."""
    k = np.concatenate([np.arange(0, 2**22, step), np.arange(4096)])
    k = np.unique(np.concatenate([k, 2**23 - 1 - k]))  # mirrored: x and -x
    return k.astype(np.uint32) << np.uint32(9)


@pytest.mark.parametrize("step", [pytest.param(1, marks=pytest.mark.slow), 61])
def test_portable_normal_is_within_4_ulps_of_the_exact_inverse_cdf(step):
    grid = _grid(step)
    z = P.normal(grid)
    exact = np.sqrt(2) * special.erfinv(P.symmetric_uniform(grid).astype(np.float64))
    assert _ulps(z, exact).max() < 4  # measured 3.3 over the whole grid
    assert np.abs(z).max() < 5.3 and np.all(np.diff(z) > 0)  # increasing in the word: no folds
    assert np.all(z == -z[::-1])  # symmetric


@pytest.mark.parametrize("step", [pytest.param(1, marks=pytest.mark.slow), 61])
def test_portable_log_gumbel_and_erf_accuracy(step):
    x = (np.arange(1, 2**24, 3 * step, dtype=np.uint32) * np.uint32(509) % np.uint32(0x7F000000)
         + np.uint32(0x00800000)).view(F32)  # positive normal floats of every exponent
    assert _ulps(P.log(x), np.log(x.astype(np.float64))).max() < 1  # measured 0.95
    grid = _grid(step)
    u = P.open_uniform(grid).astype(np.float64)
    assert np.abs(P.gumbel(grid) - (-np.log(-np.log(u)))).max() < 1e-6  # measured 5.3e-7
    t = np.linspace(-6, 6, 1_000_001 // step, dtype=F32)
    assert np.abs(P.erf(t) - special.erf(t.astype(np.float64))).max() < 2e-7  # measured 1.5e-7
