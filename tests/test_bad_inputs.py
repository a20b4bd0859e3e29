"""The bad-input sweep: hundreds of generated bad and edge inputs over the public surface.

Every case ends in one of two ways, checked exactly:

* ``Raises(types, *words)``: keyfan's own ``TypeError``/``ValueError`` (or ``OSError`` subclass
  for paths) whose message names the argument (every word in ``words`` appears in it);
* ``Valid(check)``: the documented valid result, checked by ``check(result)``.

Each case runs under a timeout (``TIMEOUT`` seconds, SIGALRM): a hang fails the case instead of
the suite. Cases that can hang a process (orbax's threads) and CLI commands run in a subprocess
with a timeout.
``test_sweep_count`` prints how many cases ran.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keyfan as kf
from keyfan import transforms as T
from keyfan.ensemble import _run

TIMEOUT = 300
"""Seconds of wall time a case may take before it counts as a hang: generous, because the
machine may be shared (at load 8 on 2 cores, five valid training cases took over 60 s)."""
KEYFAN = Path(sys.executable).with_name("keyfan")
ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Raises:
    types: tuple[type[BaseException], ...]
    words: tuple[str, ...]

    def __init__(self, types: Any, *words: str):
        object.__setattr__(self, "types", types if isinstance(types, tuple) else (types,))
        object.__setattr__(self, "words", words)


@dataclasses.dataclass(frozen=True)
class Valid:
    check: Callable[[Any], Any]


BAD = (TypeError, ValueError)


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[], Any]
    expect: Raises | Valid
    xfail: str | None = None


CASES: list[Case] = []


def case(id_: str, call: Callable[[], Any], expect: Raises | Valid, *, xfail: str | None = None) -> None:
    assert all(c.id != id_ for c in CASES), id_
    CASES.append(Case(id_, call, expect, xfail))


class _Timeout(Exception):
    pass


def run_with_timeout(fn: Callable[[], Any], seconds: int = TIMEOUT) -> Any:
    def alarm(signum, frame):
        raise _Timeout(f"no result within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def bits_of(a: Any) -> np.ndarray:
    a = jax.random.key_data(a) if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else a
    return np.asarray(a)


KEY = kf.key(0)
RAW = jax.random.PRNGKey(0)

# -- Seeds -----------------------------------------------------------------------------------------

BAD_SEEDS = {
    "half": (2.5, ValueError), "nan": (float("nan"), ValueError), "inf": (float("inf"), ValueError),
    "str": ("0", TypeError), "none": (None, TypeError), "bool": (True, TypeError), "2**64": (2**64, ValueError),
    "below_int64": (-(2**63) - 1, ValueError), "list": ([1, 2], TypeError), "vector": (np.array([1, 2]), TypeError),
    "typed_key": (KEY, TypeError), "raw_key": (RAW, TypeError), "jax_key": (jax.random.key(3), TypeError),
    "complex": (1 + 2j, TypeError), "object": (object(), TypeError), "float_array": (np.array(1.5), ValueError),
    "bytes": (b"1", TypeError), "np_bool": (np.bool_(True), TypeError),
}
for name, (seed, error) in BAD_SEEDS.items():
    for stream in ("threefry", "threefry-legacy"):
        case(f"key-seed-{name}-{stream}", functools.partial(kf.key, seed, stream), Raises(error, "seed"))


def _seed_data(seed: int) -> list[int]:
    value = seed % 2**64
    return [value >> 32, value & 0xFFFFFFFF]


for seed in (0, 1, 2**32, 2**64 - 1, -1, -(2**63), 3.0, np.int64(7), np.uint64(2**63), np.float32(2.0), np.array(9)):
    expected = _seed_data(int(seed))
    case(f"key-seed-valid-{seed!r}", functools.partial(kf.key, seed),
         Valid(lambda k, e=expected: np.testing.assert_array_equal(bits_of(k), e)))
for stream in ("nope", "", "THREEFRY", 3, None):
    case(f"key-stream-{stream!r}", functools.partial(kf.key, 0, stream), Raises(BAD, "stream"))

# -- Keys of every kind, to every function that takes one key ---------------------------------------

BAD_KEYS = {
    "int": 3, "str": "key", "none": None, "uint32x3": np.zeros(3, np.uint32), "int32x2": np.zeros(2, np.int32),
    "float32x2": np.zeros(2, np.float32), "batched_typed": kf.fan_out(KEY, (2,)),
    "batched_raw": np.zeros((2, 2), np.uint32), "rbg": jax.random.key(0, impl="rbg"), "list": [0, 1],
}
KEY_USERS: dict[str, Callable[[Any], Any]] = {
    "fan_out": lambda k: kf.fan_out(k, (2,)),
    "at": lambda k: kf.at(k, 1),
    "step": lambda k: kf.step(k, 1),
    "named": lambda k: kf.named(k, "x"),
    "example_keys": lambda k: kf.example_keys(k, [1, 2]),
    "bits": lambda k: kf.bits(k, batch=(2,)),
    "uniform": lambda k: kf.uniform(k, batch=(2,)),
    "normal": lambda k: kf.normal(k, batch=(2,)),
    "bernoulli": lambda k: kf.bernoulli(k, batch=(2,)),
    "randint": lambda k: kf.randint(k, batch=(2,), minval=0, maxval=3),
    "truncated_normal": lambda k: kf.truncated_normal(k, batch=(2,), lower=-1.0, upper=1.0),
    "gumbel": lambda k: kf.gumbel(k, batch=(2,)),
    "categorical": lambda k: kf.categorical(k, batch=(2,), logits=jnp.zeros(3)),
    "dropout": lambda k: T.dropout(k, jnp.ones((2, 3)), 0.5, batch_axes=1),
    "gaussian_noise": lambda k: T.gaussian_noise(k, jnp.ones((2, 3)), 0.5, batch_axes=1),
    "flip_left_right": lambda k: T.flip_left_right(k, jnp.ones((2, 4, 4, 1)), batch_axes=1),
    "brightness": lambda k: T.brightness(k, jnp.ones((2, 4, 4, 1)), 0.1, batch_axes=1),
    "contrast": lambda k: T.contrast(k, jnp.ones((2, 4, 4, 1)), 0.5, 1.5, batch_axes=1),
    "random_crop": lambda k: T.random_crop(k, jnp.ones((2, 4, 4, 1)), 2, batch_axes=1),
    "cutout": lambda k: T.cutout(k, jnp.ones((2, 4, 4, 1)), 2, batch_axes=1),
    "stream_of": lambda k: kf.stream_of(k) + kf.stream_of(kf.at(k, 0)),
}
for user, fn in KEY_USERS.items():
    for name, bad in BAD_KEYS.items():
        case(f"key-{user}-{name}", functools.partial(fn, bad), Raises(BAD, "key"))
    case(f"key-{user}-valid-raw", functools.partial(fn, RAW),
         Valid(lambda out: np.asarray(jax.random.key_data(out) if jax.dtypes.issubdtype(
             getattr(out, "dtype", np.int8), jax.dtypes.prng_key) else np.asarray(out)) is not None))

# -- Batch shapes and per-example shapes, for every sampler ----------------------------------------

SAMPLERS: dict[str, Callable[..., Any]] = {
    "bits": lambda b, s: kf.bits(KEY, batch=b, shape=s),
    "uniform": lambda b, s: kf.uniform(KEY, batch=b, shape=s),
    "normal": lambda b, s: kf.normal(KEY, batch=b, shape=s),
    "bernoulli": lambda b, s: kf.bernoulli(KEY, batch=b, shape=s, p=0.5),
    "randint": lambda b, s: kf.randint(KEY, batch=b, shape=s, minval=0, maxval=5),
    "truncated_normal": lambda b, s: kf.truncated_normal(KEY, batch=b, shape=s, lower=-1.0, upper=1.0),
    "gumbel": lambda b, s: kf.gumbel(KEY, batch=b, shape=s),
}
BAD_SHAPES = {"neg": -1, "half": 2.5, "str": "3", "none": None, "nested_neg": (2, -1), "bool": True,
              "float_nan": float("nan"), "too_big_axis": (2**33,), "object": object()}
for sampler, fn in SAMPLERS.items():
    for name, bad in BAD_SHAPES.items():
        if name == "too_big_axis":
            case(f"batch-{sampler}-{name}", functools.partial(fn, bad, ()), Raises(BAD, "batch"))
            continue
        case(f"batch-{sampler}-{name}", functools.partial(fn, bad, ()), Raises(BAD, "batch"))
        case(f"shape-{sampler}-{name}", functools.partial(fn, 2, bad), Raises(BAD, "shape"))
    case(f"shape-{sampler}-empty-batch", functools.partial(fn, 0, (3,)), Valid(lambda out: out.shape == (0, 3)))
    case(f"shape-{sampler}-scalar-batch", functools.partial(fn, (), (3,)), Valid(lambda out: out.shape == (3,)))
    case(f"memory-{sampler}", functools.partial(fn, (2**32 - 1, 2**32 - 1), (4,)), Raises(ValueError, "memory"))
    case(f"offset-{sampler}-negative", lambda f=sampler: {
        "bits": lambda: kf.bits(KEY, batch=2, offset=-1)}.get(f, lambda: kf.normal(KEY, batch=2, offset=-1))(),
        Raises(ValueError, "offset"))
    case(f"chunk-{sampler}-zero", lambda f=sampler: kf.uniform(KEY, batch=4, chunk_size=0) if f == "uniform"
         else kf.normal(KEY, batch=4, chunk_size=0.5), Raises(ValueError, "chunk_size"))

# -- dtypes ----------------------------------------------------------------------------------------

for sampler, _kind, bads in [
    ("uniform", "float", ["int32", "bool", "uint8", "notadtype"]),
    ("normal", "inexact", ["int32", "bool", "uint32"]),
    ("bits", "uint", ["float32", "int32", "bool"]),
    ("randint", "int", ["float32", "bool", "complex64"]),
    ("truncated_normal", "float", ["int8", "bool"]),
    ("gumbel", "float", ["int16", "uint8"]),
]:
    for dt in bads:
        if sampler == "randint":
            call = functools.partial(kf.randint, KEY, batch=2, dtype=dt, minval=0, maxval=3)
        elif sampler == "truncated_normal":
            call = functools.partial(kf.truncated_normal, KEY, batch=2, dtype=dt, lower=0.0, upper=1.0)
        else:
            call = functools.partial(getattr(kf, sampler), KEY, batch=2, dtype=dt)
        case(f"dtype-{sampler}-{dt}", call, Raises(BAD, "dtype"))
    if not jax.config.jax_enable_x64:
        case(f"dtype-{sampler}-64bit-without-x64", functools.partial(
            kf.randint, KEY, batch=2, dtype="int64", minval=0, maxval=3) if sampler == "randint" else functools.partial(
            kf.bits, KEY, batch=2, dtype="uint64") if sampler == "bits" else functools.partial(
            kf.truncated_normal, KEY, batch=2, dtype="float64", lower=0.0, upper=1.0) if sampler == "truncated_normal"
            else functools.partial(getattr(kf, sampler), KEY, batch=2, dtype="float64"), Raises(ValueError, "x64"))

# -- Distribution parameters -----------------------------------------------------------------------

PARAMS = [
    ("uniform-min-gt-max", lambda: kf.uniform(KEY, batch=3, minval=2.0, maxval=1.0), "minval"),
    ("uniform-nan", lambda: kf.uniform(KEY, batch=3, minval=float("nan")), "minval"),
    ("uniform-inf", lambda: kf.uniform(KEY, batch=3, maxval=float("inf")), "maxval"),
    ("uniform-param-shape", lambda: kf.uniform(KEY, batch=3, minval=jnp.zeros(4)), "minval"),
    ("uniform-param-str", lambda: kf.uniform(KEY, batch=3, minval="a"), "minval"),
    ("bernoulli-p-1.5", lambda: kf.bernoulli(KEY, batch=3, p=1.5), "p"),
    ("bernoulli-p-neg", lambda: kf.bernoulli(KEY, batch=3, p=-0.1), "p"),
    ("bernoulli-p-int", lambda: kf.bernoulli(KEY, batch=3, p=1), "p"),
    ("bernoulli-p-nan", lambda: kf.bernoulli(KEY, batch=3, p=float("nan")), "p"),
    ("bernoulli-p-shape", lambda: kf.bernoulli(KEY, batch=3, p=jnp.full((2,), 0.5)), "p"),
    ("bernoulli-mode", lambda: kf.bernoulli(KEY, batch=3, mode="mid"), "mode"),
    ("randint-min-gt-max", lambda: kf.randint(KEY, batch=3, minval=5, maxval=3), "minval"),
    ("randint-min-eq-max", lambda: kf.randint(KEY, batch=3, minval=3, maxval=3), "minval"),
    ("randint-per-example-empty", lambda: kf.randint(KEY, batch=2, minval=jnp.array([0, 4]), maxval=4), "minval"),
    ("randint-maxval-2**40", lambda: kf.randint(KEY, batch=3, minval=0, maxval=2**40), "maxval"),
    ("randint-minval-neg-2**40", lambda: kf.randint(KEY, batch=3, minval=-(2**40), maxval=3), "minval"),
    ("randint-float-bounds", lambda: kf.randint(KEY, batch=3, minval=0.0, maxval=3), "minval"),
    ("randint-bool-bounds", lambda: kf.randint(KEY, batch=3, minval=False, maxval=3), "minval"),
    ("randint-str-bound", lambda: kf.randint(KEY, batch=3, minval=0, maxval="3"), "maxval"),
    ("truncated-lower-ge-upper", lambda: kf.truncated_normal(KEY, batch=3, lower=1.0, upper=1.0), "lower"),
    ("truncated-nan", lambda: kf.truncated_normal(KEY, batch=3, lower=float("nan"), upper=1.0), "lower"),
    ("gumbel-mode", lambda: kf.gumbel(KEY, batch=3, mode="medium"), "mode"),
    ("categorical-nan", lambda: kf.categorical(KEY, batch=3, logits=jnp.array([0.0, jnp.nan])), "NaN"),
    ("categorical-all-neg-inf", lambda: kf.categorical(KEY, batch=3, logits=jnp.full(3, -jnp.inf)), "-inf"),
    ("categorical-int-logits", lambda: kf.categorical(KEY, batch=3, logits=jnp.arange(3)), "logits"),
    ("categorical-scalar-logits", lambda: kf.categorical(KEY, batch=3, logits=jnp.float32(1.0)), "logits"),
    ("categorical-axis", lambda: kf.categorical(KEY, batch=3, logits=jnp.zeros((2, 3)), axis=2), "axis"),
    ("categorical-shape", lambda: kf.categorical(KEY, batch=3, logits=jnp.zeros((2, 3)), shape=(4,)), "shape"),
    ("categorical-batched-logits", lambda: kf.categorical(KEY, batch=3, logits=jnp.zeros((2, 3)), batched_logits=True),
     "batched_logits"),
    ("categorical-mode", lambda: kf.categorical(KEY, batch=3, logits=jnp.zeros(3), mode="x"), "mode"),
    ("categorical-sharding", lambda: kf.categorical(KEY, batch=3, logits=jnp.zeros(3), sharding="cpu"), "sharding"),
    ("normal-sharding-str", lambda: kf.normal(KEY, batch=4, sharding="cpu"), "sharding"),
    ("normal-offset-no-batch", lambda: kf.normal(KEY, batch=(), shape=(3,), offset=2), "offset"),
    ("normal-offset-legacy", lambda: kf.normal(kf.key(0, "threefry-legacy"), batch=4, offset=2), "offset"),
    ("normal-chunk-no-batch", lambda: kf.normal(KEY, batch=(), shape=(3,), chunk_size=2), "chunk_size"),
    ("normal-offset-past-2**64", lambda: kf.normal(KEY, batch=4, offset=2**64 - 2), "offset"),
]
for name, call, word in PARAMS:
    case(f"param-{name}", call, Raises(BAD, word))
case("param-randint-int8-full-range", lambda: kf.randint(KEY, batch=1000, dtype="int8", minval=-128, maxval=128),
     Valid(lambda out: out.dtype == np.int8 and int(out.min()) >= -128))
case("param-categorical-inf-logit", lambda: kf.categorical(KEY, batch=5, logits=jnp.array([0.0, jnp.inf])),
     Valid(lambda out: (np.asarray(out) == 1).all()))
case("param-uniform-equal-bounds", lambda: kf.uniform(KEY, batch=3, minval=1.0, maxval=1.0),
     Valid(lambda out: (np.asarray(out) == 1.0).all()))

# -- Indices, steps, names and ids ----------------------------------------------------------------

INDEX = [
    ("at-neg", lambda: kf.at(KEY, -1), "index"),
    ("at-2**64", lambda: kf.at(KEY, 2**64), "index"),
    ("at-half", lambda: kf.at(KEY, 1.5), "index"),
    ("at-str", lambda: kf.at(KEY, "1"), "index"),
    ("at-bool", lambda: kf.at(KEY, True), "index"),
    ("at-vector", lambda: kf.at(KEY, jnp.array([1, 2])), "index"),
    ("at-float-array", lambda: kf.at(KEY, jnp.float32(1.5)), "index"),
    ("at-nested-neg", lambda: kf.at(KEY, (0, -1)), "index[1]"),
    ("at-outside-batch", lambda: kf.at(KEY, 4, batch_shape=(4,)), "index"),
    ("at-rank-mismatch", lambda: kf.at(KEY, (1, 2), batch_shape=(4,)), "batch_shape"),
    ("at-legacy-no-batch-shape", lambda: kf.at(kf.key(0, "threefry-legacy"), 1), "batch_shape"),
    ("at-bad-batch-shape", lambda: kf.at(KEY, 1, batch_shape=(-4,)), "batch_shape"),
    ("step-neg", lambda: kf.step(KEY, -1), "t"),
    ("step-half", lambda: kf.step(KEY, 0.5), "t"),
    ("step-str", lambda: kf.step(KEY, "1"), "t"),
    ("step-2**64", lambda: kf.step(KEY, 2**64), "t"),
    ("named-int", lambda: kf.named(KEY, 3), "name"),
    ("named-bytes", lambda: kf.named(KEY, b"x"), "name"),
    ("named-none", lambda: kf.named(KEY, None), "name"),
    ("ids-neg", lambda: kf.example_keys(KEY, [0, -1]), "ids"),
    ("ids-np-neg", lambda: kf.example_keys(KEY, np.array([-3])), "ids"),
    ("ids-jnp-neg", lambda: kf.example_keys(KEY, jnp.array([-3, 1])), "ids"),
    ("ids-float", lambda: kf.example_keys(KEY, [1.5]), "ids"),
    ("ids-float-array", lambda: kf.example_keys(KEY, np.ones(3)), "ids"),
    ("ids-bool", lambda: kf.example_keys(KEY, np.array([True])), "ids"),
    ("ids-str", lambda: kf.example_keys(KEY, ["a"]), "ids"),
    ("ids-2**64", lambda: kf.example_keys(KEY, [2**64]), "ids"),
    ("ids-none", lambda: kf.example_keys(KEY, None), "ids"),
    ("ids-step-neg", lambda: kf.example_keys(KEY, [1], step=-1), "step"),
    ("fan_out-neg", lambda: kf.fan_out(KEY, -2), "batch_shape"),
    ("fan_out-half", lambda: kf.fan_out(KEY, (2, 1.5)), "batch_shape"),
    ("fan_out-axis-2**32", lambda: kf.fan_out(KEY, (2**32,)), "batch_shape"),
    ("fan_out-memory", lambda: kf.fan_out(KEY, (2**16, 2**16, 2**16)), "memory"),
    ("fan_out-str", lambda: kf.fan_out(KEY, "4"), "batch_shape"),
]
for name, call, word in INDEX:
    case(f"index-{name}", call, Raises(BAD, word))
case("index-at-whole-float", lambda: kf.at(KEY, jnp.float32(2.0)),
     Valid(lambda k: np.array_equal(bits_of(k), bits_of(kf.at(KEY, 2)))))
case("index-at-2**64-1", lambda: kf.at(KEY, 2**64 - 1), Valid(lambda k: k.shape == ()))
case("index-ids-empty", lambda: kf.example_keys(KEY, np.zeros((0,), np.int64)), Valid(lambda k: k.shape == (0,)))
case("index-ids-uint64-high", lambda: kf.example_keys(KEY, np.array([2**63], np.uint64)),
     Valid(lambda k: not np.array_equal(bits_of(k[0]), bits_of(kf.example_keys(KEY, [0])[0]))))
case("index-fan_out-zero", lambda: kf.fan_out(KEY, (0, 3)), Valid(lambda k: k.shape == (0, 3)))
case("index-at-traced-neg-unchecked", lambda: jax.jit(lambda j: kf.at(KEY, j))(-1),
     Valid(lambda k: np.testing.assert_array_equal(bits_of(k), bits_of(kf.at(KEY, 2**32 - 1)))))


def _checkify_error(fn: Callable[..., Any], *args: Any) -> str | None:
    from jax.experimental import checkify

    err, _ = checkify.checkify(jax.jit(fn))(*args)
    return err.get()


for name, fn, arg, word in [
    ("at-neg", lambda j: kf.at(KEY, j), -1, "index must be non-negative"),
    ("at-outside", lambda j: kf.at(KEY, j, batch_shape=(4,)), 4, "index must be less than 4"),
    ("ids-neg", lambda i: kf.example_keys(KEY, i), jnp.array([3, -2]), "ids must be non-negative"),
    ("step-neg", lambda t: kf.step(KEY, t), -5, "t must be non-negative"),
    ("nested-neg", lambda j: kf.at(KEY, (1, j)), -1, "index[1] must be non-negative"),
]:
    case(f"checkify-{name}", functools.partial(_checkify_error, fn, arg),
         Valid(lambda msg, w=word: msg is not None and w in msg))
case("checkify-valid-index", functools.partial(_checkify_error, lambda j: kf.at(KEY, j), 3),
     Valid(lambda msg: msg is None))

# -- Transforms ------------------------------------------------------------------------------------

IMG = jnp.ones((2, 6, 6, 3))
TRANSFORM_BAD = [
    ("dropout-rate-1.5", lambda: T.dropout(KEY, IMG, 1.5), "rate"),
    ("dropout-rate-neg", lambda: T.dropout(KEY, IMG, -0.1), "rate"),
    ("dropout-rate-nan", lambda: T.dropout(KEY, IMG, float("nan")), "rate"),
    ("dropout-rate-str", lambda: T.dropout(KEY, IMG, "0.5"), "rate"),
    ("dropout-int-x", lambda: T.dropout(KEY, jnp.ones(3, jnp.int32), 0.5), "x"),
    ("dropout-batch-axes-neg", lambda: T.dropout(KEY, IMG, 0.5, batch_axes=-1), "batch_axes"),
    ("dropout-batch-axes-too-many", lambda: T.dropout(KEY, IMG, 0.5, batch_axes=5), "batch_axes"),
    ("dropout-batch-axes-half", lambda: T.dropout(KEY, IMG, 0.5, batch_axes=0.5), "batch_axes"),
    ("dropout-x-str", lambda: T.dropout(KEY, "x", 0.5), "x"),
    ("dropout_mask-shape", lambda: T.dropout_mask(KEY, (-1,), 0.5), "shape"),
    ("dropout_mask-rate", lambda: T.dropout_mask(KEY, (3,), 2.0), "rate"),
    ("noise-scale-neg", lambda: T.gaussian_noise(KEY, IMG, -1.0), "scale"),
    ("noise-scale-inf", lambda: T.gaussian_noise(KEY, IMG, float("inf")), "scale"),
    ("noise-int-x", lambda: T.gaussian_noise(KEY, jnp.ones(3, jnp.int32)), "x"),
    ("noise-batch-axes", lambda: T.gaussian_noise(KEY, IMG, batch_axes=9), "batch_axes"),
    ("flip-p", lambda: T.flip_left_right(KEY, IMG, p=2.0, batch_axes=1), "p"),
    ("flip-rank", lambda: T.flip_left_right(KEY, jnp.ones((6, 6)), batch_axes=0), "image"),
    ("flip-rank-batched", lambda: T.flip_up_down(KEY, IMG, batch_axes=0), "image"),
    ("brightness-neg", lambda: T.brightness(KEY, IMG, -0.1, batch_axes=1), "max_delta"),
    ("brightness-int-image", lambda: T.brightness(KEY, IMG.astype(jnp.uint8), 0.1, batch_axes=1), "image"),
    ("contrast-lower-gt-upper", lambda: T.contrast(KEY, IMG, 1.5, 0.5, batch_axes=1), "upper"),
    ("contrast-neg", lambda: T.contrast(KEY, IMG, -1.0, 0.5, batch_axes=1), "lower"),
    ("crop-too-big", lambda: T.random_crop(KEY, IMG, 9, batch_axes=1), "size"),
    ("crop-size-neg", lambda: T.random_crop(KEY, IMG, -2, batch_axes=1), "size"),
    ("crop-size-triple", lambda: T.random_crop(KEY, IMG, (2, 2, 2), batch_axes=1), "size"),
    ("crop-padding-neg", lambda: T.random_crop(KEY, IMG, 4, padding=-1, batch_axes=1), "padding"),
    ("cutout-size-str", lambda: T.cutout(KEY, IMG, "2", batch_axes=1), "size"),
    ("cutout-fill-str", lambda: T.cutout(KEY, IMG, 2, fill="0", batch_axes=1), "fill"),
    ("compose-bad-steps", lambda: T.compose(3), "steps"),
    ("compose-bad-name", lambda: T.compose([("", T.flip_left_right)]), "name"),
    ("compose-not-callable", lambda: T.compose(flip=3), "step"),
    ("compose-batch-axes", lambda: T.compose(flip=T.flip_left_right)(KEY, IMG, batch_axes=7), "batch_axes"),
]
for name, call, word in TRANSFORM_BAD:
    case(f"transform-{name}", call, Raises(BAD, word))
case("transform-dropout-rate-0", lambda: T.dropout(KEY, IMG, 0.0), Valid(lambda y: (np.asarray(y) == 1).all()))
case("transform-dropout-rate-1", lambda: T.dropout(KEY, IMG, 1.0), Valid(lambda y: (np.asarray(y) == 0).all()))
case("transform-noise-scale-0", lambda: T.gaussian_noise(KEY, IMG, 0.0, batch_axes=1),
     Valid(lambda y: (np.asarray(y) == 1).all()))
case("transform-crop-full", lambda: T.random_crop(KEY, IMG, 6, batch_axes=1),
     Valid(lambda y: np.array_equal(np.asarray(y), np.asarray(IMG))))
case("transform-empty-batch", lambda: T.gaussian_noise(KEY, jnp.ones((0, 3)), 0.1, batch_axes=1),
     Valid(lambda y: y.shape == (0, 3)))
case("transform-flip-p0", lambda: T.flip_left_right(KEY, jnp.arange(4.0).reshape(1, 1, 4, 1), p=0.0, batch_axes=1),
     Valid(lambda y: np.asarray(y).ravel().tolist() == [0, 1, 2, 3]))

# -- kf.vmap and the audit ----------------------------------------------------------------------------


def _closed_over_fix() -> Any:
    """kf.vmap's suggested fix for a closed-over key must work when applied."""
    def f(x):
        return x + jax.random.normal(KEY, x.shape)

    try:
        kf.vmap(f)(jnp.zeros((3, 2)))
    except Exception as err:
        message = str(err)
    else:
        return None
    if "make the key an argument, then randomness='different'" in message:
        return kf.vmap(lambda x, k: x + jax.random.normal(k, x.shape), in_axes=(0, None),
                       randomness="different")(jnp.zeros((3, 2)), KEY)
    raise ValueError(message)


