"""The benchmark cases: the reference notebook's cases and keyfan's samplers on a set of shapes.

Groups (ratios are taken within a group, against its "canonical" and "numpy" cases):

* ``notebook N=1e3``: 1a a Python loop over ``split(key, 1000)``; 1b ``vmap(normal)`` over the
  same keys; keyfan's ``normal``.
* ``notebook N=1e6``: 2a the canonical ``split`` + ``vmap`` at 10**6; 2b the one-key draw
  ``normal(key, (10**6,))``; 2c NumPy's ``default_rng().normal``; keyfan's ``normal``.
* ``sigmoid gradient``: the exact derivative ``s(x)(1 - s(x))`` against ``jax.grad``, jitted or
  not, vmapped over 1000 points.
* ``normal NxN``: for each shape, canonical (jitted), keyfan eager and jitted, NumPy.
* ``sampler NAME 1e6``: every other sampler at ``N = 10**6`` scalar draws (``10**5`` with
  ``quick``; categorical over 10 classes): canonical ``split`` + ``vmap`` (jitted), the same on
  keyfan keys, and keyfan (jitted).
* ``kf.vmap NxN``: ``kf.vmap(f, randomness="different")`` against split + vmap by hand.
* ``ensemble init`` / ``ensemble train step``: ``Ensemble.init`` of 350 Dense members, and one
  vmapped ``Trainer`` step of 32 MLPs against a Python loop over their jitted steps
  (``keyfan._bench.ensemble``); ``keyfan bench --group ensemble-trainer`` runs the trainer group
  of :mod:`keyfan._bench.trainer` instead.
* ``portable NAME 1e6``: each float sampler with ``portable=True`` beside its default and the
  canonical pattern (``keyfan._bench.portable``); ``keyfan bench --group portable`` runs only these.
* ``sanitizer trace time``: tracing a transformer training step with and without
  ``kf.sanitize()`` (``keyfan._bench.sanitizer``; not in ``quick``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import keyfan as kf
from keyfan._bench.runner import Case

__all__ = ["SHAPES", "QUICK_SHAPES", "TARGET_SHAPES", "default_cases", "shape_group"]

TARGET_SHAPES = [(10**6, 1), (10**5, 10), (10**6, 3), (10**3, 128), (10**4, 10**3)]
"""The target shape set (examples N, values per example n): the per-output spread target is read over these."""
SHAPES = [*TARGET_SHAPES, (999_999, 1)]
"""The target shapes, plus an odd N (XLA's CPU loops over odd sizes ran 10x slower unpadded)."""
QUICK_SHAPES = [(10**6, 1), (10**5, 10), (10**6, 3), (10**3, 128)]


def _event(n: int) -> tuple[int, ...]:
    return () if n == 1 else (n,)


def _canonical(n_examples: int, n: int):
    shape = _event(n)
    return jax.jit(lambda k: jax.vmap(lambda kk: jax.random.normal(kk, shape))(jax.random.split(k, n_examples)))


def notebook_cases(key, raw) -> list[Case]:
    """Cases 1a-1b (N=1e3) and 2a-2c (N=1e6) of the reference notebook, beside keyfan."""
    n3, n6 = 10**3, 10**6
    keys3 = jax.random.split(raw, n3)
    normal_one = jax.jit(lambda k: jax.random.normal(k))

    def loop_1a():
        return [normal_one(k) for k in keys3]

    rng = np.random.default_rng(0)
    canonical3, canonical6 = _canonical(n3, 1), _canonical(n6, 1)
    one_key = jax.jit(lambda k: jax.random.normal(k, (n6,)))
    kf_jit3 = jax.jit(lambda k: kf.normal(k, batch=(n3,)))
    kf_jit6 = jax.jit(lambda k: kf.normal(k, batch=(n6,)))
    g3, g6 = "notebook N=1e3", "notebook N=1e6"
    return [
        Case("1a python loop over split(key, 1e3)", g3, loop_1a, n3, "loop"),
        Case("1b vmap(normal)(split(key, 1e3))", g3, lambda: canonical3(raw), n3, "canonical"),
        Case("keyfan normal N=1e3 (jit)", g3, lambda: kf_jit3(key), n3, "keyfan"),
        Case("2a vmap(normal)(split(key, 1e6))", g6, lambda: canonical6(raw), n6, "canonical"),
        Case("2b one-key normal(key, (1e6,))", g6, lambda: one_key(raw), n6, "one-key"),
        Case("2c numpy default_rng().normal(1e6)", g6, lambda: rng.normal(size=n6), n6, "numpy"),
        Case("keyfan normal N=1e6 (eager)", g6, lambda: kf.normal(key, batch=(n6,)), n6, "keyfan"),
        Case("keyfan normal N=1e6 (jit)", g6, lambda: kf_jit6(key), n6, "keyfan"),
    ]


def sigmoid_cases() -> list[Case]:
    """The exact sigmoid derivative versus ``jax.grad``, eager or jitted, vmapped over 1000 points."""
    xs = jnp.linspace(-6.0, 6.0, 1000)

    def exact(x):
        s = jax.nn.sigmoid(x)
        return s * (1 - s)

    autodiff = jax.vmap(jax.grad(jax.nn.sigmoid))
    exact_v = jax.vmap(exact)
    exact_jit, grad_jit = jax.jit(exact_v), jax.jit(autodiff)
    g = "sigmoid gradient"
    return [
        Case("exact s(1-s), vmapped, eager", g, lambda: exact_v(xs), 1000, "exact eager"),
        Case("exact s(1-s), vmapped, jit", g, lambda: exact_jit(xs), 1000, "canonical"),
        Case("jax.grad(sigmoid), vmapped, eager", g, lambda: autodiff(xs), 1000, "grad eager"),
        Case("jax.grad(sigmoid), vmapped, jit", g, lambda: grad_jit(xs), 1000, "grad jit"),
    ]


def shape_group(n_examples: int, n: int) -> str:
    """The group of the ``normal`` cases at ``(n_examples, n)``: "normal 1e6x1", "normal 999999x1"."""
    if n_examples % 10:
        return f"normal {n_examples}x{n}"
    return f"normal {n_examples:.0e}x{n}".replace("+0", "").replace("e0", "e")


def shape_cases(key, raw, shapes) -> list[Case]:
    """For each ``(N, n)``: canonical split + vmap (jit), keyfan eager and jit, NumPy."""
    cases = []
    rng = np.random.default_rng(0)
    for n_examples, n in shapes:
        group = shape_group(n_examples, n)
        event = _event(n)
        canonical = _canonical(n_examples, n)
        jitted = jax.jit(lambda k, n_examples=n_examples, event=event: kf.normal(k, batch=(n_examples,), shape=event))
        size = n_examples * n
        cases += [
            Case(f"{group}: canonical split+vmap (jit)", group, lambda c=canonical: c(raw), size, "canonical"),
            Case(f"{group}: keyfan (eager)", group,
                 lambda n_examples=n_examples, event=event: kf.normal(key, batch=(n_examples,), shape=event),
                 size, "keyfan eager"),
            Case(f"{group}: keyfan (jit)", group, lambda j=jitted: j(key), size, "keyfan"),
            Case(f"{group}: numpy", group, lambda s=(n_examples, n): rng.normal(size=s), size, "numpy"),
        ]
    return cases


SAMPLERS = {
    "bits": (lambda k: jax.random.bits(k), lambda k, n: kf.bits(k, batch=(n,))),
    "uniform": (lambda k: jax.random.uniform(k), lambda k, n: kf.uniform(k, batch=(n,))),
    "bernoulli": (lambda k: jax.random.bernoulli(k, 0.3), lambda k, n: kf.bernoulli(k, batch=(n,), p=0.3)),
    "randint": (lambda k: jax.random.randint(k, (), 0, 10),
                lambda k, n: kf.randint(k, batch=(n,), minval=0, maxval=10)),
    "truncated_normal": (lambda k: jax.random.truncated_normal(k, -1.0, 2.0),
                         lambda k, n: kf.truncated_normal(k, batch=(n,), lower=-1.0, upper=2.0)),
    "gumbel": (lambda k: jax.random.gumbel(k), lambda k, n: kf.gumbel(k, batch=(n,))),
    "categorical": (lambda k: jax.random.categorical(k, jnp.zeros(10)),
                    lambda k, n: kf.categorical(k, batch=(n,), logits=jnp.zeros(10))),
}
"""Per-example draw of one value, and keyfan's batched call, for every sampler but ``normal``."""


def sampler_cases(key, raw, n_examples: int = 10**6) -> list[Case]:
    """Every other sampler, one value per example: JAX's canonical split + vmap (jit, JAX's own
    keys, the same bits as the ``"threefry"`` stream), the same code on keyfan keys (whose
    ``jax.random`` draws run keyfan's per-key loops), and keyfan's sampler (jit)."""
    cases = []
    size = f"{n_examples:.0e}".replace("+0", "").replace("e0", "e") if n_examples % 10 == 0 else str(n_examples)
    for name, (one, batched) in SAMPLERS.items():
        group = f"sampler {name} {size}"
        canonical = jax.jit(lambda k, one=one: jax.vmap(one)(jax.random.split(k, n_examples)))
        on_keyfan_keys = jax.jit(lambda k, one=one: jax.vmap(one)(kf.fan_out(k, (n_examples,))))
        ours = jax.jit(lambda k, batched=batched: batched(k, n_examples))
        cases += [
            Case(f"{group}: canonical split+vmap (jit)", group, lambda c=canonical: c(raw), n_examples, "canonical"),
            Case(f"{group}: split+vmap on keyfan keys (jit)", group, lambda c=on_keyfan_keys: c(key), n_examples,
                 "keyfan keys"),
            Case(f"{group}: keyfan (jit)", group, lambda o=ours: o(key), n_examples, "keyfan"),
        ]
    return cases


def vmap_cases(key, shapes) -> list[Case]:
    """``kf.vmap(f, randomness="different")`` against the hand-written split + vmap, both jitted."""

    def per_example(x, k):
        return x + jax.random.normal(k, x.shape)

    hand = jax.jit(lambda xs, k: jax.vmap(per_example)(xs, jax.random.split(k, xs.shape[0])))
    ours = jax.jit(kf.vmap(per_example, in_axes=(0, None), randomness="different"))
    cases = []
    for n_examples, n in shapes:
        group = f"kf.vmap {n_examples:.0e}x{n}".replace("+0", "").replace("e0", "e")
        xs = jnp.zeros((n_examples, n))
        cases += [
            Case(f"{group}: split + vmap by hand (jit)", group, lambda xs=xs: hand(xs, key), xs.size, "canonical"),
            Case(f"{group}: kf.vmap different (jit)", group, lambda xs=xs: ours(xs, key), xs.size, "kf.vmap"),
        ]
    return cases


def default_cases(*, quick: bool = False) -> list[Case]:
    """Every case of the suite (``quick``: the 1e4 x 1e3 shape is left out, the samplers run at 1e5)."""
    key = kf.key(0)
    raw = jax.random.PRNGKey(0)
    from keyfan._bench.ensemble import suite_cases
    from keyfan._bench.portable import portable_cases
    from keyfan._bench.sanitizer import sanitizer_cases

    return [*notebook_cases(key, raw), *sigmoid_cases(),
            *shape_cases(key, raw, QUICK_SHAPES if quick else SHAPES),
            *sampler_cases(key, raw, 10**5 if quick else 10**6),
            *vmap_cases(key, [(10**3, 128), (10**5, 10)] if quick else [(10**3, 128), (10**5, 10), (10**6, 1)]),
            *portable_cases(key, raw, 10**5 if quick else 10**6),
            *suite_cases(quick=quick), *([] if quick else sanitizer_cases())]
