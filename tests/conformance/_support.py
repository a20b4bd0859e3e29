"""Shared pieces of the conformance suite: the flags this process runs under, the reference
(JAX's own Threefry with the matching ``jax_threefry_partitionable`` value), and comparisons.

The suite runs in-process under the default flags, and ``test_flags.py`` reruns it in
subprocesses under every combination of ``jax_threefry_partitionable``, ``jax_enable_x64`` and
``jax_explicit_x64_dtypes="allow"``, as JAX runs its own PRNG tests.
"""

from __future__ import annotations

import jax
import numpy as np

import keyfan as kf

STREAMS = ("threefry", "threefry-legacy")
PARTITIONABLE = {"threefry": True, "threefry-legacy": False}


def x64() -> bool:
    return bool(jax.config.jax_enable_x64)


def allow_x64_dtypes() -> bool:
    """64-bit dtypes can be requested explicitly (x64, or ``jax_explicit_x64_dtypes="allow"``)."""
    return x64() or explicit_x64_dtypes() == "ALLOW"


def explicit_x64_dtypes() -> str:
    """``jax_explicit_x64_dtypes``: ``"WARN"`` (default), ``"ERROR"`` or ``"ALLOW"`` (JAX < 0.8,
    without the flag, behaves as ``"WARN"``)."""
    mode = getattr(jax.config, "jax_explicit_x64_dtypes", "WARN")
    return getattr(mode, "name", str(mode)).upper()


def flags() -> str:
    return (f"jax_threefry_partitionable={jax.config.jax_threefry_partitionable}, "
            f"jax_enable_x64={x64()}, jax_explicit_x64_dtypes={explicit_x64_dtypes()}")


def keyfan_key(seed: int, stream: str):
    return kf.key(np.uint32(seed), stream)


def jax_key(seed: int):
    return jax.random.key(np.uint32(seed))


def reference(stream: str, fn, *args):
    """``fn(*args)`` with JAX's own Threefry keys, under the flag value matching ``stream``."""
    with jax.threefry_partitionable(PARTITIONABLE[stream]):
        return fn(*args)


def outcome(fn, *args):
    """``("ok", leaves as NumPy)`` or ``("error", exception type name)``."""
    try:
        out = fn(*args)
    except Exception as err:
        return "error", type(err).__name__
    return "ok", [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
                  for x in jax.tree.leaves(out)]


def assert_same_outcome(ours, theirs, what: str) -> None:
    """Both raised the same exception type, or gave leaves of the same shape, dtype and bits."""
    assert ours[0] == theirs[0], f"{what} [{flags()}]: keyfan {ours}, JAX {theirs}"
    if ours[0] == "error":
        assert ours[1] == theirs[1], f"{what} [{flags()}]: keyfan raised {ours[1]}, JAX {theirs[1]}"
        return
    for a, b in zip(ours[1], theirs[1], strict=True):
        assert (a.shape, a.dtype) == (b.shape, b.dtype), \
            f"{what} [{flags()}]: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
        assert a.tobytes() == b.tobytes(), f"{what} [{flags()}]: values differ bitwise:\n{a}\nvs JAX\n{b}"
