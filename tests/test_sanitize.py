"""kf.sanitize(): the broadcast key found in every vmap of real programs, at trace time only.

Every buggy program of ``tests/_real_programs.py`` (``jax.vmap`` in a jitted step, linen
``nn.vmap``, ``nnx.vmap``, ``eqx.filter_vmap``, three nested levels, the recipes' patterns)
raises naming the user's line; every fix and every correct program stays quiet and computes the
same bits as without the check; the compiled program is the same text with and without it; the
pytest plugin and ``KEYFAN_SANITIZE`` turn it on without code changes.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import keyfan as kf
from keyfan._jaxinternals import batching
from tests._real_programs import BUGGY, CORRECT, LEVELS, jax_vmap_step, linen_vmap_step, nested_heads

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree) if isinstance(x, jax.Array)]


@pytest.mark.parametrize("name", list(BUGGY))
def test_every_buggy_program_raises_with_the_users_line(name):
    fn, args = BUGGY[name]()
    with pytest.raises(kf.SharedRandomnessError) as info, kf.sanitize():
        fn(*args)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    first = message.splitlines()[1] if "\n" in message else message  # several draws: one per line
    assert "_real_programs.py:" in first.split(" draws ")[0], message  # the user's line, not Flax's
    assert "draws the same values for every example" in message and "Fix:" in message


@pytest.mark.bitwise
@pytest.mark.parametrize("name", list(CORRECT))
def test_every_correct_program_is_quiet_and_computes_the_same_bits(name):
    fn, args = CORRECT[name]()
    expected = _leaves(fn(*args))
    fn, args = CORRECT[name]()
    with kf.sanitize():
        got = _leaves(fn(*args))
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("name", "words"), [
    ("linen nn.vmap, split_rngs dropout False", ("linen nn.vmap", "split_rngs={'dropout': True}")),
    ("nnx.vmap, Rngs not split", ("nnx.vmap", "nnx.split_rngs")),
    ("eqx.filter_vmap, closed-over key", ("eqx.filter_vmap", "one key per example")),
    ("jax.vmap in a jitted step", ("jax.vmap traced at", "kf.fan_out(key, n)")),
])
def test_the_message_names_the_wrapper_and_its_fix(name, words):
    fn, args = BUGGY[name]()
    with pytest.raises(kf.SharedRandomnessError) as info, kf.sanitize():
        fn(*args)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_the_vmap_and_the_draw_are_located_alike_relative_to_the_working_directory(monkeypatch):
    monkeypatch.chdir(pathlib.Path(__file__).resolve().parents[1])
    fn, args = BUGGY["jax.vmap in a jitted step"]()
    with pytest.raises(kf.SharedRandomnessError) as info, kf.sanitize():
        fn(*args)
    vmap_at = re.search(r"jax\.vmap traced at (\S+?):\d+", str(info.value))
    assert vmap_at, str(info.value)
    assert not os.path.isabs(vmap_at.group(1)) and vmap_at.group(1).startswith("tests"), str(info.value)


@pytest.mark.parametrize("level", LEVELS)
def test_nested_vmaps_name_the_level_whose_key_is_broadcast(level):
    sizes = dict(zip(LEVELS, (2, 3, 4), strict=True))  # nested_heads maps (2, 3, 4, 5) level by level
    fn, args = nested_heads(level)
    with pytest.raises(kf.SharedRandomnessError, match=rf"\(batch of {sizes[level]}\)"), kf.sanitize():
        fn(*args)


@pytest.mark.bitwise
def test_warn_mode_warns_once_per_line_and_runs():
    fn, args = BUGGY["nested vmaps, broadcast at tokens"]()
    expected = fn(*args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with kf.sanitize(action="warn"):
            got = jax.jit(lambda x, k: fn(x, k))(*args)
    shared = [w for w in caught if issubclass(w.category, kf.SharedRandomnessWarning)]
    assert len(shared) == 1, [str(w.message) for w in shared]
    assert shared[0].filename.endswith("_real_programs.py")
    np.testing.assert_array_equal(got, expected)


def test_decorator_and_functions_traced_before_the_block_are_checked_again():
    step, args = jax_vmap_step(bug=True)
    step(*args)  # traced and cached without the check

    @kf.sanitize()
    def checked():
        return step(*args)

    with pytest.raises(kf.SharedRandomnessError):
        checked()
    step(*args)  # outside the block: runs as before


def test_the_check_is_uninstalled_when_off_and_lax_map_is_not_a_vmap():
    original = batching.BatchTrace.process_primitive
    with kf.sanitize():
        assert batching.BatchTrace.process_primitive is not original
        jax.lax.map(lambda x: x + jax.random.normal(kf.key(0), x.shape), jnp.zeros((4, 3)))
    assert batching.BatchTrace.process_primitive is original


def test_compiled_program_is_identical_with_and_without_the_check():
    for build in (lambda: jax_vmap_step(bug=False), lambda: linen_vmap_step(bug=False)):
        fn, args = build()
        plain = jax.jit(fn).lower(*args).as_text()
        with kf.sanitize():
            checked = jax.jit(fn).lower(*args).as_text()
        assert checked == plain


def test_bad_action_is_a_clear_error():
    with pytest.raises(ValueError, match="action must be 'error' or 'warn'; got 'loud'"):
        kf.sanitize(action="loud")


_BUGGY_TEST = '''
import jax, jax.numpy as jnp

def noisy(x, key):
    return x + jax.random.normal(key, x.shape)

def test_noise():
    out = jax.jit(jax.vmap(noisy, in_axes=(0, None)))(jnp.zeros((4, 3)), jax.random.key(0))
    assert out.shape == (4, 3)
'''


def _pytest(tmp_path, source, *flags, env=None):
    (tmp_path / "test_bug.py").write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags, "test_bug.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


_MARKED_TESTS = '''
import pytest

@pytest.mark.keyfan_sanitize
def test_marked():
    test_noise()

@pytest.mark.keyfan_sanitize('off')
def test_exempt():
    test_noise()
'''


def _outcomes(proc) -> dict[str, str]:
    """``{test name: PASSED | FAILED}`` from a ``pytest -rA`` summary."""
    found = re.findall(r"^(PASSED|FAILED) test_bug\.py::(\w+)", proc.stdout, flags=re.M)
    return {name: status for status, name in found}


def test_pytest_plugin_fails_the_buggy_test_only_with_the_flag(tmp_path):
    """Two pytest processes (without and with the flag) over the buggy test, the same test marked
    ``keyfan_sanitize`` and marked ``keyfan_sanitize('off')``."""
    plain = _pytest(tmp_path, _BUGGY_TEST + _MARKED_TESTS, "-rA")
    assert _outcomes(plain) == {"test_noise": "PASSED", "test_marked": "FAILED", "test_exempt": "PASSED"}, \
        plain.stdout + plain.stderr
    assert "SharedRandomnessError" in plain.stdout, plain.stdout  # the one failure: the marked test's
    flagged = _pytest(tmp_path, _BUGGY_TEST + _MARKED_TESTS, "-rA", "--keyfan-sanitize")
    assert _outcomes(flagged) == {"test_noise": "FAILED", "test_marked": "FAILED", "test_exempt": "PASSED"}, \
        flagged.stdout + flagged.stderr
    assert "SharedRandomnessError" in flagged.stdout and "test_bug.py:5" in flagged.stdout


def test_plugin_names_the_users_frames_only(tmp_path):
    """Under ``python -m pytest`` the stack ends in ``<frozen runpy>``: not the user's code, so
    not named as the place the vmap was traced."""
    flagged = _pytest(tmp_path, '''
        import jax, jax.numpy as jnp

        def sample(key, n):
            return jax.random.normal(key, (n,))

        def test_chains():
            step = jax.vmap(lambda key, x: x + sample(key, 3), in_axes=(None, 0))
            step(jax.random.key(0), jnp.zeros((4, 3)))
    ''', "--keyfan-sanitize")
    assert flagged.returncode == 1 and "SharedRandomnessError" in flagged.stdout, flagged.stdout
    assert "test_bug.py:5 (sample)" in flagged.stdout and "<frozen" not in flagged.stdout, flagged.stdout


def test_environment_variable_turns_the_check_on_for_a_whole_program(tmp_path):
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent('''
        import warnings
        import jax, jax.numpy as jnp
        import keyfan
        def noisy(x, key):
            return x + jax.random.normal(key, x.shape)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            jax.vmap(noisy, in_axes=(0, None))(jnp.zeros((4, 3)), jax.random.key(0))
        print(sum(issubclass(w.category, keyfan.SharedRandomnessWarning) for w in caught))
    '''))
    run = lambda value: subprocess.run([sys.executable, str(script)], capture_output=True, text=True,  # noqa: E731
                                       timeout=300, env={**os.environ, "KEYFAN_SANITIZE": value})
    assert run("0").stdout.strip() == "0"
    assert run("warn").stdout.strip() == "1"
    error = run("1")
    assert error.returncode == 1 and "SharedRandomnessError" in error.stderr and "program.py:6" in error.stderr
    bad = run("maybe")
    assert bad.returncode == 1 and "KEYFAN_SANITIZE must be one of" in bad.stderr and "got 'maybe'" in bad.stderr


_K = jax.random.key(0)


def _closed(x):
    return x + jax.random.normal(_K, x.shape)


def _from_batch(x, batch):
    return x + jax.random.normal(jax.random.fold_in(batch["rng"], 1), x.shape)


def _from_seed(x, seed):
    return x + jax.random.normal(jax.random.PRNGKey(seed), x.shape)


def _through_jit(x, key):
    return jax.jit(lambda x, k: x + jax.random.normal(jax.random.split(k)[0], x.shape))(x, key)


@pytest.mark.parametrize(("program", "origin"), [
    (lambda xs: jax.vmap(lambda x, key: x + jax.random.normal(key, x.shape), in_axes=(0, None))(xs, _K),
     "its key is the argument `key` of the vmapped function, passed unmapped (in_axes=None)"),
    (lambda xs: jax.jit(jax.vmap(_through_jit, in_axes=(0, None)))(xs, _K),
     "its key is the argument `key` of the vmapped function, passed unmapped (in_axes=None)"),
    (lambda xs: jax.vmap(_from_batch, in_axes=(0, {"rng": None}))(xs, {"rng": _K}),
     "its key is derived from the argument `batch['rng']` of the vmapped function, passed unmapped"),
    (lambda xs: jax.vmap(_from_seed, in_axes=(0, None))(xs, jnp.uint32(3)),
     "its key is derived from the argument `seed` of the vmapped function, passed unmapped"),
    (lambda xs: jax.jit(jax.vmap(_closed))(xs),
     "its key comes from no argument of the vmapped function (every argument is mapped): it is closed over, "
     "or made from a constant seed inside"),
], ids=["argument", "argument through jit", "pytree leaf", "seed", "closed over"])
def test_the_message_names_the_keys_origin(program, origin):
    with pytest.raises(kf.SharedRandomnessError) as info, kf.sanitize():
        program(jnp.ones((4, 3)))
    assert origin in str(info.value), str(info.value)
