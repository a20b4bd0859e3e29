"""The full ISA matrix's shards run every bitwise test once, and only the legacy stream's
parametrizations are left out (``tests/isa/_matrix_plugin.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.isa._matrix_plugin import bitwise_files, shard_files, shard_of_files
from tests.isa.test_isa_matrix import OWN_MATRIX, OWN_MATRIX_TESTS, SHARDS

ROOT = Path(__file__).resolve().parents[2]
FILES = ["tests/test_keys.py", "tests/test_flat.py", "tests/streams/test_per_key.py"]


def collected(*args: str) -> set[str]:
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
           "-p", "tests.isa._matrix_plugin", "-m", "bitwise", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return {line for line in proc.stdout.splitlines() if "::" in line}


def test_shards_partition_the_files_and_balance_their_cost():
    costs = {"a": 10.0, "b": 7.0, "c": 5.0, "d": 4.0, "e": 1.0}
    placed = shard_of_files(costs, 3)
    assert set(placed) == set(costs) and set(placed.values()) == {1, 2, 3}
    loads = [sum(c for p, c in costs.items() if placed[p] == k) for k in (1, 2, 3)]
    assert max(loads) - min(loads) <= max(costs.values()), loads
    assert shard_of_files(dict(reversed(costs.items())), 3) == placed  # the order given does not matter


@pytest.mark.slow  # collects the whole suite, then each shard: the shards serve the slow tier's full matrix alone
def test_the_shards_together_run_every_threefry_bitwise_test_once_and_no_legacy_one():
    """The files chosen before collection miss no bitwise test of the whole suite (a test marked
    ``bitwise`` some other way than ``mark.bitwise`` in its file's text would be missed: this fails)."""
    own = [f"--ignore={path}" for path in OWN_MATRIX + OWN_MATRIX_TESTS]
    every = collected("tests", *own)
    one_stream = collected("--isa-one-stream", "tests", *own)
    assert one_stream and one_stream < every
    assert all("threefry-legacy" in test for test in every - one_stream)
    assert not any("threefry-legacy" in test for test in one_stream)
    shards = [collected("--isa-one-stream", *shard_files(k, SHARDS, exclude=OWN_MATRIX + OWN_MATRIX_TESTS))
              for k in range(1, SHARDS + 1)]
    assert sum(len(s) for s in shards) == len(one_stream) and set().union(*shards) == one_stream


def test_shard_files_partition_the_files_with_bitwise_tests():
    files = bitwise_files(exclude=OWN_MATRIX)
    assert "tests/test_sample.py" in files and not set(OWN_MATRIX) & set(files)
    shards = [shard_files(k, 3, exclude=OWN_MATRIX) for k in (1, 2, 3)]
    assert sorted(f for s in shards for f in s) == sorted(files) and all(shards)


@pytest.mark.parametrize("k,n", [(0, 3), (4, 3), (1, 0)])
def test_a_shard_out_of_range_is_an_error(k, n):
    with pytest.raises(ValueError, match=f"k must be in 1..n={n}"):
        shard_files(k, n)