VMAP = [
    ("in_axes-str", lambda: kf.vmap(lambda x: x, in_axes="0")(jnp.ones(3)), "in_axes", None),
    ("in_axes-float", lambda: kf.vmap(lambda x: x, in_axes=0.5)(jnp.ones(3)), "in_axes", None),
    ("randomness-bad", lambda: kf.vmap(lambda x: x, randomness="sometimes"), "randomness", None),
    ("not-callable", lambda: kf.vmap(3), "must be callable", None),
    ("axis_name-list", lambda: kf.vmap(lambda x: x, axis_name=["a"])(jnp.ones(3)), "axis_name", None),
]
for name, call, word, xfail in VMAP:
    case(f"vmap-{name}", call, Raises(BAD, word), xfail=xfail)
case("vmap-closed-over-key-fix-works", _closed_over_fix, Valid(lambda out: out is None or out.shape == (3, 2)))
case("check_independent-0-examples", lambda: kf.check_independent(jnp.zeros((0, 3))),
     Valid(lambda report: report.ok))
case("check_independent-1-example", lambda: kf.check_independent(jnp.zeros((1, 3))),
     Valid(lambda report: report.ok))
case("audit-not-callable", lambda: kf.audit(3, jnp.ones(3)), Raises(BAD, "f"))

