"""More than ``2**32`` values from one key (issue 14, case 5), without materialising them.

* Abstract: ``jax.jit(f).lower(key)`` of draws and splits with more than ``2**32`` elements
  works on both streams and gives JAX's output types (keyfan used to refuse them).
* Values: a slice of a jitted giant draw, ``jax.jit(lambda k: bits(k, (2**33,))[j:j + 4])``,
  computes only the slice when the whole program is elementwise, so JAX's values at positions
  past ``2**32`` can be compared with keyfan's. JAX's CPU lowering of its Threefry hash is a
  rolled loop that XLA cannot slice through, so the subprocess registers JAX's own unrolled
  (GPU/TPU) lowering for CPU (bitwise the same hash), and caps its address space so a
  materialised draw fails fast instead of exhausting memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import pytest

from tests.conformance._support import STREAMS, allow_x64_dtypes, jax_key, keyfan_key, reference

BIG = [(2**33,), (3, 2**31 + 5), (2**32 + 7,)]


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("shape", BIG, ids=str)
def test_giant_draws_lower_like_jax(stream, shape):
    dtypes = ["uint8", "uint16", "uint32"] + (["uint64"] if allow_x64_dtypes() else [])

    def program(key):
        out = {dt: jax.random.bits(key, shape, dt) for dt in dtypes}
        out["normal"] = jax.random.normal(key, shape, "bfloat16")
        out["uniform"] = jax.random.uniform(key, shape)
        out["split"] = jax.random.split(key, shape)
        return out

    def lowered_types(key):
        info = jax.jit(program).lower(key).out_info
        return [(s.shape, str(s.dtype)) for s in jax.tree.leaves(info)]

    ours = lowered_types(keyfan_key(0, stream))
    theirs = reference(stream, lowered_types, jax_key(0))
    assert [s for s, _ in ours] == [s for s, _ in theirs]
    # dtypes, but for the keys of "split", whose dtype names the implementation
    assert [d for d, _ in zip(ours, theirs, strict=True) if not d[1].startswith("key")] == \
        [t for t in theirs if not t[1].startswith("key")]


_VALUES = r'''
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (16 * 2**30, 16 * 2**30))
import jax, jax.numpy as jnp, numpy as np
from jax import lax
from jax._src.interpreters import mlir
from jax._src.random import threefry2x32 as tf
import keyfan as kf

# JAX's unrolled Threefry lowering (its default off CPU), so that slices fuse into the hash.
mlir.register_lowering(tf.threefry2x32_p, tf._threefry2x32_lowering_rule, platform="cpu")
M = 2**32 - 1
failures, count = [], 0

def check(name, ours, theirs):
    global count
    count += 1
    a, b = np.asarray(ours), np.asarray(theirs)
    if a.dtype != b.dtype or a.tobytes() != b.tobytes():
        failures.append(f"{name}: keyfan {a.tolist()} ({a.dtype}), JAX {b.tolist()} ({b.dtype})")

def sliced(fn, key, index):
    return jax.jit(lambda k: fn(k)[index])(key)

def data(keys):
    return jax.random.key_data(keys)

k, raw = kf.key(7), jax.random.key(7)
with jax.threefry_partitionable(True):
    for shape, dtype, index in [((2**33,), "uint32", np.s_[2**32 + 5: 2**32 + 9]),
                                ((2**34 + 3,), "uint8", np.s_[-6:]),
                                ((2**33 + 1,), "uint16", np.s_[2**32 - 2: 2**32 + 2]),
                                ((3, 2**31 + 5), "uint32", np.s_[2, -4:])]:
        fn = lambda key, shape=shape, dtype=dtype: jax.random.bits(key, shape, dtype)
        check(f"threefry bits{shape} {dtype}", sliced(fn, k, index), sliced(fn, raw, index))
    fn = lambda key: jax.random.normal(key, (2**32 + 10,))
    check("threefry normal", sliced(fn, k, np.s_[-5:]), sliced(fn, raw, np.s_[-5:]))
    fn = lambda key: data(jax.random.split(key, 2**34))
    check("threefry split(2**34)", sliced(fn, k, 2**33 + 3), sliced(fn, raw, 2**33 + 3))
    check("kf.at(key, 2**33 + 3)", data(kf.at(k, 2**33 + 3)), sliced(fn, raw, 2**33 + 3))

k, raw = kf.key(7, "threefry-legacy"), jax.random.key(7)
with jax.threefry_partitionable(False):
    # JAX 0.4's block layout: nblocks, rem = divmod(words, 2**32 - 1); the last block is
    # computable through jax.random.bits itself, the others through JAX's split + hash.
    for total in (2 * M + 9, M + 1000):
        fn = lambda key, total=total: jax.random.bits(key, (total,))
        check(f"legacy bits({total}) last block", sliced(fn, k, np.s_[-5:]), sliced(fn, raw, np.s_[-5:]))
        nblocks = total // M
        block_keys = data(jax.random.split(raw, nblocks + 1))
        for b, within in [(0, 3), (0, M - 2), (nblocks - 1, 2**31 + 1)]:
            ref = jax.jit(lambda bk, w=within: tf.threefry_2x32(bk, lax.iota(np.uint32, M))[w: w + 2])(block_keys[b])
            start = b * M + within
            check(f"legacy bits({total}) block {b} word {within}", sliced(fn, k, np.s_[start: start + 2]), ref)
    fn = lambda key: jax.random.bits(key, (2 * M + 9,), "uint8")  # 8-bit values of the same words
    check("legacy uint8 past 2**34", sliced(fn, k, np.s_[-7:]), sliced(fn, raw, np.s_[-7:]))
    # A split into 2**31 keys or more hashes a wrapped uint32 iota(2n) in JAX; keyfan follows.
    fn = lambda key: data(jax.random.split(key, 2**31 + 8))
    for i in (5, 2**30 + 1, 2**31 + 6):
        check(f"legacy split(2**31 + 8)[{i}]", sliced(fn, k, i), sliced(fn, raw, i))
    fn = lambda key: data(jax.random.split(key, 2**32 + 8))
    for i in (3, 2**31 + 4, 2**32 + 7):
        check(f"legacy split(2**32 + 8)[{i}]", sliced(fn, k, i), sliced(fn, raw, i))
print(json.dumps({"count": count, "failures": failures}))
'''


@pytest.mark.bitwise
@pytest.mark.slow
def test_values_past_2_to_the_32_equal_jax():
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_ENABLE_X64="0")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_VALUES)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["count"] >= 20 and not report["failures"], "\n".join(report["failures"])


def test_bits_shape_and_dtype_past_2_to_the_32_need_no_memory():
    # jax.eval_shape never runs the implementation; lowering does, which keyfan used to refuse.
    key = keyfan_key(0, "threefry")
    out = jax.eval_shape(lambda k: jax.random.bits(k, (2**33,), jnp.uint8), key)
    assert out.shape == (2**33,)
