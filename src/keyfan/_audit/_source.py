"""Where an equation comes from: its user source line and its scopes."""

from __future__ import annotations

import os
import re
import sysconfig

import jax
from jax.extend import core

__all__ = ["in_scope", "join_stack", "call_instance", "location"]

_INTERNAL_DIRS = tuple(dict.fromkeys(
    os.path.join(os.path.realpath(d), "") for d in (
        os.path.dirname(jax.__file__),
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        os.path.dirname(os.__file__),
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
    )
))
"""JAX, keyfan, the standard library and installed packages (Flax, Optax, ...): frames there are
not the user's code, so a draw is attributed to the user's line that called into them."""


def location(eqn: core.JaxprEqn, outer: str) -> str:
    """``file:line (function)`` of the innermost user frame that made ``eqn``; ``outer`` (the
    enclosing call's) when the traceback stops at a ``jit`` boundary."""
    traceback = getattr(eqn.source_info, "traceback", None)
    for frame in getattr(traceback, "frames", ()):
        if not os.path.realpath(frame.file_name).startswith(_INTERNAL_DIRS):
            return f"{frame.file_name}:{frame.line_num} ({frame.function_name})"
    return outer


def call_instance(eqn: core.JaxprEqn) -> int | None:
    """An id of the call that made ``eqn``: equations inlined from one ``jit`` call share their
    traceback object, while every separate bind gets its own (None without tracebacks)."""
    traceback = getattr(eqn.source_info, "traceback", None)
    return None if traceback is None else id(traceback)


def in_scope(name_stack: str, scope: str) -> bool:
    """True if ``scope`` is a component of ``name_stack``, also inside transform wrappers such
    as ``jvp(scope)`` or ``transpose(jvp(scope))``."""
    return re.search(rf"(?:^|[/(]){re.escape(scope)}(?:$|[/)])", name_stack) is not None


def join_stack(outer: str, own: str) -> str:
    """The full name stack of an equation inside a call whose own stack is ``outer``."""
    return f"{outer}/{own}" if outer and own else outer or own