# -- Ensembles and training ------------------------------------------------------------------------


def _needs_train() -> Any:
    import flax.linen as nn

    class NeedsTrain(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool):
            return nn.Dropout(0.5, deterministic=not train)(nn.Dense(2)(x))

    return NeedsTrain


_NeedsTrain = _needs_train()


@functools.cache
def _train_setup() -> tuple[Any, Any, Any]:
    import optax

    from keyfan.ensemble._run import MLP

    x = jnp.ones((4, 2))
    ens = kf.Ensemble.init(MLP(hidden=4), kf.key(0), members=2, sample_input=x)
    return ens, x, optax


def _trained_classifier() -> Any:
    """The setup's ensemble after one cross-entropy step: it records task 'classification'."""
    return _step()[0].ensemble


def _step(*, y: Any = None, ids: Any = None, x: Any = None, bootstrap: Any = None, ens_task: Any = None,
          **trainer: Any) -> Any:
    ens, x0, optax = _train_setup()
    ens = dataclasses.replace(ens, task=ens_task)
    trainer.setdefault("model_kwargs", {"train": True})
    tr = kf.ensemble.Trainer(optax.sgd(0.1), **trainer)
    state = tr.init(ens, bootstrap=bootstrap)
    y = jnp.zeros((4,), jnp.int32) if y is None else y
    ids = jnp.arange(4) if ids is None else ids
    return tr.step(state, x0 if x is None else x, y, ids)


