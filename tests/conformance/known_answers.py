"""Known-answer values, copied from JAX's own tests (they are facts about the streams).

Source: github.com/jax-ml/jax at commit cec06d116c05f0d52adfceee3d3b730fdbcb0ce5,
``tests/random_test.py`` (``PrngTest.testThreefry2x32``, ``testRngRandomBits``,
``testPRNGValues``, ``_RANDOM_VALUES_CASES``, ``test_prng_seeds_and_keys``). All values but the
Threefry-2x32 vectors are on JAX's original (``jax_threefry_partitionable=False``) stream, which
is keyfan's ``"threefry-legacy"``.
"""

from __future__ import annotations

import zlib

import numpy as np

# Random123 known-answer vectors for Threefry-2x32, 20 rounds: ((key), (counter), (expected)).
# From testThreefry2x32 (which cites the Random123 distribution's kat_vectors).
THREEFRY2X32 = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]

# testRngRandomBits: jax.random.bits(PRNGKey(1701), (3,), dtype) on the legacy stream.
BITS_1701 = {
    "uint8": [216, 115, 43],
    "uint16": [41682, 1300, 55017],
    "uint32": [56197195, 4200222568, 961309823],
    "uint64": [3982329540505020460, 16822122385914693683, 7882654074788531506],  # under x64
}

# testPRNGValues, seed 0, legacy stream.
RANDINT_0_INT32 = [[2, 1, 3], [6, 1, 5], [6, 3, 4]]  # randint(key, (3, 3), 0, 8, int32)
RANDINT_0_INT64 = [[7, 2, 6], [2, 1, 0], [6, 7, 7]]  # the same with int64, under x64
SPLIT_0_4 = [[2285895361, 1501764800], [1518642379, 4090693311],
             [433833334, 4221794875], [839183663, 3740430601]]
FOLD_IN_0_4 = [2285895361, 433833334]

# _RANDOM_VALUES_CASES for "threefry2x32": (name, shape, dtype, params, expected, rtol, x64).
# JAX seeds each case with zlib.adler32(name + "threefry2x32"); values are printed to ~6
# digits, so floats are compared with JAX's tolerance (assertAllClose: 1e-6, or the case's
# rtol). x64: None = any mode, False = 32-bit mode only (OnX64.SKIP), True = x64 only.
DISTRIBUTIONS = [
    ("bernoulli", (5,), None, {"p": 0.5}, [False, True, True, True, False], None, False),
    ("beta", (5,), "float32", {"a": 0.8, "b": 0.9}, [0.13259, 0.824893, 0.948363, 0.964155, 0.235448], None, None),
    ("bits", (5,), "uint8", {}, [10, 158, 82, 54, 158], None, None),
    ("bits", (5,), "uint16", {}, [6738, 38161, 50695, 57337, 61600], None, None),
    ("bits", (5,), "uint32", {}, [1978747883, 4134381225, 3628107870, 689687174, 2788938207], None, None),
    ("bits", (5,), "uint64", {}, [17649965731882839947, 1415307058040849897, 8282622628079774249,
                                  14024425113645909402, 2012979996110532418], None, True),
    ("cauchy", (5,), "float32", {}, [-0.088416, -10.169713, 3.49677, -1.18056, 0.34556], 1e-5, None),
    ("dirichlet", (2,), "float32", {"alpha": np.array([0.5, 0.6, 0.7], dtype="float32")},
     [[0.003128, 0.009694, 0.987178], [0.025938, 0.479091, 0.494971]], None, None),
    ("double_sided_maxwell", (5,), "float32", {"loc": 1, "scale": 2},
     [-2.408914, -3.370437, 3.235352, -0.907734, -1.708732], None, False),
    ("exponential", (5,), "float32", {}, [0.526067, 0.043046, 0.039932, 0.46427, 0.123886], None, None),
    ("gamma", (5,), "float32", {"a": 0.8}, [0.824221, 1.724476, 0.502882, 5.386132, 0.685543], None, None),
    ("gumbel", (5,), "float32", {}, [2.06701, 0.911726, 0.145736, 0.185427, -0.00711], None, None),
    ("laplace", (5,), "float32", {}, [0.578939, -0.204902, 0.555733, 0.911053, -0.96456], None, None),
    ("loggamma", (5,), "float32", {"a": 0.8}, [0.240559, -3.575443, -0.450946, -2.161372, -2.943277], None, None),
    ("logistic", (5,), "float32", {}, [0.19611, -1.709053, -0.274093, -0.208322, -1.675489], None, None),
    ("maxwell", (5,), "float32", {}, [3.070779, 0.908479, 1.521317, 0.875551, 1.306137], None, None),
    ("multivariate_normal", (2,), "float32", {"mean": np.ones((1, 3)), "cov": np.eye(3)},
     [[1.067826, 1.215599, 0.234166], [-0.237534, 1.32591, 1.413987]], None, False),
    ("normal", (5,), "float32", {}, [-1.173234, -1.511662, 0.070593, -0.099764, 1.052845], None, None),
    ("pareto", (5,), "float32", {"b": 0.5}, [2.751398, 1.281863, 87.85448, 1.254542, 2.824487], None, None),
    ("poisson", (5,), "int32", {"lam": 5}, [7, 3, 6, 11, 6], None, None),
    ("rademacher", (5,), "int32", {}, [-1, -1, -1, -1, 1], None, False),
    ("randint", (5,), "int32", {"minval": 0, "maxval": 10}, [0, 5, 7, 7, 5], None, None),
    ("truncated_normal", (5,), "float32", {"lower": 0, "upper": 2},
     [0.582807, 1.709771, 0.159513, 0.861376, 0.36148], None, None),
    ("uniform", (5,), "float32", {}, [0.298671, 0.073213, 0.873356, 0.260549, 0.412797], None, None),
    ("weibull_min", (5,), "float32", {"scale": 1, "concentration": 1},
     [1.605863, 0.841809, 0.224218, 0.4826, 0.027901], None, None),
]


def distribution_seed(name: str) -> int:
    """The seed JAX's RandomValuesCase uses for a case (``RandomValuesCase._seed``)."""
    return zlib.adler32((name + "threefry2x32").encode())


# test_prng_seeds_and_keys: (seed, type, key data under x64, key data in 32-bit mode). JAX's
# table gives one column per mode; a Python int outside int32 under jit in 32-bit mode is an
# OverflowError there (written None).
_I32 = np.iinfo(np.int32)
SEEDS = [
    (0, int, [0, 0], [0, 0]),
    (1, np.int32, [0, 1], [0, 1]),
    (2, np.uint32, [0, 2], [0, 2]),
    (3, np.int64, [0, 3], [0, 3]),
    (-1, int, [4294967295, 4294967295], [0, 4294967295]),
    (-2, np.int32, [0, 4294967294], [0, 4294967294]),
    (-3, np.int64, [4294967295, 4294967293], [0, 4294967293]),
    (int(_I32.max) + 100, int, [0, 2147483747], [0, 2147483747]),
    (int(_I32.max) + 101, np.uint32, [0, 2147483748], [0, 2147483748]),
    (int(_I32.min) - 100, int, [4294967295, 2147483548], [0, 2147483548]),
    (int(_I32.min) - 101, np.int64, [4294967295, 2147483547], [0, 2147483547]),
]
