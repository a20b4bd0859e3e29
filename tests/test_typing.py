"""Static typing of the public API: mypy in strict mode is clean on the package and on the
examples (the configuration is pyproject.toml's [tool.mypy]), and every public function types
every parameter and its result with named types, never a bare ``Any``."""

from __future__ import annotations

import importlib
import inspect
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PUBLIC_MODULES = ["keyfan", "keyfan.transforms", "keyfan.testing", "keyfan.recipes", "keyfan.typing",
                  "keyfan.streams", "keyfan.ensemble"]
LATER: set[str] = set()
"""Names typed after a branch lands (strict: an entry fails once fixed); issue 24's have landed."""


def test_mypy_strict_is_clean_on_the_package_and_the_examples(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), "src/keyfan",
                           "examples"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def _functions() -> list[str]:
    names = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        names += [f"{module_name}.{n}" for n in module.__all__ if inspect.isfunction(getattr(module, n))]
    return names


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason="after issues 20/24"))
                                  if n in LATER else n for n in _functions()])
def test_public_function_types_every_parameter_without_any(name):
    module_name, attribute = name.rsplit(".", 1)
    signature = inspect.signature(getattr(importlib.import_module(module_name), attribute))
    untyped = [p for p, v in signature.parameters.items() if v.annotation is inspect.Parameter.empty]
    loose = [p for p, v in signature.parameters.items() if "Any" in str(v.annotation)]
    assert not untyped and not loose, f"{name}: untyped {untyped}, Any in {loose}"
    assert signature.return_annotation is not inspect.Signature.empty and "Any" not in str(
        signature.return_annotation), f"{name} returns {signature.return_annotation}"