TRAIN = [
    ("label-above-classes", lambda: _step(y=jnp.array([0, 1, 5, 0])), ValueError, "y"),
    ("label-negative", lambda: _step(y=jnp.array([0, -1, 1, 0])), ValueError, "y"),
    ("label-float", lambda: _step(y=jnp.zeros(4)), TypeError, "y"),
    ("label-one-hot", lambda: _step(y=jnp.zeros((4, 2))), TypeError, "y"),
    ("label-rank", lambda: _step(y=jnp.zeros((4, 1), jnp.int32)), ValueError, "y"),
    ("label-batch", lambda: _step(y=jnp.zeros((3,), jnp.int32)), ValueError, "y"),
    ("label-list", lambda: _step(y=[0, 1, 0, 1]), TypeError, "y"),
    ("ids-negative", lambda: _step(ids=jnp.array([0, 1, -2, 3])), ValueError, "ids"),
    ("ids-np-negative", lambda: _step(ids=np.array([0, 1, -2, 3])), ValueError, "ids"),
    ("ids-bootstrap-jnp", lambda: _step(ids=jnp.array([0, 1, 2, 9]), bootstrap=5), ValueError, "ids"),
    ("ids-bootstrap-np", lambda: _step(ids=np.array([0, 1, 2, 9]), bootstrap=5), ValueError, "ids"),
    ("ids-float", lambda: _step(ids=jnp.ones(4)), ValueError, "ids"),
    ("ids-shape", lambda: _step(ids=jnp.arange(3)), ValueError, "ids"),
    ("x-list", lambda: _step(x=[[1.0, 1.0]] * 4), TypeError, "x"),
    ("x-features", lambda: _step(x=jnp.ones((4, 3))), ValueError, "x"),
    ("no-train-flag", lambda: _step(model_kwargs={}), ValueError, "model_kwargs"),
    ("vector-loss", lambda: _step(loss=lambda o, t: o - t, y=jnp.zeros((4, 2))), ValueError, "loss"),
    ("mse-target-rank", lambda: _step(loss="mse", y=jnp.zeros((4, 3))), ValueError, "y"),
    ("loss-name", lambda: _step(loss="hinge"), ValueError, "loss"),
    ("chunks-zero", lambda: _step(chunks=0), ValueError, "chunks"),
    ("chunks-not-dividing", lambda: _step(chunks=3), ValueError, "chunks"),
    ("optimizer-none", lambda: kf.ensemble.Trainer(None), TypeError, "optimizer"),
    ("bootstrap-zero", lambda: _step(bootstrap=0), ValueError, "bootstrap"),
    ("ensemble-members-zero", lambda: kf.Ensemble.init(_train_setup()[0].model.module, KEY, members=0,
                                                        sample_input=jnp.ones((1, 2))), ValueError, "members"),
    ("ensemble-members-half", lambda: kf.Ensemble.init(_train_setup()[0].model.module, KEY, members=1.5,
                                                        sample_input=jnp.ones((1, 2))), ValueError, "members"),
    ("ensemble-model", lambda: kf.Ensemble.init(3, KEY, members=2, sample_input=jnp.ones((1, 2))), TypeError,
     "model"),
    ("ensemble-sample-scalar", lambda: kf.Ensemble.init(_train_setup()[0].model.module, KEY, members=2,
                                                         sample_input=jnp.float32(1)), ValueError, "sample_input"),
    ("predict-features", lambda: _train_setup()[0].predict(jnp.ones((3, 5))), ValueError, "x"),
    ("predict-mesh-str", lambda: _train_setup()[0].predict(jnp.ones((3, 2)), mesh="cpu"), TypeError, "mesh"),
    ("predict-task", lambda: _train_setup()[0].predict(jnp.ones((3, 2)), task="ranking"), ValueError, "task"),
    ("predict-classifier-as-regression", lambda: _trained_classifier().predict(jnp.ones((3, 2)), task="regression"),
     ValueError, "task='regression' differs"),
    ("predict-classifier-as-gaussian", lambda: _trained_classifier().predict(jnp.ones((3, 2)), task="gaussian"),
     ValueError, "task='gaussian' differs"),
    ("predict-not-an-ensemble", lambda: kf.ensemble.predict(_train_setup()[0].params, jnp.ones((3, 2))), TypeError,
     "ensemble"),
    ("ensemble-task-name", lambda: kf.Ensemble.init(_train_setup()[0].model.module, KEY, members=2,
                                                     sample_input=jnp.ones((1, 2)), task="logits"), ValueError, "task"),
    ("loss-against-recorded-task", lambda: _step(loss="mse", y=jnp.zeros((4,)), ens_task="classification"),
     ValueError, "loss='mse'"),
    ("ensemble-empty-params", lambda: kf.Ensemble.init((lambda k, s: {}, lambda p, x: x), KEY, members=2,
                                                        sample_input=jnp.ones((1, 2))), ValueError, "parameter"),
    ("ensemble-call-needs-train", lambda: kf.Ensemble.init(_NeedsTrain(), KEY, members=2,
                                                            sample_input=jnp.ones((1, 2))), ValueError, "'train'"),
]
for name, call, error, word in TRAIN:
    case(f"train-{name}", call, Raises(error, word))
