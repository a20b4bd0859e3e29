"""A keyfan setting that is part of JAX's trace context and jit cache key.

``kf.sanitize()`` keeps its mode in such a setting, so a function traced (and cached) before a
check is traced again under it, and cached separately, instead of being skipped. JAX offers it
through ``jax._src.config.string_or_object_state``:

* JAX >= 0.8: ``include_in_jit_key=True, include_in_trace_context=True``;
* JAX 0.7 (and 0.8 with a jaxlib whose trace context is computed in Python): ``include_in_jit_key``
  and an entry in ``register_trace_context_callback``;
* JAX 0.5 and 0.6: no way in (the trace context is a fixed tuple, and JAX's caches hold on to the
  function that computes it): :func:`trace_context_state` returns a stand-in that is always
  ``default`` and refuses to be set.

Whether the setting really reaches the trace context is checked once, when it is made, by
comparing ``trace_context()`` with the setting off and on.
"""

from __future__ import annotations

import inspect
from typing import Any

from jax._src import config as _config

from keyfan._jaxinternals import UnsupportedJaxError

__all__ = ["missing", "trace_context_state"]


def _keywords() -> set[str]:
    try:
        return set(inspect.signature(_config.string_or_object_state).parameters)
    except (AttributeError, TypeError, ValueError):
        return set()


_refused: list[str] = []
"""Why a state made here did not reach the trace context (found when it was made)."""


def missing() -> str | None:
    """What this JAX lacks for :func:`trace_context_state`, or None."""
    if _refused:
        return _refused[0]
    keywords = _keywords()
    if not hasattr(_config, "trace_context"):
        return "jax._src.config.trace_context"
    if "include_in_jit_key" not in keywords:
        return "string_or_object_state(include_in_jit_key=...)"
    if "include_in_trace_context" not in keywords and not hasattr(_config, "register_trace_context_callback"):
        return "string_or_object_state(include_in_trace_context=...) or register_trace_context_callback"
    return None


class Unavailable:
    """The stand-in for a setting this JAX cannot make: reads as its default, cannot be set."""

    def __init__(self, name: str, default: Any, reason: str):
        self.name, self.value, self.reason = name, default, reason

    def __call__(self, value: Any) -> Any:
        raise UnsupportedJaxError(f"JAX setting {self.name!r} is not available on this JAX: it lacks {self.reason}.")


def _in_trace_context(state: Any) -> bool:
    before = _config.trace_context()
    with state(object()):
        return _config.trace_context() != before


def trace_context_state(name: str, default: str, help: str) -> Any:
    """A thread-local JAX setting ``name`` in the trace context and the jit key.

    Args:
      name: the setting's name (also ``jax.config.update(name, value)`` sets it program-wide).
      default: its value outside any ``with state(value):`` block.
      help: one line for JAX's flag help.

    Returns:
      JAX's ``State``: ``.value`` reads it, ``with state(value):`` sets it in a block. Made once per
      process (asking again returns the same state). On a JAX that cannot make it (see
      :func:`missing`), a stand-in whose ``.value`` is ``default`` and that cannot be set.
    """
    existing = _config.config_states.get(name)
    if existing is not None:
        return Unavailable(name, default, _refused[0]) if _refused else existing
    reason = missing()
    if reason is not None:
        return Unavailable(name, default, reason)
    keywords = _keywords()
    options = {"include_in_jit_key": True}
    if "include_in_trace_context" in keywords:
        options["include_in_trace_context"] = True
    state = _config.string_or_object_state(name, default, help=help, **options)
    if not _in_trace_context(state):
        # JAX 0.7 (or a jaxlib that computes the trace context in Python): add it by callback.
        callbacks = getattr(_config, "register_trace_context_callback", None)
        if callbacks is not None:
            callbacks.append(lambda: state.value)
        if not _in_trace_context(state):
            _refused.append("a trace context that takes a setting of keyfan's")
            return Unavailable(name, default, _refused[0])
    return state
