"""Every higher-order primitive under vmap: the sanitizer and the audit agree with what the
program computes.

The matrix crosses each higher-order primitive a draw can sit in (``cond``, ``switch``,
``while_loop`` whose predicate depends on the data, ``scan`` with a carried key, ``jit``,
``checkpoint``, ``custom_jvp``, ``custom_vjp``, ``shard_map``, ``lax.map``) with {the data operand
unbatched, batched} and {the key batched, unbatched, derived inside from an unbatched key}. The
expected verdict is not written down: each program is run without any check, and a draw is
"shared" when every example that drew got the same values. ``kf.sanitize()``, ``kf.audit`` of the
per-example function and ``kf.audit`` of the whole vmapped program must each say exactly that.
A batched predicate turns ``cond``/``switch`` into a select over every branch, run once for the
whole batch, and makes ``while_loop`` carry every value batched: the key then looks batched to
JAX's batching rule although every example draws the same values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import PartitionSpec as P

import keyfan as kf

_SHARED_KINDS = {"shared-draw", "closure-key", "constant-key"}


def _draw(d, k, derive):
    if derive:
        k = jax.random.fold_in(k, 1)
    return d + jax.random.normal(k, d.shape)


def _cond(d, k, derive):
    return lax.cond(d[0] > 0, lambda d, k: _draw(d, k, derive), lambda d, k: d, d, k)


def _switch(d, k, derive):
    index = jnp.clip(d[0], 0, 1).astype(jnp.int32)
    return lax.switch(index, [lambda d, k: d, lambda d, k: _draw(d, k, derive)], d, k)


def _while(d, k, derive):
    def body(carry):
        i, d, k = carry
        k, sub = jax.random.split(k)
        return i + 1, _draw(d, sub, derive), k
    return lax.while_loop(lambda c: c[0] < 1 + (c[1][0] > 0), body, (0, d, k))[1]


def _scan(d, k, derive):
    def body(carry, _):
        d, k = carry
        k, sub = jax.random.split(k)
        return (_draw(d, sub, derive), k), None
    return lax.scan(body, (d, k), None, length=2)[0][0]


def _jit(d, k, derive):
    return jax.jit(_draw, static_argnums=2)(d, k, derive)


def _checkpoint(d, k, derive):
    return jax.checkpoint(_draw, static_argnums=(2,))(d, k, derive)


def _custom_jvp(d, k, derive):
    @jax.custom_jvp
    def g(d, k):
        return _draw(d, k, derive)
    g.defjvp(lambda primals, tangents: (g(*primals), tangents[0]))
    return g(d, k)


def _custom_vjp(d, k, derive):
    @jax.custom_vjp
    def g(d, k):
        return _draw(d, k, derive)
    g.defvjp(lambda d, k: (g(d, k), None), lambda _, ct: (ct, None))
    return g(d, k)


def _shard_map(d, k, derive):
    mesh = jax.make_mesh((1,), ("s",))
    return jax.shard_map(lambda d, k: _draw(d, k, derive), mesh=mesh, in_specs=(P(), P()), out_specs=P())(d, k)


def _map(d, k, derive):
    return lax.map(lambda di: _draw(di, k, derive), d)


HIGHER_ORDER = {"cond": _cond, "switch": _switch, "while_loop": _while, "scan": _scan, "jit": _jit,
                "checkpoint": _checkpoint, "custom_jvp": _custom_jvp, "custom_vjp": _custom_vjp,
                "shard_map": _shard_map, "lax.map": _map}
X = jnp.array([[1.0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0]])
"""Four examples; the first coordinate drives the predicates (three take the drawing branch)."""


def _program(primitive, data_batched, key_mode):
    derive = key_mode == "derived"

    def f(x, d0, key):
        d = x if data_batched else d0
        return HIGHER_ORDER[primitive](d, key, derive) - d + 0 * x

    keys = jax.random.split(jax.random.key(0), 4) if key_mode == "batched" else jax.random.key(0)
    return f, (X, jnp.array([1.0, 0, 0]), keys), (0, None, 0 if key_mode == "batched" else None)


def _examples_share_their_draws(out):
    """True when every example that drew (a non-zero row) drew the same values."""
    drawn = [row for row in np.asarray(out) if np.any(np.abs(row) > 1e-3)]
    assert drawn, "no example drew"
    return len(drawn) > 1 and all(np.allclose(row, drawn[0], atol=1e-5) for row in drawn)


PREDICATED = ("cond", "switch", "while_loop")
"""Primitives whose predicate the data drives: batched data changes what JAX's batching rule does
to the key, so both data settings run in the default tier. For the others the data is only added
to the draw; their unbatched-data row (10 CPU-s) runs in the ``slow`` tier."""


def _cases() -> list:
    cases = []
    for primitive in HIGHER_ORDER:
        for data_batched in (False, True):
            for key_mode in ("batched", "unbatched", "derived"):
                slow = not data_batched and primitive not in PREDICATED
                data = "batched" if data_batched else "unbatched"
                cases.append(pytest.param(primitive, data_batched, key_mode, marks=[pytest.mark.slow] if slow else [],
                                          id=f"{primitive}-data-{data}-{key_mode}"))
    return cases


@pytest.mark.parametrize(("primitive", "data_batched", "key_mode"), _cases())
def test_sanitizer_and_audit_agree_with_what_the_program_computes(primitive, data_batched, key_mode):
    f, args, in_axes = _program(primitive, data_batched, key_mode)
    shared = _examples_share_their_draws(jax.vmap(f, in_axes=in_axes)(*args))
    assert shared == (key_mode != "batched")

    try:
        with kf.sanitize():
            jax.vmap(f, in_axes=in_axes)(*args)
        raised = False
    except kf.SharedRandomnessError:
        raised = True
    assert raised == shared, f"kf.sanitize {'missed' if shared else 'false alarm on'} {primitive}"

    one = [a[0] if axis == 0 else a for a, axis in zip(args, in_axes, strict=True)]
    report = kf.audit(f, *one, in_axes=in_axes)
    assert any(p.kind.value in _SHARED_KINDS for p in report.problems) == shared, report

    whole = kf.audit(lambda *a: jax.vmap(f, in_axes=in_axes)(*a), *args, in_axes=None)
    assert any(p.kind.value == "shared-draw" for p in whole.problems) == shared, whole
