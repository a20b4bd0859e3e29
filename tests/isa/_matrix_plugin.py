"""What one process of the full ISA matrix runs: a shard of the bitwise tests, on one stream.

* :func:`shard_files` names the test files of the K-th of N shards before the process starts:
  the files that mark a test ``bitwise``, whole files assigned to shards by their measured cost
  (:data:`FILE_COST`), so the matrix's processes are of similar length and the outer run's xdist
  workers share them evenly. The N shards of one setting together hold every such file once, and
  each process imports and collects its own files only (collecting the whole suite to keep a third
  of it cost each process about 12 CPU-s).
* ``-p tests.isa._matrix_plugin --isa-one-stream`` leaves out the parametrizations on the
  ``"threefry-legacy"`` stream. The two streams differ only in how raw bits are derived from a key
  (integer Threefry, the same on every ISA: ``tests/isa/test_across_isas.py`` asserts the raw bits
  of both streams identical on every setting); from raw bits on, every float and transform path is
  the same code, which the ``"threefry"`` cases run. The suite's own (native) run keeps both streams.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

LEGACY = "threefry-legacy"

FILE_COST = {
    "tests/test_sample.py": 267, "tests/conformance/test_samplers.py": 177, "tests/test_ensemble_layout.py": 211,
    "tests/test_transforms_identity.py": 129, "tests/test_public_programs.py": 113, "tests/streams/test_golden.py": 60,
    "tests/test_portable.py": 90, "tests/test_ensemble_blocks.py": 86, "tests/test_ensemble_kill.py": 84,
    "tests/test_recipes.py": 83, "tests/test_ensemble_train.py": 62, "tests/streams/test_streams.py": 26,
    "tests/streams/test_per_key.py": 26, "tests/test_bench.py": 36, "tests/test_ensemble.py": 35,
    "tests/test_keys.py": 24, "tests/multidevice/test_sharded_sample.py": 32, "tests/test_transforms.py": 28,
    "tests/test_bench_trainer.py": 23, "tests/test_flat.py": 21, "tests/test_sanitize.py": 20,
    "tests/conformance/test_known_answers.py": 14, "tests/test_vmap.py": 13,
    "tests/conformance/test_keys_and_seeds.py": 12, "tests/conformance/test_poisson.py": 10,
}
"""Seconds per file of its bitwise tests under ``--xla_cpu_max_isa=AVX2`` (a loaded 2-core machine,
2026-12-07, both streams; the files with legacy-stream cases scaled by their one-stream share of
the native run's CPU time, and the last four files at 1.3x their native time); a file not listed
weighs :data:`UNLISTED_COST`. Only the balance of the shards depends on it, never which tests run."""

UNLISTED_COST = 10.0
"""The weight of a file with bitwise tests that :data:`FILE_COST` does not list (seconds)."""

ROOT = Path(__file__).resolve().parents[2]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("keyfan ISA matrix")
    group.addoption("--isa-one-stream", action="store_true", help=f"leave out the {LEGACY!r} parametrizations")


def bitwise_files(exclude: Iterable[str] = ()) -> list[str]:
    """The test files (paths from the repository root) that mark a test ``bitwise``, less ``exclude``."""
    skip = set(exclude)
    files = (str(p.relative_to(ROOT)) for p in sorted((ROOT / "tests").rglob("test_*.py")))
    return [f for f in files if f not in skip and "mark.bitwise" in (ROOT / f).read_text()]


def shard_files(k: int, n: int, exclude: Iterable[str] = ()) -> list[str]:
    """The files of the ``k``-th of ``n`` shards (``1 <= k <= n``) of :func:`bitwise_files`."""
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..n={n}, got {k}.")
    files = bitwise_files(exclude)
    placed = shard_of_files({f: FILE_COST.get(f, UNLISTED_COST) for f in files}, n)
    return [f for f in files if placed[f] == k]


def shard_of_files(costs: dict[str, float], shards: int) -> dict[str, int]:
    """Each file's shard (1..shards): the costliest file first, each to the lightest shard so far
    (ties to the lowest number); deterministic for the same files and costs."""
    loads = [0.0] * shards
    placed = {}
    for path in sorted(costs, key=lambda p: (-costs[p], p)):
        lightest = min(range(shards), key=lambda i: (loads[i], i))
        loads[lightest] += costs[path]
        placed[path] = lightest + 1
    return placed


def _on_legacy_stream(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and any(value == LEGACY for value in callspec.params.values())


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("isa_one_stream"):
        return
    drop = [item for item in items if _on_legacy_stream(item)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if not _on_legacy_stream(item)]