case("train-valid-step", lambda: _step(), Valid(lambda out: out[1].shape == (2,) and np.isfinite(out[1]).all()))
case("train-valid-classifier-predict", lambda: _trained_classifier().predict(jnp.ones((3, 2))),
     Valid(lambda out: isinstance(out, kf.ensemble.ClassificationPrediction) and out.probs.shape == (3, 2)
           and np.allclose(out.probs.sum(-1), 1.0)))
case("train-valid-explicit-no-dropout", lambda: _step(model_kwargs={"train": False}, dropout=False),
     Valid(lambda out: np.isfinite(out[1]).all()))

# -- Checkpoints: every way orbax's directory can be damaged ----------------------------------------


def _damage_cases() -> dict[str, Callable[[Path], Any]]:
    def garbage(path: Path, text: str = "{not json") -> None:
        path.write_text(text)

    def data_files(step: Path) -> list[Path]:
        return [f for p in (step / "default").rglob("d") if p.is_dir() for f in p.iterdir()]

    return {
        "meta-garbage": lambda s: garbage(s / "default" / "_METADATA"),
        "meta-missing": lambda s: (s / "default" / "_METADATA").unlink(),
        "meta-empty": lambda s: garbage(s / "default" / "_METADATA", ""),
        "meta-list": lambda s: garbage(s / "default" / "_METADATA", "[1, 2]"),
        "meta-null": lambda s: garbage(s / "default" / "_METADATA", "null"),
        "default-missing": lambda s: shutil.rmtree(s / "default"),
        "manifest-missing": lambda s: (s / "default" / "manifest.ocdbt").unlink(),
        "manifest-garbage": lambda s: garbage(s / "default" / "manifest.ocdbt", "junk"),
        "data-missing": lambda s: [f.unlink() for f in data_files(s)],
        "data-truncated": lambda s: [f.write_bytes(f.read_bytes()[:10]) for f in data_files(s)],
        "data-zeroed": lambda s: [f.write_bytes(bytes(len(f.read_bytes()))) for f in data_files(s)],
        "sharding-garbage": lambda s: garbage(s / "default" / "_sharding", "{"),
        "step-empty": lambda s: [shutil.rmtree(s), s.mkdir()],
    }


