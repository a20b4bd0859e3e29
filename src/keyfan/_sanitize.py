"""``kf.sanitize()``: every vmap in the program checked for the broadcast key, with no code change.

Under ``kf.sanitize()`` every vmap that is traced (``jax.vmap`` and everything built on it:
``kf.vmap``, ``nnx.vmap``, linen ``nn.vmap``, ``eqx.filter_vmap``, a library's own vmap), at any
depth (inside ``jit``, ``scan``, ``cond``, ``checkpoint``, custom derivatives, nested vmaps),
applies ``kf.vmap``'s ``randomness="error"`` rule: a random draw whose key is not mapped over
that vmap raises :class:`keyfan.SharedRandomnessError` at trace time, naming the user's line of
the draw, the vmap it sits in, and the fix. ``jax.lax.map`` is a loop, not a vmap, and is not
checked. Declared sharing passes: draws inside ``kf.shared_randomness()`` or under
``kf.vmap(..., randomness="same")``, and linen parameter initialisation (shared parameters).

The check costs nothing when off (nothing is installed) and, when on, only trace time: it reads
the batch dimensions JAX already computes and changes no compiled code. Functions traced before
the block are traced again inside it (the check is part of JAX's trace context), so
``with kf.sanitize(): step(state, batch)`` checks ``step`` even if it ran before.

The environment variable ``KEYFAN_SANITIZE=1`` (or ``error``) turns the check on for the whole
program when keyfan is imported; ``KEYFAN_SANITIZE=warn`` warns instead. ``pytest
--keyfan-sanitize`` runs every test under the check (``keyfan.pytest_plugin``).
"""

from __future__ import annotations

import contextlib
import enum
import os
from typing import Literal

from keyfan._jaxinternals import require_sanitizer
from keyfan._keyflow.batching import Sink, check_globally, checking

__all__ = ["Action", "ActionName", "canonicalize_action", "sanitize", "sanitize_from_environment"]


class Action(enum.Enum):
    """What a check does with a shared draw: the one list of actions, read by ``kf.sanitize``,
    the pytest plugin's marker and ``KEYFAN_SANITIZE``."""

    ERROR = "error"
    """Raise :class:`keyfan.SharedRandomnessError`."""
    WARN = "warn"
    """Warn (:class:`keyfan.SharedRandomnessWarning`) and run on."""
    OFF = "off"
    """No check (a pytest marker exempting one test, ``KEYFAN_SANITIZE=off``)."""


ActionName = Literal["error", "warn"]
"""The actions ``kf.sanitize`` takes."""


def canonicalize_action(value: object, *, argument: str, off: bool = False) -> Action:
    """The action named by ``value`` (``"error"``, ``"warn"``, and ``"off"`` where ``off``), or a
    ``ValueError`` (``TypeError`` for a non-string) naming ``argument`` and the accepted values."""
    accepted = [a for a in Action if off or a is not Action.OFF]
    if isinstance(value, Action) and value in accepted:
        return value
    if isinstance(value, str):
        found = next((a for a in accepted if a.value == value), None)
        if found is not None:
            return found
    names = [repr(a.value) for a in accepted]
    listed = " or ".join(names) if len(names) == 2 else f"{', '.join(names[:-1])} or {names[-1]}"
    error = ValueError if isinstance(value, (str, Action)) else TypeError
    raise error(f"{argument} must be {listed}; got {value!r}.")


class _Sanitize(contextlib.ContextDecorator):
    def __init__(self, action: Action):
        self.action = action.value
        self._stack: list[contextlib.ExitStack] = []

    def __enter__(self) -> _Sanitize:
        stack = contextlib.ExitStack()
        stack.enter_context(checking(Sink(self.action)))
        self._stack.append(stack)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.pop().close()


def sanitize(action: ActionName = "error") -> _Sanitize:
    """Checks every vmap traced inside the block (or the decorated function) for shared draws.

    Args:
      action: ``"error"`` (default) raises :class:`keyfan.SharedRandomnessError` (a
        ``ValueError``) at the first shared draw; ``"warn"`` emits one
        :class:`keyfan.SharedRandomnessWarning` per source line and lets the program run.

    Returns:
      A context manager that is also a decorator (``@kf.sanitize()`` on a test).

    Raises:
      ValueError: ``action`` is not ``"error"`` or ``"warn"``.
      keyfan._jaxinternals.UnsupportedJaxError: (a ``RuntimeError``) the installed JAX is older
        than the sanitizer needs (JAX >= 0.7); the message names the minimum.

    Examples:
      >>> import jax, jax.numpy as jnp, keyfan as kf
      >>> def noisy(x, key):
      ...     return x + jax.random.normal(key, x.shape)
      >>> step = jax.jit(lambda xs, key: jax.vmap(noisy, in_axes=(0, None))(xs, key))
      >>> with kf.sanitize():
      ...     try:
      ...         step(jnp.zeros((4, 3)), kf.key(0))
      ...     except kf.SharedRandomnessError:
      ...         print("caught")
      caught
    """
    checked = canonicalize_action(action, argument="action")
    require_sanitizer("kf.sanitize()")
    return _Sanitize(checked)


_ENVIRONMENT = {"1": "error", "true": "error", "0": "off", "false": "off", "": "off"}
"""The environment variable's spellings beside the action names themselves."""


def sanitize_from_environment() -> None:
    """Turns the check on for the whole program if ``KEYFAN_SANITIZE`` says so (``1``/``error``/
    ``true`` or ``warn``; ``0``, ``false``, ``off`` or unset: off). Called when keyfan is imported."""
    value = os.environ.get("KEYFAN_SANITIZE", "").strip().lower()
    try:
        action = canonicalize_action(_ENVIRONMENT.get(value, value), argument="KEYFAN_SANITIZE", off=True)
    except ValueError:
        # One line, no traceback: a bad setting of a debugging switch stops the program at once,
        # as a bad PYTHONHASHSEED does, rather than running it unchecked.
        accepted = ", ".join(repr(v) for v in (*(a.value for a in Action), *_ENVIRONMENT) if v)
        raise SystemExit(f"keyfan: KEYFAN_SANITIZE must be one of {accepted} (or unset); got {value!r}.") from None
    if action is Action.OFF:
        return
    require_sanitizer(f"KEYFAN_SANITIZE={value}")
    check_globally(action.value)

