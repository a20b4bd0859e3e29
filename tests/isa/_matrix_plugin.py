"""What one process of the full ISA matrix runs: a shard of the bitwise tests, on one stream.

Loaded with ``-p tests.isa._matrix_plugin`` by ``tests/isa/test_isa_matrix.py`` only:

* ``--isa-shard K/N`` keeps the K-th of N shards (K from 1) of the collected tests, whole test
  files assigned to shards by their measured cost (:data:`FILE_COST`), so the matrix's processes
  are of similar length and the outer run's xdist workers share them evenly. The N shards of one
  setting together run every selected test once.
* ``--isa-one-stream`` leaves out the parametrizations on the ``"threefry-legacy"`` stream. The
  two streams differ only in how raw bits are derived from a key (integer Threefry, the same on
  every ISA: ``tests/isa/test_across_isas.py`` asserts the raw bits of both streams identical
  on every setting); from raw bits on, every float and transform path is the same code, which
  the ``"threefry"`` cases run. The suite's own (native) run keeps both streams.
"""

from __future__ import annotations

import pytest

LEGACY = "threefry-legacy"

FILE_COST = {
    "tests/test_sample.py": 394, "tests/conformance/test_samplers.py": 233, "tests/test_ensemble_layout.py": 211,
    "tests/test_transforms_identity.py": 129, "tests/test_public_programs.py": 113, "tests/streams/test_golden.py": 60,
    "tests/test_portable.py": 90, "tests/test_ensemble_blocks.py": 86, "tests/test_ensemble_kill.py": 84,
    "tests/test_recipes.py": 83, "tests/test_ensemble_train.py": 62, "tests/streams/test_streams.py": 55,
    "tests/streams/test_per_key.py": 44, "tests/test_bench.py": 36, "tests/test_ensemble.py": 35,
    "tests/test_keys.py": 35, "tests/multidevice/test_sharded_sample.py": 32, "tests/test_transforms.py": 28,
    "tests/test_bench_trainer.py": 23, "tests/test_flat.py": 21, "tests/test_sanitize.py": 20,
}
"""Seconds per file of its bitwise tests under ``--xla_cpu_max_isa=AVX2`` (both streams, a loaded
2-core machine, 2026-12-07; test_golden.py: 103 less the legacy half of test_golden_values, which
runs per stream since); a file not listed weighs one second per test. Only the balance of the
shards depends on it, never which tests run."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("keyfan ISA matrix")
    group.addoption("--isa-shard", default=None, metavar="K/N", help="run the K-th of N shards of the tests")
    group.addoption("--isa-one-stream", action="store_true", help=f"leave out the {LEGACY!r} parametrizations")


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` as ``(K, N)``, with ``1 <= K <= N``."""
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise pytest.UsageError(f"--isa-shard takes K/N with 1 <= K <= N, got {text!r}")
    return int(k), int(n)


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


def _file(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def _on_legacy_stream(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and any(value == LEGACY for value in callspec.params.values())


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        (drop if config.getoption("isa_one_stream") and _on_legacy_stream(item) else keep).append(item)
    shard = config.getoption("isa_shard")
    if shard:
        k, n = parse_shard(shard)
        counts: dict[str, int] = {}
        for item in keep:
            counts[_file(item)] = counts.get(_file(item), 0) + 1
        placed = shard_of_files({p: FILE_COST.get(p, float(c)) for p, c in counts.items()}, n)
        keep, out = [i for i in keep if placed[_file(i)] == k], [i for i in keep if placed[_file(i)] != k]
        drop += out
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
