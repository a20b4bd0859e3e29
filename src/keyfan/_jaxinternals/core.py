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

from keyfan._jaxinternals import JAX_VERSION, lookup

__all__ = ["ClosedJaxpr", "Jaxpr", "JaxprEqn", "Literal", "Tracer", "Var", "is_tracer", "jaxpr_as_fun",
           "jaxprs_in_params", "jit_static_argnums", "one_equation"]

Tracer = jax.core.Tracer

jaxprs_in_params: Any = lookup("jaxprs_in_params", ("jax.extend.core", "jaxprs_in_params", (0, 10), None),
                               ("jax._src.core", "jaxprs_in_params", (0, 5), (0, 9)))
"""``jaxprs_in_params(params)``: the jaxprs among an equation's params (``jax.extend.core`` from
0.10, ``jax._src.core`` from 0.5 to 0.9)."""
jaxpr_as_fun: Any = lookup("jaxpr_as_fun", ("jax.extend.core", "jaxpr_as_fun", (0, 5), None))
"""``jaxpr_as_fun(closed_jaxpr)(*args)``: binds the closed jaxpr's equations again in the
current trace (``jax.extend.core`` on every JAX from 0.5; the ensemble trainer replays a
branch it traced once)."""
_new_jaxpr_eqn: Any = lookup("new_jaxpr_eqn", ("jax.extend.core", "new_jaxpr_eqn", (0, 10), None),
                             ("jax._src.core", "new_jaxpr_eqn", (0, 5), (0, 9)))
"""``new_jaxpr_eqn(invars, outvars, primitive, params, effects, source_info)``: ``jax.extend.core``
from 0.10, ``jax._src.core`` from 0.5 to 0.9."""
_debug_info: Any = lookup("DebugInfo", ("jax._src.core", "DebugInfo", (0, 5), None),
                          ("jax._src.linear_util", "DebugInfo", (0, 5), None))
"""``DebugInfo(traced_for, func_src_info, arg_names, result_paths)``: the same from 0.5 to 0.10."""
_no_effects: Any = lookup("no_effects", ("jax._src.core", "no_effects", (0, 5), None))


def is_tracer(value: Any) -> bool:
    """True for an abstract value inside ``jit``, ``vmap`` or ``grad`` (no concrete number)."""
    return isinstance(value, Tracer)


def one_equation(primitive: Any, params: dict[str, Any], in_avals: list[Any], n_out: int,
                 source_info: Any) -> ClosedJaxpr:
    """A closed jaxpr of one equation binding ``primitive`` with ``params`` to fresh inputs of
    ``in_avals`` (its outputs typed as float32 scalars: only their number is read). Built with
    ``new_jaxpr_eqn`` (``jax.extend.core`` from 0.10, ``jax._src.core`` before) and a ``DebugInfo``
    (a jaxpr without one is deprecated from 0.5); a ``Var`` is ``Var(aval)`` from 0.6 and
    ``Var(suffix, aval)`` in 0.5.

    Raises:
      UnsupportedJaxError: if this JAX lacks ``new_jaxpr_eqn``, ``DebugInfo`` or ``no_effects``.
    """
    invars = [_var(aval) for aval in in_avals]
    outvars = [_var(jax.core.ShapedArray((), np.float32)) for _ in range(n_out)]
    eqn = _new_jaxpr_eqn(invars, outvars, primitive, params, _no_effects, source_info)
    # Names for every input and output: JAX 0.5 and 0.6 refuse None for either.
    names = _debug_info("keyfan", str(primitive), ("",) * len(invars), ("",) * n_out)
    jaxpr = Jaxpr([], invars, outvars, [eqn], debug_info=names)
    return ClosedJaxpr(jaxpr, [])


def _var(aval: Any) -> Var:
    return Var(aval) if JAX_VERSION >= (0, 6, 0) else Var("", aval)


def jit_static_argnums(f: Any) -> tuple[int, ...] | None:
    """The ``static_argnums`` of a ``jax.jit``-wrapped function, or None if ``f`` is not one.

    Read from the jitted function's ``_jit_info`` (a private attribute of JAX's ``PjitFunction``,
    present from JAX 0.6 to 0.10, absent in 0.5; absent: None, the reading of a plain function).
    """
    info = getattr(f, "_jit_info", None)
    static = getattr(info, "static_argnums", None)
    return tuple(static) if isinstance(static, tuple) else None
