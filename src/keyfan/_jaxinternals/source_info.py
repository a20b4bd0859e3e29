"""Where the equation being traced comes from: its traceback and name stack, and ``jax.random``'s files.

``jax.extend.source_info_util.current()`` returns a ``SourceInfo`` whose ``traceback.frames``
have ``file_name``, ``line_num`` and ``function_name``, and ``current_name_stack()`` the name
stack, on every JAX >= 0.5. ``jax.random``'s public functions are defined in
``jax/_src/random.py`` up to JAX 0.9 and in ``jax/_src/random/core.py`` from 0.10.
"""

from __future__ import annotations

import os
from typing import Any

from jax.extend import source_info_util as _source_info_util

__all__ = ["RANDOM_API_FILES", "current", "current_name_stack", "current_traceback"]

RANDOM_API_FILES = (
    os.path.join("jax", "_src", "random.py"),
    os.path.join("jax", "_src", "random", "core.py"),
)
"""Path endings of the files that define ``jax.random.normal`` and friends (a frame there is a
call of ``jax.random.<function name>``)."""


def current() -> Any:
    """The ``SourceInfo`` (``traceback``, ``name_stack``) of the equation being traced."""
    return _source_info_util.current()


def current_traceback() -> Any:
    """The traceback of the equation being traced (``.frames``, innermost first), or None."""
    return _source_info_util.current().traceback


def current_name_stack() -> Any:
    """The name stack (``jax.named_scope`` scopes and transform names) being traced; ``str()`` it."""
    return _source_info_util.current_name_stack()
