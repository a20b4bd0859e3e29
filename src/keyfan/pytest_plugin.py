"""pytest plugin: run a test suite under ``kf.sanitize()`` without changing it.

* ``pytest --keyfan-sanitize`` runs every test (its set-up and its call) under
  ``kf.sanitize()``: any broadcast key in any vmap a test traces fails that test with
  :class:`keyfan.SharedRandomnessError`, naming the line. ``--keyfan-sanitize-warn`` warns
  (:class:`keyfan.SharedRandomnessWarning`) instead.
* ``@pytest.mark.keyfan_sanitize`` (or ``@pytest.mark.keyfan_sanitize("warn")``) does the same
  for one test; ``@pytest.mark.keyfan_sanitize("off")`` exempts one test from a suite-wide check
  (a test that builds the broadcast key on purpose, or checks only shapes of a batch it draws
  from one key).

Registered through the ``pytest11`` entry point, so installing keyfan is enough. keyfan (and
JAX) are imported only when the option is given or a test carries the marker.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

__all__ = ["pytest_addoption", "pytest_configure", "pytest_runtest_call", "pytest_runtest_setup"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("keyfan")
    group.addoption(
        "--keyfan-sanitize", action="store_const", const="error", dest="keyfan_sanitize", default=None,
        help="run every test under keyfan.sanitize(): a random draw whose key is not mapped over the "
             "vmap it sits in fails the test.",
    )
    group.addoption(
        "--keyfan-sanitize-warn", action="store_const", const="warn", dest="keyfan_sanitize",
        help="as --keyfan-sanitize, but warn (keyfan.SharedRandomnessWarning) instead of failing.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "keyfan_sanitize(action='error'): run this test under keyfan.sanitize(action) ('error' or "
                   "'warn'), or without it ('off') when the suite runs with --keyfan-sanitize.")
    action = config.getoption("keyfan_sanitize", default=None)
    if action is not None:
        # One clear error for the whole run, not one per test, on a JAX the check cannot run on.
        from keyfan._jaxinternals import UnsupportedJaxError, require_sanitizer

        flag = "--keyfan-sanitize" if action == "error" else "--keyfan-sanitize-warn"
        try:
            require_sanitizer(f"pytest {flag}")
        except UnsupportedJaxError as err:
            raise pytest.UsageError(str(err)) from None


def _action(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("keyfan_sanitize")
    if marker is not None:
        from keyfan._sanitize import Action, canonicalize_action

        given = marker.args[0] if marker.args else marker.kwargs.get("action", "error")
        try:
            action = canonicalize_action(given, argument="@pytest.mark.keyfan_sanitize: action", off=True)
        except (TypeError, ValueError) as err:
            raise pytest.UsageError(str(err)) from None
        return None if action is Action.OFF else action.value
    option: str | None = item.config.getoption("keyfan_sanitize", default=None)
    return option


def _run(item: pytest.Item) -> Generator[None, Any, Any]:
    action = _action(item)
    if action is None:
        return (yield)
    from keyfan import sanitize

    with sanitize(action):  # type: ignore[arg-type]  # an Action's value, "error" or "warn"
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _run(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _run(item))
