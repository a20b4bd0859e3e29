"""Every public ``jax.random`` sampler, as ``draw(key, dtype) -> array`` with fixed arguments,
and the dtypes each accepts. ``test_every_sampler_is_covered`` keeps this list complete."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

R = jax.random

FLOATS = ("float16", "bfloat16", "float32", "float64")
INTS = ("int8", "int16", "int32", "int64", "uint8", "uint32")
UINTS = ("uint8", "uint16", "uint32", "uint64")

_COV = np.array([[2.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 0.5]], np.float32)
_LOGITS = np.log(np.array([0.1, 0.2, 0.3, 0.4], np.float32))

# name -> (draw(key, dtype), dtypes swept besides the default (dtype=None)). geometric, poisson, rademacher
# and randint spell their default as ``int`` (JAX's default int): JAX < 0.7 rejects None there or
# reads it as float.
SAMPLERS = {
    "ball": (lambda k, dt: R.ball(k, 3, 2.0, (4,), dtype=dt), FLOATS),
    "bernoulli": (lambda k, dt: R.bernoulli(k, jnp.asarray(0.3, dt or "float32"), (7,)), FLOATS),
    "beta": (lambda k, dt: R.beta(k, 0.8, 1.5, (5,), dt), FLOATS),
    "binomial": (lambda k, dt: R.binomial(k, 12.0, 0.3, (5,), dt), ("float32", "float64")),
    "bits": (lambda k, dt: R.bits(k, (9,), dt), UINTS),
    "categorical": (lambda k, dt: R.categorical(k, jnp.asarray(_LOGITS, dt or "float32"), shape=(6,)), FLOATS),
    "cauchy": (lambda k, dt: R.cauchy(k, (5,), dt), FLOATS),
    "chisquare": (lambda k, dt: R.chisquare(k, 3.0, (5,), dt), FLOATS),
    "choice": (lambda k, dt: R.choice(k, jnp.arange(10, dtype=dt or "int32"), (4,), replace=False), INTS),
    "dirichlet": (lambda k, dt: R.dirichlet(k, jnp.array([0.5, 1.0, 2.0]), (2,), dt), FLOATS),
    "double_sided_maxwell": (lambda k, dt: R.double_sided_maxwell(k, 1.0, 2.0, (5,), dt), FLOATS),
    "exponential": (lambda k, dt: R.exponential(k, (5,), dt), FLOATS),
    "f": (lambda k, dt: R.f(k, 3.0, 5.0, (5,), dt), FLOATS),
    "gamma": (lambda k, dt: R.gamma(k, jnp.array([0.3, 1.0, 4.0]), (3,), dt), FLOATS),
    "generalized_normal": (lambda k, dt: R.generalized_normal(k, 1.5, (5,), dt), FLOATS),
    "geometric": (lambda k, dt: R.geometric(k, 0.3, (5,), dt or int), INTS),
    "gumbel": (lambda k, dt: R.gumbel(k, (5,), dt), FLOATS),
    "laplace": (lambda k, dt: R.laplace(k, (5,), dt), FLOATS),
    "loggamma": (lambda k, dt: R.loggamma(k, 0.5, (5,), dt), FLOATS),
    "logistic": (lambda k, dt: R.logistic(k, (5,), dt), FLOATS),
    "lognormal": (lambda k, dt: R.lognormal(k, 0.5, (5,), dt), FLOATS),
    "maxwell": (lambda k, dt: R.maxwell(k, (5,), dt), FLOATS),
    "multinomial": (lambda k, dt: R.multinomial(k, 20.0, jnp.array([0.2, 0.3, 0.5]), dtype=dt), ("float32", "float64")),
    "multivariate_normal": (lambda k, dt: R.multivariate_normal(k, jnp.zeros(3), _COV, (2,), dt),
                            ("float32", "float64")),
    "normal": (lambda k, dt: R.normal(k, (7,), dt), (*FLOATS, "complex64", "complex128")),
    "orthogonal": (lambda k, dt: R.orthogonal(k, 3, (2,), dt), ("float32", "float64")),
    "pareto": (lambda k, dt: R.pareto(k, 0.5, (5,), dt), FLOATS),
    "permutation": (lambda k, dt: R.permutation(k, jnp.arange(12, dtype=dt or "int32").reshape(3, 4), axis=1,
                                                independent=True), INTS),
    "poisson": (lambda k, dt: R.poisson(k, jnp.array([0.5, 4.0, 30.0]), (3,), dt or int), INTS),
    "rademacher": (lambda k, dt: R.rademacher(k, (6,), dt or int), INTS),
    "randint": (lambda k, dt: R.randint(k, (9,), -5, 100, dt or int), INTS),
    "rayleigh": (lambda k, dt: R.rayleigh(k, 2.0, (5,), dt), FLOATS),
    "t": (lambda k, dt: R.t(k, 4.0, (5,), dt), FLOATS),
    "triangular": (lambda k, dt: R.triangular(k, 0.0, 0.3, 1.0, (5,), dt), FLOATS),
    "truncated_normal": (lambda k, dt: R.truncated_normal(k, -1.0, 2.0, (5,), dt), FLOATS),
    "uniform": (lambda k, dt: R.uniform(k, (9,), dt, -2.0, 3.0), FLOATS),
    "wald": (lambda k, dt: R.wald(k, 1.5, (5,), dt), FLOATS),
    "weibull_min": (lambda k, dt: R.weibull_min(k, 1.0, 1.5, (5,), dt), FLOATS),
}

KEY_FUNCTIONS = {"split", "fold_in", "clone", "key", "PRNGKey", "key_data", "key_impl", "key_dtype",
                 "wrap_key_data"}
"""Public ``jax.random`` functions that are not samplers (tested in test_keys_and_seeds.py)."""
