"""Every use of JAX's internals in keyfan, in one place, named per JAX version.

keyfan's core (keys, samplers, ``kf.vmap``, transforms) runs on public JAX. A few features need
more: the key-flow engine reads jaxprs, ``kf.sanitize()`` interposes in JAX's batching
machinery, the streams register a PRNG implementation. Everything they use from
``jax.extend`` (public, without a compatibility promise), ``jax._src`` and ``jax.interpreters``
(private) or from private attributes is imported or read HERE and nowhere else in keyfan, so a
new JAX release is checked (and, if it moved something, fixed) in this package alone.
``grep -rn "jax._src\\|jax.extend\\|jax.interpreters" src/`` finds only this package.

One module per job:

* :mod:`~keyfan._jaxinternals.core`: the jaxpr types (``ClosedJaxpr``, ``Jaxpr``, ``JaxprEqn``,
  ``Literal``, ``Var``), ``jaxprs_in_params`` and ``Tracer``, for the key-flow engine, the audit
  and ``keyfan.pitfalls``;
* :mod:`~keyfan._jaxinternals.random`: ``define_prng_impl``, for the streams;
* :mod:`~keyfan._jaxinternals.source_info`: the source line and name stack of the equation
  being traced, and where ``jax.random``'s functions live (to name the API a draw came from);
* :mod:`~keyfan._jaxinternals.config`: a keyfan setting that is part of JAX's trace context
  and jit cache key (so functions traced before a check are traced again under it);
* :mod:`~keyfan._jaxinternals.batching`: the interposition in ``BatchTrace`` behind
  ``kf.sanitize()`` and whole-program audits.

What each version offers (read from the installed sources of every version keyfan is tested
on; see docs/compatibility.md for the tested table):

==========================  =================================================================
thing                       JAX versions and how keyfan uses it
==========================  =================================================================
jaxpr types                 ``jax.extend.core`` on every version >= 0.5.
``jaxprs_in_params``        ``jax.extend.core`` from 0.10; ``jax._src.core`` before.
``new_jaxpr_eqn``           ``jax.extend.core`` from 0.10; ``jax._src.core`` before (one-equation
                            jaxprs for the sanitizer); ``Var(aval)`` from 0.6, ``Var(suffix,
                            aval)`` in 0.5; ``DebugInfo`` needs names (not None) in 0.5 and 0.6.
``Tracer``                  ``jax.core.Tracer`` on every version >= 0.5.
``define_prng_impl``        ``jax.extend.random``, same keywords on every version >= 0.5.
source info                 ``jax.extend.source_info_util.current()`` (``.traceback.frames``:
                            ``file_name``, ``line_num``, ``function_name``) and
                            ``current_name_stack()`` on every version >= 0.5.
``jax.random``'s files      ``jax/_src/random.py`` up to 0.9; ``jax/_src/random/core.py`` from 0.10.
config state                ``jax._src.config.string_or_object_state``: ``include_in_jit_key``
                            from 0.6, ``include_in_trace_context`` from 0.8; the trace context
                            takes extra entries through ``register_trace_context_callback``
                            in 0.7 (and 0.8 with an older jaxlib); 0.5 and 0.6 have a fixed
                            trace context (captured by JAX's caches at import): no way in.
``BatchTrace``              ``jax._src.interpreters.batching.BatchTrace`` with
                            ``__init__(parent_trace, tag, axis_data)``, ``process_primitive``,
                            ``to_batch_info`` (``None`` for not mapped), ``axis_data.name`` /
                            ``.size`` and ``parent_trace``, and the user's vmap entered through
                            ``_batch_inner``: the same from 0.5 to 0.10. ``batching.batch`` and
                            ``batching.from_elt`` take ``sum_match`` from 0.9 (not before).
trace stack                 ``jax._src.core.trace_ctx.trace``, ``Tracer._trace``, a JVP
                            tracer's ``primal``: the same from 0.5 to 0.10.
==========================  =================================================================

Every name that is not in all of these versions (or that a future JAX may drop) is found with
:func:`lookup`, which tries only the places declared for the installed version; a name not
found is a :class:`Missing` stand-in, so ``import keyfan`` still works, and its use (or
``kf.sanitize()``) raises :class:`UnsupportedJaxError` naming the name, the versions that have it
and the installed JAX.

So the sanitizer and the audit (which checks the vmaps a function traces the sanitizer's way)
need JAX >= :data:`SANITIZER_MIN_JAX`; below it,
:func:`require_sanitizer` raises :class:`UnsupportedJaxError` naming that minimum, while
``import keyfan`` and the core work.
"""

from __future__ import annotations

import re
from typing import Any

import jax

__all__ = ["JAX_VERSION", "SANITIZER_MIN_JAX", "Missing", "UnsupportedJaxError", "jax_version", "lookup",
           "missing_names", "require_sanitizer", "sanitizer_unavailable"]


