"""Every docstring example in the library runs and prints what it shows (doctest), and the
public names of the modules below document their arguments, result and an example."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest

import keyfan

MODULES = sorted(m.name for m in pkgutil.walk_packages(keyfan.__path__, "keyfan.") if m.name != "keyfan.__main__")


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, module_name, globs={}):
        if test.examples and (test.filename or "").startswith(str(keyfan.__path__[0])):
            runner.run(test)
    assert runner.failures == 0, f"{runner.failures} failing docstring example(s) in {module_name} (see the output)"


COMPLETE = ["keyfan.recipes", "keyfan._pitfalls", "keyfan.testing"]
"""Modules whose every public function documents Args, Returns and an Example."""


@pytest.mark.parametrize("module_name", COMPLETE)
def test_public_functions_document_arguments_result_and_an_example(module_name):
    module = importlib.import_module(module_name)
    incomplete = {}
    for name in module.__all__:
        obj = getattr(module, name)
        if not inspect.isfunction(obj):
            continue
        doc = inspect.getdoc(obj) or ""
        missing = [s for s in ("Args:", "Returns:", "Example") if s not in doc]
        if missing:
            incomplete[name] = missing
    assert not incomplete, incomplete
