"""Test helpers: assert that a per-example function uses its keys correctly.

Use them in a project's own test suite::

    from keyfan.testing import assert_no_key_misuse

    def test_model_uses_keys_per_example():
        assert_no_key_misuse(model_step, params, x, key, in_axes=(None, 0, 0))
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from keyfan._audit import AuditReport, IndependenceReport, audit, check_independent
from keyfan.typing import InAxes, PyTree

__all__ = ["assert_independent", "assert_no_key_misuse"]


def assert_no_key_misuse(f: Callable[..., object], *example_args: PyTree, in_axes: InAxes | list[InAxes] = 0,
                         axis_name: Hashable | None = None, **example_kwargs: PyTree) -> AuditReport:
    """Runs :func:`keyfan.audit` and fails the test if anything is flagged.

    Sharing declared with ``kf.shared_randomness()`` does not fail.

    Args:
      f: the per-example function (or, with ``in_axes=None``, a whole program).
      *example_args: its positional arguments for ONE example: arrays or
        ``jax.ShapeDtypeStruct`` s with per-example shapes.
      in_axes: as in :func:`keyfan.audit` (``jax.vmap``'s, a list for nested vmaps, or None).
      axis_name: as in :func:`keyfan.audit`.
      **example_kwargs: keyword arguments of ``f``, unmapped.

    Returns:
      The report, for further checks.

    Raises:
      AssertionError: with the full report (each finding's kind, source line and fix).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from keyfan.testing import assert_no_key_misuse
      >>> def noisy(x, key):
      ...     return x + jax.random.normal(key, x.shape)
      >>> assert_no_key_misuse(noisy, jnp.zeros(3), jax.random.key(0), in_axes=(0, 0)).ok
      True
    """
    report = audit(f, *example_args, in_axes=in_axes, axis_name=axis_name, **example_kwargs)
    if not report.ok:
        raise AssertionError(str(report))
    return report


def assert_independent(batch: PyTree, axis: int = 0) -> IndependenceReport:
    """Runs :func:`keyfan.check_independent` and fails if two examples are bitwise identical.

    Args:
      batch: an array or pytree whose leaves share the batch axis ``axis`` (typed keys are
        compared by their key data).
      axis: the batch axis.

    Returns:
      The :class:`keyfan.IndependenceReport`, for further checks.

    Raises:
      AssertionError: naming the groups of identical examples.

    Examples:
      >>> import keyfan as kf
      >>> from keyfan.testing import assert_independent
      >>> assert_independent(kf.normal(kf.key(0), batch=(8,), shape=(3,))).ok
      True
    """
    report = check_independent(batch, axis=axis)
    if not report.ok:
        raise AssertionError(str(report))
    return report
