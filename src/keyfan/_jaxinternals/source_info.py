"""Where the equation being traced comes from: its traceback and name stack, and ``jax.random``'s files.

``jax.extend.source_info_util.current()`` returns a ``SourceInfo`` whose ``traceback.frames``
have ``file_name``, ``line_num`` and ``function_name``, and ``current_name_stack()`` the name
stack, on every JAX >= 0.5. ``jax.random``'s public functions are defined in
``jax/_src/random.py`` up to JAX 0.9 and in ``jax/_src/random/core.py`` from 0.10.

An equation's traceback ends where its function's trace began on JAX 0.10 (the frames of a
jaxpr cached by ``jit`` are those of its body). Older JAX keeps the whole Python stack, through
``partial_eval.trace_to_jaxpr*`` into whoever traced the function first: on a cache hit, another
caller's lines. :func:`frames` stops at that boundary on every version.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from jax.extend import source_info_util as _source_info_util

__all__ = ["RANDOM_API_FILES", "current", "current_name_stack", "current_traceback", "frames"]

RANDOM_API_FILES = (
    os.path.join("jax", "_src", "random.py"),
    os.path.join("jax", "_src", "random", "core.py"),
)
"""Path endings of the files that define ``jax.random.normal`` and friends (a frame there is a
call of ``jax.random.<function name>``)."""


_TRACE_BOUNDARY_FILE = os.path.join("jax", "_src", "interpreters", "partial_eval.py")
_TRACE_BOUNDARY_PREFIX = "trace_to_"
"""``partial_eval.trace_to_jaxpr_dynamic`` and friends: where a function's trace began."""


def frames(traceback: Any) -> Iterator[Any]:
    """The frames of ``traceback`` (innermost first) up to the start of the trace that made it:
    the frames of the traced function's body, never those of the code that traced it (on JAX
    < 0.10 a traceback goes on into the first tracer's stack, stale on a ``jit`` cache hit)."""
    for frame in getattr(traceback, "frames", ()):
        if frame.function_name.startswith(_TRACE_BOUNDARY_PREFIX) and frame.file_name.endswith(_TRACE_BOUNDARY_FILE):
            return
        yield frame


def current() -> Any:
    """The ``SourceInfo`` (``traceback``, ``name_stack``) of the equation being traced."""
    return _source_info_util.current()


def current_traceback() -> Any:
    """The traceback of the equation being traced (``.frames``, innermost first), or None."""
    return _source_info_util.current().traceback


def current_name_stack() -> Any:
    """The name stack (``jax.named_scope`` scopes and transform names) being traced; ``str()`` it."""
    return _source_info_util.current_name_stack()