@functools.cache
def _saved_run() -> tuple[Path, Any, Any]:
    """One saved checkpoint (step 0) of a small run, and its trainer."""
    import tempfile

    import optax

    from keyfan.ensemble._run import MLP

    x = jnp.ones((4, 2))
    trainer = kf.ensemble.Trainer(optax.sgd(0.1), model_kwargs={"train": True})
    state = trainer.init(kf.Ensemble.init(MLP(hidden=4), kf.key(0), members=2, sample_input=x))
    good = Path(tempfile.mkdtemp(prefix="keyfan-sweep-")) / "good"
    kf.ensemble.save(good, state)
    return good, state, trainer


def _restore_damaged(name: str, tmp: Path) -> Any:
    good, state, _ = _saved_run()
    target = tmp / name
    shutil.copytree(good, target)
    _damage_cases()[name](target / "0")
    try:
        return kf.ensemble.restore(target, like=state)
    except (TypeError, ValueError, OSError) as err:
        assert str(target) in str(err), f"{_describe(err)} does not name {target}"
        raise


def _restore_from_file(path: Path) -> Any:
    path.write_text("x")
    return kf.ensemble.restore(path, like=_saved_run()[1])


def _restore_without_process_manifest(tmp: Path) -> Any:
    """orbax keeps a per-process copy of the manifest; without it the checkpoint is still whole."""
    good, state, _ = _saved_run()
    shutil.copytree(good, tmp / "run")
    shutil.rmtree(tmp / "run" / "0" / "default" / "ocdbt.process_0")
    restored = kf.ensemble.restore(tmp / "run", like=state)
    return jax.tree.leaves(restored.ensemble.params), jax.tree.leaves(state.ensemble.params)


