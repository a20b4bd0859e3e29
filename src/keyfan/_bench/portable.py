"""The portable float mode's cost: each float sampler with ``portable=True`` beside its default.

Group ``portable NAME 1e6`` (``1e5`` with ``quick``; Poisson at a tenth of that, categorical over
10 classes): JAX's canonical ``split`` + ``vmap`` (jit), keyfan's default sampler (JAX's values,
jit) and keyfan's portable one (jit), one value per example. ``report.targets`` states the
portable case's time over the default's.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

import keyfan as kf
from keyfan._bench.runner import Case

__all__ = ["PORTABLE_SAMPLERS", "portable_cases"]

_LOGITS = jnp.zeros(10)

PORTABLE_SAMPLERS: dict[str, tuple[Callable, Callable, int]] = {
    # name: (one value from one key (JAX), keyfan's batched draw (k, n, portable), size divisor)
    "uniform(-2, 3)": (lambda k: jax.random.uniform(k, minval=-2.0, maxval=3.0),
                       lambda k, n, p: kf.uniform(k, batch=(n,), minval=-2.0, maxval=3.0, portable=p), 1),
    "normal": (lambda k: jax.random.normal(k), lambda k, n, p: kf.normal(k, batch=(n,), portable=p), 1),
    "truncated_normal(-1, 2)": (lambda k: jax.random.truncated_normal(k, -1.0, 2.0),
                                lambda k, n, p: kf.truncated_normal(k, batch=(n,), lower=-1.0, upper=2.0,
                                                                    portable=p), 1),
    "gumbel": (lambda k: jax.random.gumbel(k), lambda k, n, p: kf.gumbel(k, batch=(n,), portable=p), 1),
    "categorical(10)": (lambda k: jax.random.categorical(k, _LOGITS),
                        lambda k, n, p: kf.categorical(k, batch=(n,), logits=_LOGITS, portable=p), 1),
    "poisson(lam=4)": (lambda k: jax.random.poisson(k, 4.0),
                       lambda k, n, p: kf.poisson(k, batch=(n,), lam=4.0, portable=p), 10),
    "poisson(lam=40)": (lambda k: jax.random.poisson(k, 40.0),
                        lambda k, n, p: kf.poisson(k, batch=(n,), lam=40.0, portable=p), 10),
}


def _size(n: int) -> str:
    return f"{n:.0e}".replace("+0", "").replace("e0", "e")


def portable_cases(key: jax.Array, raw: jax.Array, n_examples: int = 10**6) -> list[Case]:
    """Canonical, default and portable, one value per example, for each float sampler."""
    cases = []
    for name, (one, batched, divisor) in PORTABLE_SAMPLERS.items():
        n = n_examples // divisor
        group = f"portable {name} {_size(n)}"
        canonical = jax.jit(lambda k, one=one, n=n: jax.vmap(one)(jax.random.split(k, n)))
        default = jax.jit(lambda k, b=batched, n=n: b(k, n, False))
        portable = jax.jit(lambda k, b=batched, n=n: b(k, n, True))
        cases += [
            Case(f"{group}: canonical split+vmap (jit)", group, lambda c=canonical: c(raw), n, "canonical"),
            Case(f"{group}: keyfan default (jit)", group, lambda d=default: d(key), n, "keyfan"),
            Case(f"{group}: keyfan portable=True (jit)", group, lambda p=portable: p(key), n, "portable"),
        ]
    return cases
