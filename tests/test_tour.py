"""keyfan._tour, keyfan._pitfalls and the `keyfan tour` command."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from keyfan._pitfalls import broadcast_key, distinct_rows, one_key_big_shape, python_loop_unrolls
from keyfan._tour import TourRow, run_tour
from keyfan.cli import app


def test_broadcast_key_bug_gives_identical_rows_and_the_fix_does_not():
    demo = broadcast_key(0, batch_size=6, n=3)
    rows = demo.bug.tolist()
    assert all(row == rows[0] for row in rows), "the bug must really share the noise"
    assert distinct_rows(demo.fix)


def test_one_key_big_shape_is_not_the_per_example_batch():
    demo = one_key_big_shape(0, 4, 3)
    assert distinct_rows(demo.bug) and distinct_rows(demo.fix)
    assert demo.bug.tolist() != demo.fix.tolist()


def test_python_loop_grows_with_the_batch_and_vmap_does_not():
    loop8, vmap8 = python_loop_unrolls(8)
    loop32, vmap32 = python_loop_unrolls(32)
    assert loop32 > loop8 > vmap8 and vmap32 == vmap8


def test_tour_rows_all_pass():
    rows = run_tour()
    assert len(rows) == 8
    for row in rows:
        assert row.reproducible and row.holds and row.ok, row
    by_name = {row.recipe: row for row in rows}
    assert by_name["batched_init_param_count"].distinct == "3rd == 1st"
    assert by_name["deterministic_batch"].distinct == "yes"


@pytest.mark.parametrize("failing", [
    TourRow("batched_init_param_count", (3,), "NO: 3rd != 1st", True, "", holds=False),
    TourRow("deterministic_batch", (8, 4), "yes", False, "", holds=True),
])
def test_cli_tour_exits_nonzero_when_a_row_fails(monkeypatch, failing):
    import keyfan._tour

    monkeypatch.setattr(keyfan._tour, "run_tour", lambda: [failing])
    result = CliRunner().invoke(app, ["tour"], env={"COLUMNS": "160"})
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output  # not a crash
    assert failing.distinct in result.output and "bug rows pairwise distinct: no" in result.output
    assert f"FAIL: 1 of 1 recipes failed their checks: {failing.recipe}" in result.output


def test_cli_tour_prints_the_table_and_the_pitfall():
    result = CliRunner().invoke(app, ["tour"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "deterministic_batch" in result.output and "augment_batch" in result.output
    assert "bug rows pairwise distinct: no" in result.output
    assert "fix rows pairwise distinct: yes" in result.output
    assert "pass: all 8 recipes passed their checks" in result.output and "FAIL" not in result.output


def test_python_dash_m_keyfan_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "keyfan", "--help"], capture_output=True, text=True, check=True)
    assert "tour" in out.stdout


def test_tour_shows_the_sanitizer_finding_the_bug():
    """The sanitizer leads the README; the tour shows it raising on the same broadcast key."""
    result = CliRunner().invoke(app, ["tour"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "kf.sanitize() (or pytest --keyfan-sanitize) on the bug raises" in result.output
    assert "kf.SharedRandomnessError: jax.random.normal draws the same values for every example" in result.output
