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
                            ``_batch_inner``: the same from 0.5 to 0.10.
trace stack                 ``jax._src.core.trace_ctx.trace``, ``Tracer._trace``, a JVP
                            tracer's ``primal``: the same from 0.5 to 0.10.
==========================  =================================================================

So the sanitizer and the audit (which checks the vmaps a function traces the sanitizer's way)
need JAX >= :data:`SANITIZER_MIN_JAX`; below it,
:func:`require_sanitizer` raises :class:`UnsupportedJaxError` naming that minimum, while
``import keyfan`` and the core work.
"""

from __future__ import annotations

import re

import jax

__all__ = ["JAX_VERSION", "SANITIZER_MIN_JAX", "UnsupportedJaxError", "jax_version", "require_sanitizer",
           "sanitizer_unavailable"]


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


def sanitizer_unavailable() -> str | None:
    """Why ``kf.sanitize()`` cannot run on the installed JAX, or None if it can."""
    if JAX_VERSION < SANITIZER_MIN_JAX:
        return (f"it needs JAX >= {_dotted(SANITIZER_MIN_JAX)}, whose trace context can carry the "
                f"check (so functions traced before the check are traced again under it); this is "
                f"JAX {jax.__version__}")
    from keyfan._jaxinternals import batching, config

    missing = batching.missing() or config.missing()
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
