"""Digests of keyfan's keys, raw bits and draws, for comparison across CPU instruction sets.

Run in a fresh process (``XLA_FLAGS`` set by the caller, before JAX is imported):

    python -m tests.isa._digests

prints one JSON object ``{name: [kind, digest]}``. ``kind`` says what is promised:

* ``"exact"``: key data, raw bits, integer and boolean draws, and every ``portable=True`` draw:
  identical on every ISA (``tests/isa/test_across_isas.py`` asserts it);
* ``"jax"``: JAX's default float draws (and what is computed from them): measured, not promised
  (the table in docs/guides/reproducibility.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import keyfan as kf

BATCH, SHAPE = (4096,), (8,)
SIZE = {"batch": BATCH, "shape": SHAPE}
LAM = np.array([0.5, 3.0, 9.5, 10.0, 30.0, 250.0, 1e4, 4.0], np.float32)
LOGITS = jnp.log(jnp.linspace(0.05, 1.0, 10))


def _exact(key, legacy) -> dict[str, Callable[[], jax.Array]]:
    keys = kf.fan_out(key, BATCH)
    return {
        "key data: kf.fan_out": lambda: jax.random.key_data(keys),
        "key data: split, fold_in, example_keys": lambda: jnp.concatenate([
            jax.random.key_data(jax.random.split(key, 1000)),
            jax.random.key_data(jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(1000))),
            jax.random.key_data(kf.example_keys(key, np.arange(1000) * 7 + 3, step=5))]),
        "raw bits: kf.bits uint32": lambda: kf.bits(key, **SIZE),
        "raw bits: kf.bits uint8": lambda: kf.bits(key, **SIZE, dtype=jnp.uint8),
        "raw bits: jax.random.bits on fan_out": lambda: jax.vmap(lambda k: jax.random.bits(k, SHAPE))(keys),
        # The legacy stream's integer path (the ISA matrix reruns its float paths on "threefry" only).
        "key data: kf.fan_out threefry-legacy": lambda: jax.random.key_data(kf.fan_out(legacy, BATCH)),
        "raw bits: kf.bits uint32 threefry-legacy": lambda: kf.bits(legacy, **SIZE),
        "raw bits: jax.random.bits on fan_out threefry-legacy": lambda: jax.vmap(
            lambda k: jax.random.bits(k, SHAPE))(kf.fan_out(legacy, BATCH)),
        "randint": lambda: kf.randint(key, **SIZE, minval=-7, maxval=1000),
        "bernoulli": lambda: kf.bernoulli(key, **SIZE, p=0.3),
        "bernoulli mode=high": lambda: kf.bernoulli(key, **SIZE, p=1e-8, mode="high"),
        "jax.random.permutation": lambda: jax.vmap(lambda k: jax.random.permutation(k, 16))(keys),
        "portable uniform": lambda: kf.uniform(key, **SIZE, portable=True),
        "portable uniform(-3, 5.5)": lambda: kf.uniform(key, **SIZE, minval=-3.0, maxval=5.5, portable=True),
        "portable normal": lambda: kf.normal(key, **SIZE, portable=True),
        "portable normal complex64": lambda: kf.normal(key, **SIZE, dtype=jnp.complex64, portable=True),
        "portable normal bfloat16": lambda: kf.normal(key, **SIZE, dtype=jnp.bfloat16, portable=True),
        "portable truncated_normal(-1.5, 2)": lambda: kf.truncated_normal(key, **SIZE, lower=-1.5, upper=2.0,
                                                                         portable=True),
        "portable truncated_normal(3, inf)": lambda: kf.truncated_normal(key, **SIZE, lower=3.0, upper=np.inf,
                                                                        portable=True),
        "portable gumbel": lambda: kf.gumbel(key, **SIZE, portable=True),
        "portable categorical": lambda: kf.categorical(key, batch=BATCH, logits=LOGITS, portable=True),
        "portable poisson": lambda: kf.poisson(key, batch=(512,), shape=(8,), lam=LAM, portable=True),
    }


def _jax(key) -> dict[str, Callable[[], jax.Array]]:
    keys = kf.fan_out(key, (512,))
    per_key = {name: (lambda f=f: jax.jit(jax.vmap(f))(keys)) for name, f in {
        "jax.random.normal": lambda k: jax.random.normal(k, SHAPE),
        "jax.random.exponential": lambda k: jax.random.exponential(k, SHAPE),
        "jax.random.gamma": lambda k: jax.random.gamma(k, 2.5, SHAPE),
        "jax.random.beta": lambda k: jax.random.beta(k, 0.7, 1.5, SHAPE),
        "jax.random.laplace": lambda k: jax.random.laplace(k, SHAPE),
        "jax.random.cauchy": lambda k: jax.random.cauchy(k, SHAPE),
        "jax.random.orthogonal": lambda k: jax.random.orthogonal(k, 3),
        "jax.random.multivariate_normal": lambda k: jax.random.multivariate_normal(
            k, jnp.zeros(3), jnp.array([[2.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 0.5]])),
    }.items()}
    return {
        "uniform": lambda: kf.uniform(key, **SIZE),
        "uniform(-3, 5.5)": lambda: kf.uniform(key, **SIZE, minval=-3.0, maxval=5.5),
        "normal": lambda: kf.normal(key, **SIZE),
        "normal bfloat16": lambda: kf.normal(key, **SIZE, dtype=jnp.bfloat16),
        "truncated_normal(-1.5, 2)": lambda: kf.truncated_normal(key, **SIZE, lower=-1.5, upper=2.0),
        "gumbel": lambda: kf.gumbel(key, **SIZE),
        "gumbel mode=high": lambda: kf.gumbel(key, **SIZE, mode="high"),
        "categorical": lambda: kf.categorical(key, batch=BATCH, logits=LOGITS),
        "poisson": lambda: kf.poisson(key, batch=(512,), shape=(8,), lam=LAM),
        **per_key,
    }


def digest(x: jax.Array) -> str:
    a = np.asarray(x)
    return hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()[:16]


def digests(seed: int = 42) -> dict[str, list[str]]:
    key = kf.key(seed)
    out = {name: ["exact", digest(draw())] for name, draw in _exact(key, kf.key(seed, "threefry-legacy")).items()}
    out.update({name: ["jax", digest(draw())] for name, draw in _jax(key).items()})
    return out


if __name__ == "__main__":
    print(json.dumps(digests()))
