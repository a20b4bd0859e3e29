"""keyfan._bench: the runner's bookkeeping and the report's ratios (timing itself is not tested)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import keyfan as kf
from keyfan._bench import Case, report, run_cases, runner, suite
from keyfan._bench.runner import Result
from keyfan.cli import app
from tests.conftest import assert_bitwise_equal


def test_run_cases_times_every_case_and_reports_progress():
    calls = {"a": 0, "b": 0}

    def make(name):
        def fn():
            calls[name] += 1
            return jnp.ones(3)
        return fn

    seen = []
    results = run_cases([Case("a", "g", make("a"), 3, "canonical"), Case("b", "g", make("b"), 3, "keyfan")],
                        runs=5, warmup=2, min_sample_ms=0, progress=seen.append)
    assert [r.name for r in results] == ["a", "b"]
    assert calls == {"a": 7, "b": 7}
    assert seen == ["a", "b"] * 5
    assert all(r.runs == 5 and r.p10_ms <= r.median_ms <= r.p90_ms for r in results)


def test_each_sample_averages_enough_calls_to_last_min_sample_ms(monkeypatch):
    """With a clock that advances 0.5 ms per call: 10 calls per 5 ms sample, 0.5 ms per call."""
    clock = {"now": 0.0}
    monkeypatch.setattr(runner.time, "perf_counter", lambda: clock["now"])
    calls = []

    def fn():
        clock["now"] += 0.5e-3
        calls.append(1)
        return jnp.ones(1)

    (result,) = run_cases([Case("a", "g", fn, 1, "keyfan")], runs=4, warmup=1, min_sample_ms=5.0)
    assert result.calls == 10
    assert result.median_ms == pytest.approx(0.5) and result.p10_ms == pytest.approx(0.5)
    assert len(calls) == 1 + 3 + 4 * 10  # warm-up, calibration, samples


def test_duplicate_case_names_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        run_cases([Case("a", "g", lambda: 1), Case("a", "g", lambda: 2)], runs=3)


def _result(name, group, role, ms, outputs=10):
    return Result(name, group, role, outputs, 21, ms, ms, ms)


def test_ratios_and_targets():
    results = [
        _result("2a vmap(normal)(split(key, 1e6))", "n6", "canonical", 30.0),
        _result("2b one-key normal(key, (1e6,))", "n6", "one-key", 6.0),
        _result("2c numpy default_rng().normal(1e6)", "n6", "numpy", 12.0),
        _result("keyfan normal N=1e6 (jit)", "n6", "keyfan", 4.0),
        _result("normal 1e6x1: keyfan (jit)", "normal 1e6x1", "keyfan", 4.0, 10**6),
        _result("normal 1e5x10: keyfan (jit)", "normal 1e5x10", "keyfan", 5.0, 10**6),
        _result("normal 999999x1: keyfan (jit)", "normal 999999x1", "keyfan", 9.0, 999_999),  # not in the set
    ]
    ratio = report.ratios(results)
    assert ratio["keyfan normal N=1e6 (jit)"] == {"vs_canonical": 7.5, "vs_numpy": 3.0}
    assert ratio["normal 1e6x1: keyfan (jit)"]["vs_canonical"] is None
    targets = {t["target"]: t for t in report.targets(results)}
    assert targets["keyfan normal N=1e6 speed-up vs canonical split+vmap"]["met"] is True
    assert targets["keyfan normal N=1e6 speed-up vs one-key draw"]["value"] == pytest.approx(1.5)
    spread = targets["keyfan jit: slowest / fastest time per output over N x n = "
                     "1e6x1, 1e5x10, 1e6x3, 1e3x128, 1e4x1000"]
    assert spread["value"] == pytest.approx(1.25) and spread["met"] is True


def test_json_and_png_are_written(tmp_path):
    results = [_result("a", "g", "canonical", 2.0), _result("b", "g", "keyfan", 1.0)]
    doc = report.write_json(tmp_path / "bench.json", results, quick=True)
    assert json.loads((tmp_path / "bench.json").read_text()) == doc
    assert doc["cases"][1]["vs_canonical"] == 2.0 and "cpu" in doc["machine"]
    report.write_png(tmp_path / "bench.png", results)
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bench_rejects_too_few_runs(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--runs", "1", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "runs" in result.output


@pytest.mark.slow  # the benchmark's fairness, not a library promise (the samplers' bits: tests/test_sample.py)
@pytest.mark.bitwise
def test_sampler_cases_time_the_same_bits():
    """Each sampler group of the suite (JAX's own split + vmap, the same on keyfan keys, keyfan)
    computes the same values, so its ratios compare like with like."""
    cases = suite.sampler_cases(kf.key(0), jax.random.PRNGKey(0), n_examples=500)
    groups: dict[str, list] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    assert len(groups) == len(suite.SAMPLERS)
    for group in groups.values():
        assert [c.role for c in group] == ["canonical", "keyfan keys", "keyfan"]
        reference = group[0].fn()
        for case in group[1:]:
            assert_bitwise_equal(case.fn(), reference)


def test_ensemble_targets_are_read_at_350_members_and_k32_only():
    results = [
        _result("ensemble.init.350xDense", "ensemble init", "keyfan", 22.0),
        _result("ensemble.init.35xDense", "ensemble init", "keyfan", 7.0),
        _result("ensemble.train_step.loop.K32", "ensemble train step K=32", "canonical", 4.0),
        _result("ensemble.train_step.vmap.K32", "ensemble train step K=32", "keyfan", 0.5),
        _result("ensemble.train_step.loop.K8", "ensemble train step K=8", "canonical", 1.0),
        _result("ensemble.train_step.vmap.K8", "ensemble train step K=8", "keyfan", 0.4),  # quick: no target
    ]
    targets = {t["target"]: t for t in report.targets(results) if t["target"].startswith("ensemble")}
    assert set(targets) == {"ensemble.init.350xDense: median time (ms)",
                            "ensemble.train_step.vmap.K32: speed-up over the Python loop"}
    assert targets["ensemble.train_step.vmap.K32: speed-up over the Python loop"]["value"] == pytest.approx(8.0)


@pytest.mark.slow  # the benchmark's fairness, not a library promise (portable bits: tests/test_portable.py)
@pytest.mark.bitwise
def test_portable_group_times_canonical_default_and_portable_and_states_the_cost():
    """Each portable group: canonical split + vmap, keyfan's default, keyfan portable=True, the
    same draw sizes; the default equals the canonical bits, and the report states portable/default."""
    from keyfan._bench.portable import PORTABLE_SAMPLERS, portable_cases

    cases = portable_cases(kf.key(0), jax.random.PRNGKey(0), n_examples=200)
    groups: dict[str, list] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    assert len(groups) == len(PORTABLE_SAMPLERS)
    for group in groups.values():
        assert [c.role for c in group] == ["canonical", "keyfan", "portable"]
        canonical, default, portable = (np.asarray(c.fn()) for c in group)
        assert canonical.shape == default.shape == portable.shape
        assert_bitwise_equal(default, canonical)  # JAX's own keys: the "threefry" stream's bits
    results = [_result(c.name, c.group, c.role, {"canonical": 4.0, "keyfan": 1.0, "portable": 2.5}[c.role])
               for c in cases]
    stated = [t for t in report.targets(results) if "portable / default" in t["target"]]
    assert len(stated) == len(PORTABLE_SAMPLERS) and all(t["value"] == 2.5 and t["met"] for t in stated)
