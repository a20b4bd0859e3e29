"""keyfan._jaxinternals: the one place keyfan touches JAX's internals, and what it promises.

* no module of keyfan outside the adapter imports ``jax._src``, ``jax.extend``,
  ``jax.interpreters`` or uses ``jax.core``;
* the core (samplers, keys, transforms, ``kf.vmap``) does not import the sanitizer: the samplers
  call a hook the sanitizer installs, and none is installed while no check runs;
* the sanitizer's setting is part of JAX's trace context on the installed JAX, so a function
  jitted before a check is traced again under it;
* where JAX cannot carry the check (older than ``SANITIZER_MIN_JAX``, or a JAX that dropped
  what the check interposes on), ``kf.sanitize()``, ``KEYFAN_SANITIZE``, ``pytest
  --keyfan-sanitize`` and ``kf.audit`` raise one error naming the minimum JAX, and the core
  still works.
"""

from __future__ import annotations

import ast
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keyfan as kf
from keyfan import _jaxinternals, _kernel
from keyfan._jaxinternals import UnsupportedJaxError
from keyfan._jaxinternals import config as jax_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "keyfan"
INTERNALS = re.compile(r"jax._src|jax.extend|jax.interpreters|jax\.core\b")


def _noisy(x, key):
    return x + jax.random.normal(key, x.shape)


@pytest.mark.compat
def test_only_the_adapter_touches_jax_internals():
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in sorted(SRC.rglob("*.py")) if "_jaxinternals" not in path.parts
                 for number, line in enumerate(path.read_text().splitlines(), 1) if INTERNALS.search(line)]
    assert offenders == []
    # ... and the adapter does (the pattern is not vacuous).
    assert any(INTERNALS.search(path.read_text()) for path in (SRC / "_jaxinternals").glob("*.py"))


def _module_file(name: str) -> pathlib.Path | None:
    base = SRC.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _module_level(tree: ast.AST) -> list[ast.AST]:
    """The nodes run when a module is imported (not the bodies of its functions)."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(child for child in ast.iter_child_nodes(node)
                    if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))
    return nodes


def _imports(name: str) -> set[str]:
    """The keyfan modules ``name`` imports when it is imported (function-level imports run later,
    if ever), without the implicit package ``__init__`` files Python runs on the way."""
    path = _module_file(name)
    package = name if path is not None and path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _module_level(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.update(sub for alias in node.names if _module_file(sub := f"{base}.{alias.name}"))
            if base != "keyfan":
                found.add(base)
    return {m for m in found if m.split(".")[0] == "keyfan" and _module_file(m)}


def _reachable(*roots: str) -> set[str]:
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_imports(name))
    return seen


@pytest.mark.compat
def test_samplers_do_not_import_the_sanitizer():
    core = _reachable("keyfan._kernel", "keyfan.sample", "keyfan.keys", "keyfan.transforms", "keyfan._vmap")
    assert {"keyfan._kernel", "keyfan.streams._base", "keyfan._jaxinternals.random"} <= core  # the walk works
    sanitizer = {m for m in core if m.startswith(("keyfan._keyflow.batching", "keyfan._sanitize", "keyfan._audit",
                                                  "keyfan._jaxinternals.batching", "keyfan._jaxinternals.config"))}
    assert sanitizer == set()
    # The sanitizer's side does reach it (the test can see the edge it forbids).
    assert "keyfan._kernel" in _reachable("keyfan._keyflow.batching")


@pytest.mark.compat
def test_the_draw_hook_sees_every_draw_and_is_off_without_a_check():
    assert _kernel._draw_hook is None
    seen = []
    _kernel.set_draw_hook(seen.append)
    try:
        key = kf.key(3)
        kf.normal(key, batch=(2,), shape=(3,))
        kf.uniform(key, batch=(4,))
    finally:
        _kernel.set_draw_hook(None)
    assert len(seen) == 2
    assert all(np.array_equal(jax.random.key_data(k), jax.random.key_data(key)) for k in seen)


@pytest.mark.compat
def test_the_check_installs_the_hook_only_while_it_runs():
    if _jaxinternals.sanitizer_unavailable():
        pytest.skip(_jaxinternals.sanitizer_unavailable())
    with kf.sanitize():
        assert _kernel._draw_hook is not None
    assert _kernel._draw_hook is None


@pytest.mark.compat
def test_the_sanitizers_setting_is_in_the_trace_context():
    if _jaxinternals.sanitizer_unavailable():
        pytest.skip(_jaxinternals.sanitizer_unavailable())
    from keyfan._keyflow.batching import _MODE

    assert not isinstance(_MODE, jax_config.Unavailable)
    assert jax_config._in_trace_context(_MODE)
    # A step jitted (and run) before the check is traced again under it, not taken from the cache.
    step = jax.jit(lambda xs, key: jax.vmap(_noisy, in_axes=(0, None))(xs, key))
    xs = jnp.zeros((4, 3))
    step(xs, kf.key(0))
    with pytest.raises(kf.SharedRandomnessError), kf.sanitize():
        step(xs, kf.key(0))


@pytest.mark.compat
def test_the_sanitizer_runs_or_refuses_on_this_jax():
    """On the installed JAX: the README's bug is caught, or (below the minimum) one clear error."""
    step = jax.jit(lambda xs, key: jax.vmap(_noisy, in_axes=(0, None))(xs, key))
    if _jaxinternals.JAX_VERSION >= _jaxinternals.SANITIZER_MIN_JAX:
        with pytest.raises(kf.SharedRandomnessError, match="_noisy"), kf.sanitize():
            step(jnp.zeros((4, 3)), kf.key(0))
        report = kf.audit(_noisy, jnp.zeros(3), jax.random.key(0), in_axes=(0, None))
        assert not report.ok
    else:
        minimum = ".".join(map(str, _jaxinternals.SANITIZER_MIN_JAX))
        for call in (kf.sanitize, lambda: kf.audit(_noisy, jnp.zeros(3), jax.random.key(0), in_axes=(0, None))):
            with pytest.raises(UnsupportedJaxError, match=rf"it needs JAX >= {minimum}.*this is JAX {jax.__version__}"):
                call()
        assert _kernel._draw_hook is None


