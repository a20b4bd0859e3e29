"""The jaxpr types the key-flow engine and the audit read, and JAX's ``Tracer``.

``ClosedJaxpr``, ``Jaxpr``, ``JaxprEqn``, ``Literal`` and ``Var`` come from ``jax.extend.core``
on every JAX >= 0.5; ``jaxprs_in_params`` joined it in 0.10 (before, ``jax._src.core`` had the
same function). ``Tracer`` is the public ``jax.core.Tracer``. Fields read on them: ``eqns``,
``invars``, ``outvars``, ``constvars``, ``params``, ``primitive.name``, ``effects``,
``source_info`` (``name_stack``, ``traceback``), ``aval``, ``val``, ``jaxpr``, ``consts``.
"""

from __future__ import annotations

from typing import Any

import jax.core
from jax.extend.core import ClosedJaxpr as ClosedJaxpr
from jax.extend.core import Jaxpr as Jaxpr
from jax.extend.core import JaxprEqn as JaxprEqn
from jax.extend.core import Literal as Literal
from jax.extend.core import Var as Var

try:
    from jax.extend.core import jaxprs_in_params as jaxprs_in_params
except ImportError:  # JAX < 0.10
    from jax._src.core import jaxprs_in_params as jaxprs_in_params

__all__ = ["ClosedJaxpr", "Jaxpr", "JaxprEqn", "Literal", "Tracer", "Var", "is_tracer", "jaxprs_in_params"]

Tracer = jax.core.Tracer


def is_tracer(value: Any) -> bool:
    """True for an abstract value inside ``jit``, ``vmap`` or ``grad`` (no concrete number)."""
    return isinstance(value, Tracer)
