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
import numpy as np
from jax.extend.core import ClosedJaxpr as ClosedJaxpr
from jax.extend.core import Jaxpr as Jaxpr
from jax.extend.core import JaxprEqn as JaxprEqn
from jax.extend.core import Literal as Literal
from jax.extend.core import Var as Var

try:
    from jax.extend.core import jaxprs_in_params as jaxprs_in_params
except ImportError:  # JAX < 0.10
    from jax._src.core import jaxprs_in_params as jaxprs_in_params

__all__ = ["ClosedJaxpr", "Jaxpr", "JaxprEqn", "Literal", "Tracer", "Var", "is_tracer", "jaxprs_in_params",
           "jit_static_argnums", "one_equation"]

Tracer = jax.core.Tracer


def is_tracer(value: Any) -> bool:
    """True for an abstract value inside ``jit``, ``vmap`` or ``grad`` (no concrete number)."""
    return isinstance(value, Tracer)


def one_equation(primitive: Any, params: dict[str, Any], in_avals: list[Any], n_out: int,
                 source_info: Any) -> ClosedJaxpr:
    """A closed jaxpr of one equation binding ``primitive`` with ``params`` to fresh inputs of
    ``in_avals`` (its outputs typed as float32 scalars: only their number is read). Built with
    ``jax.extend.core.new_jaxpr_eqn`` and a ``DebugInfo`` (``jax._src.linear_util``; a jaxpr
    without one is deprecated from 0.5), the same from 0.5 to 0.10."""
    from jax._src import core as _core
    from jax._src import linear_util as _lu
    from jax.extend.core import new_jaxpr_eqn

    invars = [Var(aval) for aval in in_avals]
    outvars = [Var(_core.ShapedArray((), np.float32)) for _ in range(n_out)]
    eqn = new_jaxpr_eqn(invars, outvars, primitive, params, _core.no_effects, source_info)
    jaxpr = Jaxpr([], invars, outvars, [eqn], debug_info=_lu.DebugInfo("keyfan", str(primitive), None, None))
    return ClosedJaxpr(jaxpr, [])


def jit_static_argnums(f: Any) -> tuple[int, ...] | None:
    """The ``static_argnums`` of a ``jax.jit``-wrapped function, or None if ``f`` is not one.

    Read from the jitted function's ``_jit_info`` (a private attribute of JAX's ``PjitFunction``,
    present since JAX 0.4.36 and in 0.10; absent: None, the reading of a plain function).
    """
    info = getattr(f, "_jit_info", None)
    static = getattr(info, "static_argnums", None)
    return tuple(static) if isinstance(static, tuple) else None
