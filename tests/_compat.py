"""The compatibility subset: the tests ``python3 dev.py test --compat`` runs on the lowest supported
JAX (and ``--compat newest`` on the newest release), marked ``compat`` here, in one place.

It covers what keyfan promises on every JAX in its declared range (docs/compatibility.md):
streams and conformance with JAX's Threefry, golden values, the samplers against the canonical
split + vmap pattern, ``kf.vmap``, the sanitizer and the audit on their corpora, and one
ensemble train / checkpoint / restore round trip. Tests marked ``@pytest.mark.compat`` in their
own file join it too (tests/test_jaxinternals.py).

On a JAX older than the sanitizer's minimum, the sanitizer and audit tests are skipped with the
reason, and ``test_jaxinternals.py::test_the_sanitizer_runs_or_refuses_on_this_jax`` checks the
clear error instead. Below the ``flax`` extra's Flax (which needs JAX >= 0.8.1) the ensemble
round trip's module is skipped (``pytest.importorskip`` with keyfan's declared floor, in
tests/test_ensemble_train.py: keyfan.ensemble refuses such a Flax on import).
"""

from __future__ import annotations

import inspect

import jax
import pytest

COMPAT: dict[str, tuple[str, ...] | None] = {
    # streams and conformance with JAX's Threefry
    "tests/streams/test_streams.py": None,
    "tests/streams/test_threefry2x32.py": None,
    "tests/streams/test_golden.py": None,
    "tests/conformance/test_known_answers.py": None,
    "tests/conformance/test_keys_and_seeds.py": None,
    "tests/conformance/test_samplers.py": None,
    "tests/conformance/test_poisson.py": None,
    # samplers against the canonical pattern
    "tests/test_sample.py": ("test_sampler_equals_canonical", "test_paired_draws_equal_canonical",
                             "test_categorical_equals_canonical", "test_row_i_is_the_unbatched_draw_with_at",
                             "test_jit_and_eager_agree"),
    # kf.vmap
    "tests/test_vmap.py": None,
    # the sanitizer and the audit on their corpora
    "tests/test_sanitize.py": None,
    "tests/test_audit.py": ("test_corpus_verdict", "test_corpus_precision_and_recall", "test_each_wrapper_is_followed"),
    "tests/test_audit_real_code.py": None,
    # one ensemble train / checkpoint / restore round trip
    "tests/test_ensemble_train.py": ("test_a_restored_run_continues_bit_identically",),
}
"""Test file -> the test functions in the subset (None: all of them)."""

NEEDS_SANITIZER = ("tests/test_sanitize.py", "tests/test_audit.py", "tests/test_audit_real_code.py")
"""Files whose subset needs ``kf.sanitize``'s machinery (skipped, with the reason, below its minimum JAX)."""


def _x64_context_manager() -> None:
    """The tests spell JAX's x64 context manager ``jax.enable_x64(flag)`` (JAX >= 0.8); on older
    JAX it is ``jax.experimental.enable_x64(flag)``, installed under the new name here."""
    try:
        jax.enable_x64  # noqa: B018
    except AttributeError:
        from jax.experimental import enable_x64

        jax.enable_x64 = enable_x64


def _set_mesh() -> None:
    """``jax.set_mesh(mesh)`` (JAX >= 0.7) is ``jax.sharding.use_mesh(mesh)`` on JAX 0.5 and 0.6."""
    if not hasattr(jax, "set_mesh"):
        jax.set_mesh = jax.sharding.use_mesh


_x64_context_manager()
_set_mesh()


def in_subset(path: str, function: str) -> bool:
    """True if the test ``function`` of the file ``path`` (relative to the repository) is in the subset."""
    if path not in COMPAT:
        return False
    names = COMPAT[path]
    return names is None or function in names


OLD_RANDINT_8BIT = ("threefry-randint_i8]", "threefry-legacy-randint_i8]", "threefry-legacy-randint_u8_full]")
"""Canonical comparisons that differ on JAX 0.5 (measured on 0.5.3): JAX's own 8-bit randint."""

def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unavailable = None
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        function = getattr(item, "originalname", item.name)
        if not in_subset(path, function):
            continue
        item.add_marker(pytest.mark.compat)
        if path in NEEDS_SANITIZER:
            if unavailable is None:
                from keyfan._jaxinternals import sanitizer_unavailable

                unavailable = sanitizer_unavailable() or ""
            if unavailable:
                item.add_marker(pytest.mark.skip(reason=f"kf.sanitize and kf.audit: {unavailable}"))
        if "bernoulli_high" in item.nodeid and "mode" not in inspect.signature(jax.random.bernoulli).parameters:
            item.add_marker(pytest.mark.skip(reason="jax.random.bernoulli takes mode= from JAX 0.6 (no reference)"))
        if (function == "test_categorical_equals_canonical"
                and "mode" not in inspect.signature(jax.random.categorical).parameters):
            item.add_marker(pytest.mark.skip(reason="jax.random.categorical takes mode= from JAX 0.6 (no reference)"))
        if function == "test_sampler_equals_canonical" and any(
                case in item.nodeid for case in OLD_RANDINT_8BIT) and jax.__version_info__ < (0, 6):
            item.add_marker(pytest.mark.xfail(strict=True, reason=(
                "JAX 0.5 draws 8-bit randint differently (measured on 0.5.3); kf.randint keeps the newer "
                "JAX's values, which never move (docs/compatibility.md)")))