CHECKPOINT_RESTORE = {
    "restore-from-file": lambda t: _restore_from_file(t / "f"),
    "restore-empty-dir": lambda t: kf.ensemble.restore(t, like=_saved_run()[1]),
    "restore-missing-dir": lambda t: kf.ensemble.restore(t / "none", like=_saved_run()[1]),
    "restore-missing-step": lambda t: kf.ensemble.restore(_saved_run()[0], like=_saved_run()[1], step=7),
    "restore-step-neg": lambda t: kf.ensemble.restore(_saved_run()[0], like=_saved_run()[1], step=-1),
    "restore-like-wrong": lambda t: kf.ensemble.restore(_saved_run()[0], like=3),
    "restore-directory-int": lambda t: kf.ensemble.restore(3, like=_saved_run()[1]),
    "save-directory-int": lambda t: kf.ensemble.save(3, _saved_run()[1]),
    "save-state-wrong": lambda t: kf.ensemble.save(t, state=3),
    "save-max-to-keep-zero": lambda t: kf.ensemble.save(t, _saved_run()[1], max_to_keep=0),
    "restore-other-structure": lambda t: kf.ensemble.restore(_saved_run()[0], like=_saved_run()[2].init(
        kf.Ensemble.init(_run.MLP(hidden=5), kf.key(0), members=2, sample_input=jnp.ones((4, 2))))),
}
CHECKPOINT_WORDS = {"restore-from-file": "f", "restore-empty-dir": "no checkpoint", "restore-missing-dir":
                    "no checkpoint", "restore-missing-step": "step 7", "restore-step-neg": "step",
                    "restore-like-wrong": "like", "restore-directory-int": "directory", "save-directory-int":
                    "directory", "save-state-wrong": "state", "save-max-to-keep-zero": "max_to_keep",
                    "restore-other-structure": "like="}
for name in _damage_cases():
    case(f"checkpoint-{name}", functools.partial(_restore_damaged, name), Raises((ValueError, OSError), "corrupt"))
for name, call in CHECKPOINT_RESTORE.items():
    case(f"checkpoint-{name}", call, Raises((TypeError, ValueError, OSError), CHECKPOINT_WORDS[name]))
case("checkpoint-valid-no-process-manifest", _restore_without_process_manifest,
     Valid(lambda pair: all(np.array_equal(a, b) for a, b in zip(*pair, strict=True))))
case("checkpoint-valid-roundtrip", lambda t: kf.ensemble.restore(_saved_run()[0], like=_saved_run()[1]),
     Valid(lambda state: int(state.step) == 0))

SAVE_SCRIPT = r"""
import sys, pathlib, logging
logging.disable(logging.CRITICAL)
import jax.numpy as jnp, optax, keyfan as kf
from keyfan.ensemble._run import MLP
trainer = kf.ensemble.Trainer(optax.sgd(0.1), model_kwargs={"train": True})
state = trainer.init(kf.Ensemble.init(MLP(hidden=4), kf.key(0), members=2, sample_input=jnp.ones((4, 2))))
base = pathlib.Path(sys.argv[1])
(base / "file").write_text("x")
(base / "run").mkdir()
(base / "run" / "0").write_text("x")
for target, directory in [(base / "file", base / "file"), (base / "file", base / "file" / "run"),
                          (base / "run" / "0", base / "run")]:
    try:
        kf.ensemble.save(directory, state)
    except OSError as err:
        assert str(target) in str(err), (target, err)
        print("RAISED", type(err).__name__)
    else:
        print("NO ERROR")
"""


def _save_in_subprocess(tmp: Path) -> str:
    """save() to paths that are files, in a fresh process that must EXIT (orbax's threads once kept
    it alive after the error)."""
    script = tmp / "save.py"
    script.write_text(SAVE_SCRIPT)
    out = subprocess.run([sys.executable, str(script), str(tmp)], capture_output=True, text=True,
                         timeout=TIMEOUT * 2)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


case("checkpoint-save-to-files-exits", _save_in_subprocess,
     Valid(lambda out: out.split() == ["RAISED", "NotADirectoryError"] * 3))

# -- The command line ------------------------------------------------------------------------------