def jax_version(text: str) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of a JAX version string (``"0.10.2"``, ``"0.9.0.1"``, ``"0.11.0.dev2026"``)."""
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if found is None:
        raise ValueError(f"not a JAX version: {text!r}")
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch or 0)


JAX_VERSION = jax_version(jax.__version__)
"""The installed JAX's ``(major, minor, patch)``."""

SANITIZER_MIN_JAX = (0, 7, 0)
"""The oldest JAX ``kf.sanitize()`` runs on: the first whose trace context takes a keyfan entry
(so functions traced before a check are traced again under it)."""


class UnsupportedJaxError(RuntimeError):
    """A keyfan feature that the installed JAX cannot run (it names the minimum JAX it needs)."""


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


class Missing:
    """The stand-in for a JAX internal this JAX does not have (see :func:`lookup`).

    Importing keyfan never fails on it; calling it, or reading an attribute of it, raises
    :class:`UnsupportedJaxError` naming what keyfan looked for, on which JAX versions it is
    known, and the installed JAX.
    """

    def __init__(self, what: str, known: str):
        self.what, self.known = what, known

    def message(self) -> str:
        return (f"keyfan needs {self.what}, which JAX offers on {self.known}; the installed JAX "
                f"{jax.__version__} has none of these. Fix: install a JAX in keyfan's declared range "
                f"(see docs/compatibility.md), or report the new JAX release to keyfan.")

    def __call__(self, *args: object, **kwargs: object) -> object:
        raise UnsupportedJaxError(self.message())

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        raise UnsupportedJaxError(self.message())

    def __repr__(self) -> str:
        return f"<missing on JAX {jax.__version__}: {self.what}>"


_MISSING: list[Missing] = []


def lookup(what: str, *places: tuple[str, str, tuple[int, int] | None, tuple[int, int] | None]) -> Any:
    """A JAX internal, looked up where the installed JAX version keeps it.

    Args:
      what: the thing's name for messages (``"new_jaxpr_eqn"``).
      places: ``(module, attribute, first, last)``: the module path and attribute on the JAX
        versions from ``first`` to ``last`` (``(major, minor)``, inclusive; None: unbounded).
        Only the places whose range holds the installed JAX are tried, in order; a JAX newer
        than every range tries the places whose range is open above.

    Returns:
      The attribute, or a :class:`Missing` stand-in (listed by :func:`missing_names`) whose use
      raises :class:`UnsupportedJaxError` naming ``what``, the versions that have it and this JAX.
    """
    import importlib

    minor = JAX_VERSION[:2]
    for module, attribute, first, last in places:
        if (first is not None and minor < first) or (last is not None and minor > last):
            continue
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError):
            continue
    known = "; ".join(f"{module}.{attribute} (JAX {_range(first, last)})" for module, attribute, first, last in places)
    stand_in = Missing(what, known)
    _MISSING.append(stand_in)
    return stand_in


def _range(first: tuple[int, int] | None, last: tuple[int, int] | None) -> str:
    low = f">= {_dotted(first)}" if first else ""
    high = f"<= {_dotted(last)}.x" if last else ""
    return ", ".join(filter(None, (low, high))) or "any"


def missing_names() -> list[str]:
    """The JAX internals that :func:`lookup` did not find on the installed JAX (so far)."""
    return [m.what for m in _MISSING]


def sanitizer_unavailable() -> str | None:
    """Why ``kf.sanitize()`` cannot run on the installed JAX, or None if it can."""
    if JAX_VERSION < SANITIZER_MIN_JAX:
        return (f"it needs JAX >= {_dotted(SANITIZER_MIN_JAX)}, whose trace context can carry the "
                f"check (so functions traced before the check are traced again under it); this is "
                f"JAX {jax.__version__}")
    from keyfan._jaxinternals import batching, config

    missing = batching.missing() or config.missing() or ", ".join(missing_names())
    if missing:
        return (f"this JAX {jax.__version__} no longer offers {missing}, which its batching check "
                f"interposes on (tested on JAX >= {_dotted(SANITIZER_MIN_JAX)}; see docs/compatibility.md)")
    return None


def require_sanitizer(feature: str = "kf.sanitize()") -> None:
    """Raises :class:`UnsupportedJaxError` if the installed JAX cannot run the sanitizer.

    Args:
      feature: what the user asked for, named in the error (``"kf.sanitize()"``,
        ``"KEYFAN_SANITIZE=1"``, ``"pytest --keyfan-sanitize"``, ``"kf.audit()"``).
    """
    reason = sanitizer_unavailable()
    if reason is not None:
        raise UnsupportedJaxError(
            f"{feature} is not available: {reason}. Fix: upgrade JAX (pip install "
            f"'jax>={_dotted(SANITIZER_MIN_JAX)}'); on this JAX, kf.vmap(f, ..., randomness=\"error\") "
            f"still checks the draws of a per-example function.")
