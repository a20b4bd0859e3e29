"""The `keyfan ensemble` command and the run behind it: end to end, reproducible bit for bit."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from keyfan._bench.ensemble import bench_cases
from keyfan.cli import app

TINY = ["--members", "2", "--epochs", "2", "--seed", "5"]


def test_cli_trains_reports_and_writes_png_and_json(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["ensemble", *TINY, "--out-dir", str(out)], env={"COLUMNS": "140"})
    assert result.exit_code == 0, result.output
    for row in ("member 0", "member 1", "member mean", "ensemble", "accuracy", "NLL", "Brier", "ECE"):
        assert row in result.output
    assert (out / "ensemble.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "metrics.json").read_text())
    assert report["config"]["members"] == 2 and report["config"]["seed"] == 5 and report["task"] == "classification"
    assert len(report["members"]) == 2
    assert set(report["ensemble"]) == {"accuracy", "nll", "brier", "ece"}
    assert 0.0 <= report["ensemble"]["accuracy"] <= 1.0


def test_cli_regression_run(tmp_path):
    out = tmp_path / "reg"
    result = CliRunner().invoke(app, ["ensemble", *TINY, "--dataset", "regression", "-o", str(out)],
                                env={"COLUMNS": "140"})
    assert result.exit_code == 0, result.output
    report = json.loads((out / "metrics.json").read_text())
    assert report["task"] == "gaussian" and set(report["ensemble"]) == {"rmse", "nll", "coverage_2sigma"}
    assert (out / "ensemble.png").stat().st_size > 10_000


def test_cli_rejects_bad_options(tmp_path):
    result = CliRunner().invoke(app, ["ensemble", "--members", "0", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "members must be at least 1" in result.output
    result = CliRunner().invoke(app, ["ensemble", "--dataset", "mnist", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "dataset must be one of" in result.output


def test_same_seed_same_json_bytes_other_seed_other_numbers(tmp_path):
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        result = CliRunner().invoke(app, ["ensemble", "--members", "2", "--epochs", "2", "--seed", seed,
                                          "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    first, again, other = ((tmp_path / n / "metrics.json").read_bytes() for n in "abc")
    assert first == again
    assert json.loads(other)["ensemble"] != json.loads(first)["ensemble"]
    # a run with other settings in a run's directory is refused, not resumed (as a process: test_ensemble_kill.py)
    refused = CliRunner().invoke(app, ["ensemble", "--members", "2", "--epochs", "2", "--seed", "6",
                                       "-o", str(tmp_path / "a")], env={"COLUMNS": "200"})
    assert refused.exit_code == 2, refused.output
    assert "holds a run with other settings (seed differ)" in " ".join(refused.output.replace("│", " ").split())
    assert (tmp_path / "a" / "metrics.json").read_bytes() == first


@pytest.mark.slow  # 16 CPU-s: benchmark tooling; run_cases and its JSON: tests/test_bench.py (default tier)
def test_bench_cases_run():
    cases = bench_cases(quick=True)
    assert [c.name for c in cases] == ["ensemble.init.35xDense", "ensemble.train_step.vmap.K8",
                                       "ensemble.train_step.vmap_xla_sums.K8", "ensemble.train_step.loop.K8"]
    for case in cases:
        assert case.run() is not None and case.note
    from keyfan._bench import run_cases
    from keyfan._bench.ensemble import suite_cases

    results = run_cases(suite_cases(quick=True), runs=3)
    assert [r.name for r in results] == [cases[0].name, cases[3].name, cases[1].name, cases[2].name]
    assert [r.role for r in results] == ["keyfan", "canonical", "keyfan", "keyfan"]
    assert all(r.median_ms > 0 for r in results)