AUDIT_FILES = {
    "syntax.py": "def f(x, key):\n    return x +\n",
    "imports.py": "import not_a_module_keyfan_sweep\n\ndef f(x, key):\n    return x\n",
    "raises.py": "x = 1\nraise RuntimeError('boom')\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "good.py": "import jax\n\ndef f(x, key):\n    return x + jax.random.normal(key, x.shape)\n\nnot_fn = 3\n",
}
CLI = [
    ("no-command", []),
    ("unknown-command", ["frobnicate"]),
    ("ensemble-dataset", ["ensemble", "--dataset", "mnist"]),
    ("ensemble-members-zero", ["ensemble", "--members", "0"]),
    ("ensemble-members-str", ["ensemble", "--members", "two"]),
    ("ensemble-epochs-neg", ["ensemble", "--epochs", "-3"]),
    ("ensemble-seed-str", ["ensemble", "--seed", "x"]),
    ("ensemble-out-dir-file", ["ensemble", "--out-dir", "{tmp}/good.py", "--epochs", "1"]),
    ("ensemble-out-dir-under-file", ["ensemble", "--out-dir", "{tmp}/good.py/out", "--epochs", "1"]),
    ("ensemble-out-dir-proc", ["ensemble", "--out-dir", "/proc/keyfan-sweep", "--epochs", "1"]),
    ("audit-syntax", ["audit", "{tmp}/syntax.py:f", "--arg", "float32[3]", "--arg", "key"]),
    ("audit-import", ["audit", "{tmp}/imports.py:f", "--arg", "float32[3]", "--arg", "key"]),
    ("audit-raises", ["audit", "{tmp}/raises.py:f", "--arg", "float32[3]", "--arg", "key"]),
    ("audit-exits", ["audit", "{tmp}/exits.py:f"]),
    ("audit-no-file", ["audit", "{tmp}/missing.py:f"]),
    ("audit-no-colon", ["audit", "{tmp}/good.py"]),
    ("audit-no-function", ["audit", "{tmp}/good.py:g"]),
    ("audit-not-callable", ["audit", "{tmp}/good.py:not_fn"]),
    ("audit-bad-arg", ["audit", "{tmp}/good.py:f", "--arg", "float32[x]"]),
    ("audit-bad-dtype", ["audit", "{tmp}/good.py:f", "--arg", "floaty[3]"]),
    ("audit-bad-in-axes", ["audit", "{tmp}/good.py:f", "--arg", "float32[3]", "--arg", "key", "--in-axes", "0,("]),
    ("stream-layout", ["stream", "--layout", "diagonal"]),
    ("stream-batch-1", ["stream", "--batch", "1"]),
    ("stream-length-0", ["stream", "--length", "0"]),
    ("stream-bytes-neg", ["stream", "--bytes", "-1"]),
    ("stream-batch-str", ["stream", "--batch", "many"]),
    ("bench-runs", ["bench", "--runs", "1"]),
    ("bench-sample-ms", ["bench", "--sample-ms", "-1"]),
]
SUBPROCESS_CLI = {"audit-syntax", "ensemble-out-dir-file", "stream-layout"}
"""Also run through the installed ``keyfan`` script, not only typer's test runner."""


def _cli(args: list[str], tmp: Path, *, subprocess_run: bool) -> tuple[int, str]:
    for name, text in AUDIT_FILES.items():
        (tmp / name).write_text(text)
    argv = [a.replace("{tmp}", str(tmp)) for a in args]
    if subprocess_run:
        out = subprocess.run([str(KEYFAN), *argv], capture_output=True, text=True, timeout=TIMEOUT * 2,
                             stdin=subprocess.DEVNULL)
        return out.returncode, out.stdout + out.stderr
    from typer.testing import CliRunner

    from keyfan.cli import app

    result = CliRunner().invoke(app, argv)
    text = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        text += "Traceback\n" + "".join(traceback.format_exception(result.exception))
    return result.exit_code, text


def _misuse(out: tuple[int, str]) -> None:
    code, text = out
    assert code == 2, (code, text[-2000:])
    assert "Traceback" not in text, text[-2000:]


for name, args in CLI:
    case(f"cli-{name}", (args, False), Valid(_misuse))
    if name in SUBPROCESS_CLI:
        case(f"cli-{name}-script", (args, True), Valid(_misuse))


# -- The sweep -------------------------------------------------------------------------------------


def _describe(err: BaseException) -> str:
    return f"{type(err).__module__}.{type(err).__name__}: {str(err)[:400]}"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # orbax's closed event loops
@pytest.mark.parametrize("c", [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(reason=c.xfail, strict=False)]
                                            if c.xfail else []) for c in CASES])
def test_bad_input(c: Case, tmp_path: Path) -> None:
    call = c.call
    if c.id.startswith("checkpoint-"):
        call = functools.partial(c.call, tmp_path)
    if c.id.startswith("cli-"):
        c.expect.check(run_with_timeout(lambda: _cli(c.call[0], tmp_path, subprocess_run=c.call[1]), TIMEOUT * 2))
        return
    if isinstance(c.expect, Raises):
        try:
            result = run_with_timeout(call)
        except _Timeout:
            raise
        except c.expect.types as err:
            message = str(err)
            missing = [w for w in c.expect.words if w not in message]
            assert not missing, f"{_describe(err)} does not name {missing}"
            assert type(err).__module__.split(".")[0] in ("builtins",), _describe(err)
            assert not re.search(r"jax\._src|XlaRuntimeError", message), _describe(err)
            return
        except Exception as err:  # a wrong kind of error (a raw JAX, NumPy or Python error)
            pytest.fail(f"expected {c.expect.types} naming {c.expect.words}, got {_describe(err)}")
        pytest.fail(f"expected {c.expect.types} naming {c.expect.words}, got a result: {str(result)[:200]}")
    result = run_with_timeout(call)
    assert c.expect.check(result) is not False, str(result)[:400]


def test_sweep_count(capsys) -> None:
    counts: dict[str, int] = {}
    for c in CASES:
        group = c.id.split("-")[0]
        counts[group] = counts.get(group, 0) + 1
    with capsys.disabled():
        print(f"\nbad-input sweep: {len(CASES)} cases ({sum(c.xfail is not None for c in CASES)} xfail) "
              + json.dumps(counts))
    assert len(CASES) >= 300
    for doc in ("README.md", "docs/guides/robustness.md"):
        assert f"sweeps {len(CASES)} generated" in (ROOT / doc).read_text(), f"{doc} states another case count"
    assert shutil.which(str(KEYFAN)) is not None
