"""Where an equation comes from: its user source line and its scopes."""

from __future__ import annotations

import os
import re

import jax
from jax.extend import core

__all__ = ["in_scope", "join_stack", "location"]

_INTERNAL_DIRS = (
    os.path.dirname(os.path.dirname(jax.__file__)) + os.sep + "jax" + os.sep,
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
    os.path.dirname(os.__file__) + os.sep,
)
"""JAX, keyfan and the standard library: frames there are not the user's code."""


def location(eqn: core.JaxprEqn, outer: str) -> str:
    """``file:line (function)`` of the innermost user frame that made ``eqn``; ``outer`` (the
    enclosing call's) when the traceback stops at a ``jit`` boundary."""
    traceback = getattr(eqn.source_info, "traceback", None)
    for frame in getattr(traceback, "frames", ()):
        if not frame.file_name.startswith(_INTERNAL_DIRS):
            return f"{frame.file_name}:{frame.line_num} ({frame.function_name})"
    return outer


def in_scope(name_stack: str, scope: str) -> bool:
    """True if ``scope`` is a component of ``name_stack``, also inside transform wrappers such
    as ``jvp(scope)`` or ``transpose(jvp(scope))``."""
    return re.search(rf"(?:^|[/(]){re.escape(scope)}(?:$|[/)])", name_stack) is not None


def join_stack(outer: str, own: str) -> str:
    """The full name stack of an equation inside a call whose own stack is ``outer``."""
    return f"{outer}/{own}" if outer and own else outer or own
