"""The full ISA matrix's shards run every selected bitwise test once, and only the legacy stream's
parametrizations are left out (``tests/isa/_matrix_plugin.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.isa._matrix_plugin import parse_shard, shard_of_files

ROOT = Path(__file__).resolve().parents[2]
FILES = ["tests/test_keys.py", "tests/test_flat.py", "tests/streams/test_per_key.py"]


def collected(*options: str) -> set[str]:
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
           "-p", "tests.isa._matrix_plugin", "-m", "bitwise", *options, *FILES]
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


@pytest.mark.slow  # five collection processes; the shards serve the slow tier's full matrix alone
def test_the_shards_together_run_every_threefry_test_once_and_no_legacy_one():
    every = collected()
    one_stream = collected("--isa-one-stream")
    assert one_stream and one_stream < every
    assert all("threefry-legacy" in test for test in every - one_stream)
    assert not any("threefry-legacy" in test for test in one_stream)
    shards = [collected("--isa-one-stream", f"--isa-shard={k}/3") for k in (1, 2, 3)]
    assert sum(len(s) for s in shards) == len(one_stream) and set().union(*shards) == one_stream


@pytest.mark.parametrize("bad", ["0/3", "4/3", "1", "a/b", "1/0"])
def test_a_bad_shard_is_a_usage_error(bad):
    with pytest.raises(pytest.UsageError, match="--isa-shard takes K/N"):
        parse_shard(bad)
    assert parse_shard("2/3") == (2, 3)
