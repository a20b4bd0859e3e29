"""The error and the warning raised for a random draw shared by every example of a batch."""

from __future__ import annotations

from collections.abc import Sequence

from keyfan._keyflow.findings import Finding

__all__ = ["SharedRandomnessError", "SharedRandomnessWarning"]


class SharedRandomnessError(ValueError):
    """A random draw is the same for every example of a batch: its key is not mapped over a vmap
    it sits in.

    Raised at trace time by ``kf.sanitize()`` (and ``pytest --keyfan-sanitize``) and by
    ``kf.vmap(..., randomness="error")``. The message names each draw's source line, the vmap,
    where the key comes from and the fix; :attr:`findings` holds the same reports as
    :class:`keyfan.AuditFinding` objects (the type ``kf.audit`` returns), one per draw.

    Args:
      message: the text of the error.
      findings: the shared draws it reports.

    Examples:
      >>> import jax, jax.numpy as jnp, keyfan as kf
      >>> def noisy(x, key):
      ...     return x + jax.random.normal(key, x.shape)
      >>> try:
      ...     kf.vmap(noisy, in_axes=(0, None))(jnp.zeros((4, 3)), kf.key(0))
      ... except kf.SharedRandomnessError as err:
      ...     print(isinstance(err, ValueError), [f.kind.value for f in err.findings])
      True ['shared-draw']
    """

    def __init__(self, message: str, findings: Sequence[Finding] = ()) -> None:
        super().__init__(message)
        self.findings: tuple[Finding, ...] = tuple(findings)
        """The shared draws, one finding each."""


class SharedRandomnessWarning(UserWarning):
    """``kf.sanitize(action="warn")`` (``pytest --keyfan-sanitize-warn``): a random draw is the
    same for every example of a batch; the program runs on.

    One warning per draw and block (per test under pytest), raised where the draw is in the
    user's code; :attr:`findings` holds the report as a :class:`keyfan.AuditFinding`.

    Args:
      message: the text of the warning.
      findings: the shared draw it reports.

    Examples:
      >>> import warnings, jax, jax.numpy as jnp, keyfan as kf
      >>> def noisy(x, key):
      ...     return x + jax.random.normal(key, x.shape)
      >>> with warnings.catch_warnings(record=True) as caught, kf.sanitize(action="warn"):
      ...     warnings.simplefilter("always")
      ...     _ = jax.vmap(noisy, in_axes=(0, None))(jnp.zeros((4, 3)), kf.key(0))
      >>> [type(w.message).__name__ for w in caught]
      ['SharedRandomnessWarning']
    """

    def __init__(self, message: str, findings: Sequence[Finding] = ()) -> None:
        super().__init__(message)
        self.findings: tuple[Finding, ...] = tuple(findings)
        """The shared draw, as a finding."""


# Shown as users import them (``keyfan.SharedRandomnessError`` in pytest's summary line), not as
# the private module that defines them.
SharedRandomnessError.__module__ = "keyfan"
SharedRandomnessWarning.__module__ = "keyfan"
