"""Shared test helpers: fresh keys with their seed in the test id, both streams, the canonical
split + vmap pattern, and bitwise comparison."""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keyfan as kf
from tests._compat import pytest_collection_modifyitems as mark_compat_subset

pytest_plugins = ["tests._cpu_time"]

STREAMS = ("threefry", "threefry-legacy")
PARTITIONABLE = {"threefry": True, "threefry-legacy": False}


LEGACY_SLOW = [pytest.param("threefry", id="threefry"),
               pytest.param("threefry-legacy", id="threefry-legacy", marks=pytest.mark.slow)]
"""Both streams for ``@pytest.mark.parametrize("stream", LEGACY_SLOW, indirect=True)``: the legacy
stream in the slow tier, for a test whose legacy path other default-tier tests already cover."""


_QUICK_EXAMPLES = {"on": False}


def examples(n: int) -> int:
    """Hypothesis examples for a test whose every example compiles new programs (new sizes): ``n``
    in a run that includes the slow tier (``--full``, CI), a third of it (at least 3) in the default
    tier (``-m "not slow"``), so the property is still drawn at random sizes there."""
    return max(3, n // 3) if _QUICK_EXAMPLES["on"] else n


def pytest_configure(config):
    _QUICK_EXAMPLES["on"] = " ".join((config.getoption("markexpr", "") or "").split()) == "not slow"


@functools.cache
def float16_compiles() -> bool:
    """Whether XLA can compile float16 arithmetic in this process. Under the ISA matrix's
    ``--xla_cpu_max_isa=SSE4_2`` it cannot: without F16C it calls the soft-float conversions
    ``__extendhfsf2``/``__truncsfhf2``, which jaxlib does not link ("Symbols not found"). No real
    machine runs JAX there (jaxlib's CPU feature guard requires AVX); at ``AVX`` XLA compiles it."""
    try:
        jax.jit(lambda x: (x.astype(jnp.float16) * 3).astype(jnp.float32))(np.float32(1.5)).block_until_ready()
    except jax.errors.JaxRuntimeError:
        return False
    return True


def half_floats() -> tuple:
    """The 16-bit float dtypes this process can compute with (see :func:`float16_compiles`)."""
    return (jnp.bfloat16, jnp.float16) if float16_compiles() else (jnp.bfloat16,)


_FLOAT16_ID = re.compile(r"(?<!b)f(loat)?16")


def pytest_collection_modifyitems(config, items):
    """The compatibility subset is marked (tests/_compat.py), float16 cases are skipped where
    XLA cannot compile float16, and the longest tests run first (:data:`LONGEST_FIRST`)."""
    mark_compat_subset(config, items)
    _skip_float16_where_it_cannot_compile(items)
    items[:] = longest_first(items)


LONGEST_FIRST = (
    "tests/isa/test_isa_matrix.py::test_every_bitwise_test_under_isa",  # six processes, 400-650 CPU-s each
    "tests/test_ensemble_arrangements.py::",  # three processes, ~160 CPU-s each
    "tests/test_ensemble_layout.py::test_training_and_prediction_are_bitwise_equal",  # ~140
    "tests/isa/test_across_isas.py::",  # ~120
    "tests/test_package.py::test_bare_core_installs_from_the_local_path_and_runs",  # ~110 s, mostly pip's downloads
    "tests/conformance/test_flags.py::",  # four processes, 20-80 CPU-s each
    "tests/isa/test_isa_matrix.py::test_representative_bitwise_tests_under_isa",  # 30-45 (default tier)
)
"""Node-id prefixes of the tests that take minutes, longest first: they start first. dev.py's runs
hand the two xdist workers one test at a time as they free up (``--maxschedchunk=1``), so the
workers share these and the short tests fill in the end, as in longest-first list scheduling; in
collection order, a matrix process could start last and run alone for minutes while the other
worker sat idle (the full run of 2026-12-07 21:09: 4825 CPU-s in 2816 s, 1.71 cores busy)."""


def longest_first(items: list) -> list:
    """``items`` with those matching :data:`LONGEST_FIRST` moved to the front in its order, every
    other item after them in collection order (deterministic: every xdist worker gets the same)."""
    def rank(item) -> int:
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)),
                    len(LONGEST_FIRST))
    return sorted(items, key=rank)  # stable: collection order within each rank


def _skip_float16_where_it_cannot_compile(items) -> None:
    """Under an ISA setting where XLA cannot compile float16, its float16 cases are skipped
    (with the reason) rather than failed: they test nothing keyfan could change."""
    if not any(_FLOAT16_ID.search(item.name) for item in items) or float16_compiles():
        return
    skip = pytest.mark.skip(reason="XLA cannot compile float16 under this --xla_cpu_max_isa (jaxlib lacks the "
                                   "soft-float __extendhfsf2/__truncsfhf2); jaxlib itself needs AVX, where it can")
    for item in items:
        if _FLOAT16_ID.search(item.name):
            item.add_marker(skip)


@pytest.fixture(params=STREAMS)
def stream(request):
    """Each stream, with JAX's global flag set to the matching value for canonical comparisons."""
    with jax.threefry_partitionable(PARTITIONABLE[request.param]):
        yield request.param


def canonical(f, keys, batch_ndim: int):
    """The canonical pattern: ``f`` vmapped once per batch axis over ``keys``."""
    for _ in range(batch_ndim):
        f = jax.vmap(f)
    return f(keys)


def canonical_draw(f, key, batch):
    """``vmap^len(batch)(f)(kf.fan_out(key, batch))``, jitted: the reference for every sampler.

    Jitted because eager nested ``vmap`` compiles every primitive separately (seconds per case);
    jit and eager agree bitwise (tested on the samplers themselves). An empty result has no bits,
    only a shape and a dtype: those come from ``jax.eval_shape`` of the same program, which traces
    it (so JAX's own errors still surface) without compiling it (0.1-0.4 s a case)."""
    keys = kf.fan_out(key, batch)
    program = jax.jit(lambda keys: canonical(f, keys, len(batch)))
    expected = jax.eval_shape(program, keys)
    if math.prod(expected.shape) == 0:
        return np.zeros(expected.shape, expected.dtype)
    return program(keys)


def assert_bitwise_equal(actual, expected) -> None:
    """Same shape, same dtype, same bits (NaNs included)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.tobytes() == expected.tobytes(), "arrays differ bitwise"


def key_bits(keys):
    """Raw uint32 data of typed or raw keys, as a NumPy array."""
    if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        keys = jax.random.key_data(keys)
    return np.asarray(keys)


def tree_bits(tree) -> list:
    """Every leaf of a pytree as a NumPy array (typed keys as their raw key data)."""
    return [key_bits(leaf) if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) else np.asarray(leaf)
            for leaf in jax.tree.leaves(tree)]


def assert_trees_bitwise_equal(actual, expected) -> None:
    """Same pytree structure, and every leaf the same shape, dtype and bits."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected), (
        jax.tree.structure(actual), jax.tree.structure(expected))
    for a, e in zip(tree_bits(actual), tree_bits(expected), strict=True):
        assert_bitwise_equal(a, e)

