"""The conformance suite under every combination of JAX's global flags, in subprocesses.

JAX runs its PRNG tests once per value of ``jax_threefry_partitionable`` and
``jax_enable_x64``; so does keyfan: the rest of ``tests/conformance`` runs in-process under the
defaults, and here once more per other combination (and with
``jax_explicit_x64_dtypes="allow"``), each in a fresh process because the flags are read when
JAX starts. Of the sampler sweep, the subprocesses rerun the default tier's part: ``test_samplers.CORE``
(every bits width and bits-to-value path) on ``"threefry"`` and ``test_samplers.LEGACY_DEFAULT``
(every raw bits width and a float) on the legacy stream; the rest run under the defaults only, to
keep the matrix to minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._xla_flags import compilation_cache_env

ROOT = Path(__file__).resolve().parents[2]

FLAGS = {
    "partitionable=0,x64=0": {"JAX_THREEFRY_PARTITIONABLE": "0", "JAX_ENABLE_X64": "0"},
    "partitionable=1,x64=1": {"JAX_THREEFRY_PARTITIONABLE": "1", "JAX_ENABLE_X64": "1"},
    "partitionable=0,x64=1": {"JAX_THREEFRY_PARTITIONABLE": "0", "JAX_ENABLE_X64": "1"},
    "partitionable=1,x64=0,explicit_x64_dtypes=allow": {
        "JAX_THREEFRY_PARTITIONABLE": "1", "JAX_ENABLE_X64": "0", "JAX_EXPLICIT_X64_DTYPES": "allow"},
}



@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory) -> dict[str, str]:
    """JAX's persistent compilation cache, shared by the flag sets this process runs one after
    the other: most programs do not change with the global flags (the JAX reference runs under
    the ``jax_threefry_partitionable`` value of its stream, keyfan's streams ignore the flag, and
    x64 changes only the programs whose dtypes it widens), so a later flag set loads what an
    earlier one compiled instead of compiling it again. An entry's key hashes the program's HLO,
    the compile options, the XLA flags and the jaxlib version: a program that a flag set changes
    misses and is compiled. Each pytest worker has its own directory (entries are written
    without a lock)."""
    return compilation_cache_env(tmp_path_factory.mktemp("xla_cache"))


@pytest.mark.slow  # 277 CPU-s for the four without the shared cache, 222 with it (65-77 per run, 22 and 46 for
# the runs that find the programs of the earlier run with the same x64 setting), main 8374eff
@pytest.mark.skipif(os.environ.get("KEYFAN_CONFORMANCE_QUICK") == "1", reason="already a flag-matrix run")
@pytest.mark.parametrize("name", FLAGS)
def test_conformance_under_flags(name, compilation_cache):
    env = dict(os.environ, JAX_PLATFORMS="cpu", KEYFAN_CONFORMANCE_QUICK="1", **compilation_cache, **FLAGS[name])
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow",
           "tests/conformance", "--deselect", "tests/conformance/test_flags.py"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    tail = "\n".join(proc.stdout.splitlines()[-30:])
    assert proc.returncode == 0, f"conformance suite failed under {name}:\n{tail}\n{proc.stderr[-2000:]}"
    assert " passed" in tail and "failed" not in tail, tail
