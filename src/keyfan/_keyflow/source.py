"""Where an equation comes from: its user source line and its scopes."""

from __future__ import annotations

import functools
import os
import re
import sysconfig

import jax

from keyfan._jaxinternals import core
from keyfan._jaxinternals.source_info import RANDOM_API_FILES, frames

__all__ = ["api_name", "call_instance", "in_scope", "join_stack", "library_name", "location", "traceback_api",
           "traceback_location", "user_frame"]

_MAX_CALLERS = 2
"""How many enclosing user frames a location lists after the innermost one."""

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
_KEYFAN_DIR = os.path.join(os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "")


@functools.lru_cache(maxsize=4096)
def _realpath(file_name: str) -> str:
    return os.path.realpath(file_name)


_FROZEN = "<frozen "
"""Frozen standard-library modules (``<frozen runpy>`` of ``python -m``): never the user's code,
unlike ``<stdin>``, ``<string>`` or a notebook cell, which are."""


def _internal(file_name: str) -> bool:
    return file_name.startswith(_FROZEN) or _realpath(file_name).startswith(_INTERNAL_DIRS)


def location(eqn: core.JaxprEqn, outer: str) -> str:
    """``file:line (function)`` of the innermost user frame that made ``eqn``, followed by up to
    two enclosing user frames (``<- file:line (caller)``) when it lies in a helper; ``outer``
    (the enclosing call's) when the traceback stops at a ``jit`` boundary."""
    return traceback_location(getattr(eqn.source_info, "traceback", None), outer)


def traceback_location(traceback: object, outer: str = "") -> str:
    """:func:`location` of a JAX traceback (``source_info_util.current().traceback``)."""
    found: list[str] = []
    for frame in frames(traceback):
        if not _internal(frame.file_name):
            found.append(f"{frame.file_name}:{frame.line_num} ({frame.function_name})")
        elif found and _realpath(frame.file_name).startswith(_KEYFAN_DIR):
            break  # the tracing entry point (keyfan.audit, kf.vmap): what lies beyond is the caller's
        if len(found) > _MAX_CALLERS:
            break
    return " <- ".join(found) if found else outer


def api_name(eqn: core.JaxprEqn) -> str:
    """The random API the user called to make ``eqn``: ``jax.random.normal``, ``kf.normal``,
    ``kf.transforms.dropout``, ... (the outermost such frame below the user's), or ``""``."""
    return traceback_api(getattr(eqn.source_info, "traceback", None))


def traceback_api(traceback: object) -> str:
    """:func:`api_name` of a JAX traceback."""
    name = ""
    for frame in frames(traceback):
        if not _internal(frame.file_name):
            break
        path = _realpath(frame.file_name)
        if frame.function_name.startswith("_"):
            continue
        if path.endswith(RANDOM_API_FILES):
            name = f"jax.random.{frame.function_name}"
        elif path.startswith(_KEYFAN_DIR):
            module = os.path.relpath(path, _KEYFAN_DIR)
            if module.startswith("transforms"):
                name = f"kf.transforms.{frame.function_name}"
            elif module in ("sample.py", "keys.py", "vmap.py"):
                name = f"kf.{frame.function_name}"
    return name


_PACKAGE_DIRS = tuple(dict.fromkeys(os.path.join(os.path.realpath(sysconfig.get_paths()[k]), "")
                                    for k in ("purelib", "platlib")))
_JAX_DIR = os.path.join(os.path.realpath(os.path.dirname(jax.__file__)), "")


def library_name(eqn: core.JaxprEqn) -> str | None:
    """The installed package whose code made ``eqn`` (``"diffrax"``, ``"equinox"``): the
    innermost frame outside JAX and keyfan, if it lies in an installed package; ``""`` when it is
    the user's code; None when the traceback holds JAX's frames only (it stops at a ``jit``)."""
    for frame in frames(getattr(eqn.source_info, "traceback", None)):
        path = _realpath(frame.file_name)
        if path.startswith((_JAX_DIR, _KEYFAN_DIR)):
            continue
        for root in _PACKAGE_DIRS:
            if path.startswith(root):
                return path[len(root):].split(os.sep, 1)[0]
        return ""
    return None


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


def user_frame(traceback: object) -> tuple[str, int] | None:
    """``(file, line)`` of the innermost user frame of a JAX traceback, or None."""
    for frame in frames(traceback):
        if not _internal(frame.file_name):
            return frame.file_name, frame.line_num
    return None
