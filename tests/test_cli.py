"""The command line's own surface: --version, help texts, default output places, usage errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import keyfan
from keyfan.cli import app

COMMANDS = ["tour", "bench", "ensemble", "audit"]
RAW_TAG = re.compile(r"<(bool|int|float|str|path|list\[[a-z]+\])[^>]*>")


def test_version_flag_prints_the_package_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"keyfan {keyfan.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+([a-z]+\d+)?", keyfan.__version__)


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)], ids=lambda c: " ".join(c) or "keyfan")
def test_help_shows_no_raw_type_tags(command):
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert not RAW_TAG.search(result.output), result.output


def _defaults(command: str) -> dict[str, object]:
    click_command = typer.main.get_command(app).commands[command]
    return {param.name: param.default for param in click_command.params}


def test_bench_writes_under_keyfan_out_by_default_and_says_so():
    assert Path(_defaults("bench")["out"]) == Path("keyfan-out/bench")
    result = CliRunner().invoke(app, ["bench", "--help"], env={"COLUMNS": "200"})
    assert "[default: keyfan-out/bench]" in result.output
    assert "default: 20, or 10 with --quick" in result.output


def test_ensemble_help_states_every_default():
    result = CliRunner().invoke(app, ["ensemble", "--help"], env={"COLUMNS": "200"})
    for text in ("[default: 8]", "default: 100 for moons, 200 for regression", "[default: 0]",
                 "[default: moons]", "[default: keyfan-out/ensemble]", "[default: no-bootstrap]"):
        assert text in result.output, (text, result.output)


def test_audit_without_arg_says_which_arguments_it_needs(tmp_path):
    (tmp_path / "model.py").write_text(
        "import jax\n\ndef noisy(x, key):\n    return x + jax.random.normal(key, x.shape)\n")
    result = CliRunner().invoke(app, ["audit", f"{tmp_path / 'model.py'}:noisy", "--in-axes", "0,None"],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "no --arg given" in result.output and "takes x, key" in result.output
    assert "Traceback" not in result.output


def test_audit_of_a_function_without_arguments_needs_no_arg(tmp_path):
    (tmp_path / "model.py").write_text(
        "import jax\n\ndef twice():\n    key = jax.random.key(0)\n"
        "    return jax.random.normal(key) + jax.random.normal(key)\n")
    result = CliRunner().invoke(app, ["audit", f"{tmp_path / 'model.py'}:twice", "--in-axes", "none"],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output  # audited, and the reuse is flagged
    assert "key-reuse" in result.output