def test_a_jax_without_trace_context_entries_gets_a_stand_in(monkeypatch):
    monkeypatch.setattr(jax_config, "_keywords", lambda: {"name", "default", "help"})
    assert jax_config.missing() == "string_or_object_state(include_in_jit_key=...)"
    state = jax_config.trace_context_state("keyfan_test_never_made", "off", help="a test")
    assert isinstance(state, jax_config.Unavailable) and state.value == "off"
    with pytest.raises(UnsupportedJaxError, match="keyfan_test_never_made"):
        state("on")


@pytest.fixture
def old_jax(monkeypatch):
    """The installed JAX, reported as one release older than the sanitizer's minimum."""
    major, minor, _ = _jaxinternals.SANITIZER_MIN_JAX
    monkeypatch.setattr(_jaxinternals, "JAX_VERSION", (major, minor - 1, 2))
    return f"{major}.{minor}.0"


def test_kf_sanitize_refuses_an_old_jax_naming_the_minimum(old_jax):
    with pytest.raises(UnsupportedJaxError) as info:
        kf.sanitize()
    message = str(info.value)
    assert message.startswith("kf.sanitize() is not available: it needs JAX >= " + old_jax)
    assert f"pip install 'jax>={old_jax}'" in message
    assert isinstance(info.value, RuntimeError)
    assert _kernel._draw_hook is None


def test_kf_audit_refuses_an_old_jax_naming_the_minimum(old_jax):
    with pytest.raises(UnsupportedJaxError, match=rf"^kf\.audit\(\) is not available: it needs JAX >= {old_jax}"):
        kf.audit(_noisy, jnp.zeros(3), jax.random.key(0), in_axes=(0, None))


def test_keyfan_sanitize_variable_refuses_an_old_jax(old_jax, monkeypatch):
    from keyfan._sanitize import sanitize_from_environment

    monkeypatch.setenv("KEYFAN_SANITIZE", "warn")
    expected = rf"^KEYFAN_SANITIZE=warn is not available: it needs JAX >= {old_jax}"
    with pytest.raises(UnsupportedJaxError, match=expected):
        sanitize_from_environment()


def test_pytest_flag_refuses_an_old_jax_once(old_jax):
    from keyfan import pytest_plugin

    class Config:
        def addinivalue_line(self, *args):
            pass

        def getoption(self, name, default=None):
            return "error" if name == "keyfan_sanitize" else default

    expected = rf"^pytest --keyfan-sanitize is not available: it needs JAX >= {old_jax}"
    with pytest.raises(pytest.UsageError, match=expected):
        pytest_plugin.pytest_configure(Config())


def test_a_jax_that_dropped_what_the_check_uses_is_named(monkeypatch):
    from keyfan._jaxinternals import batching

    if _jaxinternals.JAX_VERSION < _jaxinternals.SANITIZER_MIN_JAX:
        pytest.skip("below the sanitizer's minimum JAX the version is named first")

    monkeypatch.setattr(batching, "_VMAP_ENTRY", "_renamed_in_a_future_jax")
    with pytest.raises(UnsupportedJaxError, match=r"no longer offers batching\._renamed_in_a_future_jax"):
        kf.sanitize()


@pytest.mark.parametrize(("text", "expected"), [("0.10.2", (0, 10, 2)), ("0.9.0.1", (0, 9, 0)),
                                                ("0.11.0.dev20260101", (0, 11, 0)), ("1.0", (1, 0, 0))])
def test_jax_version_parses_releases_and_dev_builds(text, expected):
    assert _jaxinternals.jax_version(text) == expected


@pytest.mark.compat
def test_the_installed_version_is_parsed():
    assert ".".join(map(str, _jaxinternals.JAX_VERSION)) in jax.__version__


# -- names looked up per JAX version -------------------------------------------------------------

@pytest.mark.compat
def test_every_jax_internal_is_found_where_this_jax_keeps_it():
    import keyfan._jaxinternals.batching
    import keyfan._jaxinternals.config
    import keyfan._jaxinternals.core  # noqa: F401  (each module looks its names up on import)

    assert _jaxinternals.missing_names() == []


def test_a_name_this_jax_lacks_fails_clearly_when_used(monkeypatch):
    monkeypatch.setattr(_jaxinternals, "_MISSING", [])
    # jax.numpy exists, but the place is declared for JAX >= 99.0 only, so it is not tried.
    found = _jaxinternals.lookup("the_thing", ("jax", "numpy", (99, 0), None),
                                 ("jax._src.no_such_module", "the_thing", (0, 5), None))
    assert isinstance(found, _jaxinternals.Missing)
    assert _jaxinternals.missing_names() == ["the_thing"]
    expected = (r"keyfan needs the_thing, which JAX offers on jax\.numpy \(JAX >= 99\.0\); "
                r"jax\._src\.no_such_module\.the_thing \(JAX >= 0\.5\); the installed JAX "
                + re.escape(jax.__version__))
    with pytest.raises(UnsupportedJaxError, match=expected):
        found(1, 2)
    with pytest.raises(UnsupportedJaxError, match=expected):
        found.some_attribute  # noqa: B018
    # ... and it reaches kf.sanitize(), which names it instead of failing deep in a trace.
    if _jaxinternals.JAX_VERSION >= _jaxinternals.SANITIZER_MIN_JAX:
        with pytest.raises(UnsupportedJaxError, match="no longer offers the_thing"):
            kf.sanitize()


def test_a_place_is_tried_only_on_its_versions():
    here = _jaxinternals.JAX_VERSION[:2]
    assert _jaxinternals.lookup("x", ("jax", "numpy", here, here)) is jnp
    assert _jaxinternals.lookup("x", ("jax", "numpy", None, (0, 4)), ("jax", "lax", here, None)) is jax.lax


@pytest.mark.compat
def test_one_equation_builds_a_jaxpr_on_this_jax():
    """The sanitizer analyses each primitive bound under a vmap as a jaxpr of one equation; where
    this failed (``new_jaxpr_eqn`` is in ``jax.extend.core`` only from 0.10), it found nothing."""
    from keyfan._jaxinternals import core, source_info

    aval = jax.core.ShapedArray((3,), np.float32)
    (sin,) = jax.make_jaxpr(jnp.sin)(jnp.zeros(3, np.float32)).jaxpr.eqns
    closed = core.one_equation(sin.primitive, sin.params, [aval], 1, source_info.current())
    (eqn,) = closed.jaxpr.eqns
    assert eqn.primitive is jax.lax.sin_p and eqn.params == sin.params
    assert [v.aval for v in closed.jaxpr.invars] == [aval]
    assert len(closed.jaxpr.outvars) == 1


@pytest.mark.compat
def test_batch_and_from_elt_take_one_form_on_every_jax():
    """``patch`` takes ``batching.batch``/``from_elt`` replacements in JAX 0.9's form (with
    ``sum_match``) on every JAX; the adapter's ``batch``/``from_elt`` call JAX's own in its form."""
    from keyfan._jaxinternals import batching

    seen = []

    def new_batch(fun, axis_data, in_dims, out_dim_dests, sum_match=False):
        seen.append(("batch", sum_match))
        return batching.batch(fun, axis_data, in_dims, out_dim_dests, sum_match)

    def new_from_elt(trace, axis_size, mesh_axis, sum_match, i, x, spec):
        seen.append(("from_elt", sum_match, i, spec))
        return batching.from_elt(trace, axis_size, mesh_axis, sum_match, i, x, spec)

    batching.patch(batching.process_primitive, batching.init, batch=new_batch, from_elt=new_from_elt)
    try:
        out = jax.vmap(lambda x, y: (x * 2.0, y), in_axes=(0, None), out_axes=(0, None))(jnp.arange(3.0), 5.0)
    finally:
        batching.restore()
    np.testing.assert_array_equal(out[0], [0.0, 2.0, 4.0])
    assert out[1] == 5.0
    assert seen == [("batch", False), ("from_elt", False, 0, 0), ("from_elt", False, 1, None)]
