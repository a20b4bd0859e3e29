"""``keyfan.audit``: find key misuse in a per-example function, statically."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from keyfan._audit._findings import build_report
from keyfan._audit._report import AuditReport
from keyfan._audit._trace import parse_levels, trace
from keyfan._checks import as_int
from keyfan._jaxinternals import require_sanitizer
from keyfan._keyflow.batching import Sink, checking
from keyfan._keyflow.flow import analyze
from keyfan.typing import InAxes, PyTree

__all__ = ["audit"]


def audit(f: Callable[..., PyTree], *example_args: PyTree, in_axes: InAxes | list[InAxes] = 0,
          axis_name: Hashable | list[Hashable | None] | None = None, static_argnums: int | Sequence[int] | None = None,
          **example_kwargs: PyTree) -> AuditReport:
    """Finds key misuse in ``f``, the function of ONE example, under the vmaps ``in_axes`` gives.

    ``f`` is traced once with ``jax.make_jaxpr`` on per-example shapes; each input is marked with
    the vmap levels it is mapped over, marks are propagated by data dependence (through ``jit``,
    ``remat``, custom derivatives, ``cond``, ``scan`` and ``while``), and every random draw is
    checked. Nothing is run or compiled. Findings (see :class:`keyfan.AuditKind`):

    * ``shared-draw``: a draw whose key is not mapped over some vmap level, so every example
      along it gets the same values (the ``in_axes=None`` key bug); ``closure-key`` and
      ``constant-key`` when the key is closed over or made from a constant seed inside ``f``;
    * ``key-reuse``: one key consumed by two draws (typed and raw keys alike);
      ``split-then-reuse``: a key used after being split; ``fold-in-twice``: the same data folded
      into the same key twice; ``loop-reuse``: a key consumed on every loop iteration;
    * ``broadcast-key``: a draw from copies of one key (``jnp.tile``, ``broadcast_to``, ``stack``)
      inside ``f``.

    Sharing that is meant is declared, not guessed: draws inside ``kf.shared_randomness()`` or
    under ``kf.vmap(..., randomness="same")`` are reported as allowed. ``axis_index(name)`` of a
    level's ``axis_name`` varies over that level, so ``fold_in(key, axis_index("b"))`` is correct.

    Args:
      f: the per-example function.
      *example_args: one example's positional arguments: arrays or ``jax.ShapeDtypeStruct``
        with PER-EXAMPLE shapes (a raw key is ``uint32[2]``, a typed key has shape ``()``), or
        any pytree ``jax.jit`` accepts (``TrainState``, optax states, NNX modules, ``nnx.Rngs``,
        Equinox modules). Non-array leaves (strings, functions) are passed as constants.
      in_axes: the ``in_axes`` of the vmap ``f`` runs under, as in ``jax.vmap`` (default 0); a
        ``list`` of them for nested vmaps, outermost first (``[(0, None), (0, 0)]`` is
        ``vmap(vmap(f, in_axes=(0, 0)), in_axes=(0, None))``); or None to audit ``f`` as it runs
        (a whole train step): reuse is checked, and every vmap ``f`` traces itself (any wrapper,
        nested, inside ``jit``/``scan``/``cond``/``checkpoint``) is checked with
        ``kf.sanitize``'s rule, its broadcast keys reported as ``shared-draw`` with their lines.
        Only whether an axis is None matters.
      axis_name: the vmap's ``axis_name`` (a list, one per level, for nested vmaps), needed
        when ``f`` calls ``axis_index`` or collectives.
      static_argnums: as in ``jax.jit``: positional arguments passed as constants, every other
        leaf traced (Python numbers included). Default None: the arguments are read as ``f``'s own
        jit wrapper reads them (``eqx.filter_jit``: arrays traced, every other leaf static;
        ``jax.jit``: its ``static_argnums``; none or ``nnx.jit``: bare Python number arguments
        constant, numbers inside pytrees traced), and if that trace fails the other readings are
        tried before the first failure is raised.
      **example_kwargs: keyword arguments of ``f``, mapped at every level as in ``jax.vmap``.

    Returns:
      An :class:`keyfan.AuditReport`; ``report.ok`` is False when anything is flagged.

    Raises:
      ValueError, TypeError: bad ``in_axes``, ``axis_name`` or ``static_argnums`` (naming the
        argument), before tracing.
      keyfan.AuditTraceError: (a ``ValueError``) ``f`` could not be traced on the example
        arguments; the message lists them as traced, the cause is the original error.
      keyfan._jaxinternals.UnsupportedJaxError: (a ``RuntimeError``) the installed JAX is older
        than the audit needs (JAX >= 0.7: it checks the vmaps ``f`` traces as ``kf.sanitize``
        does); the message names the minimum.

    Examples:
      >>> import jax, jax.numpy as jnp, keyfan as kf
      >>> def noisy(x, key):
      ...     return x + jax.random.normal(key, x.shape)
      >>> x, key = jnp.zeros(3), jax.random.key(0)
      >>> kf.audit(noisy, x, key, in_axes=(0, None)).ok   # one key for the whole batch
      False
      >>> kf.audit(noisy, x, key, in_axes=(0, 0)).ok      # one key per example
      True
    """
    if not callable(f):
        raise TypeError(f"f must be callable (the per-example function), got {type(f).__name__} {f!r}.")
    levels = parse_levels(in_axes, axis_name)
    static = _static_argnums(static_argnums, len(example_args))
    require_sanitizer("kf.audit()")
    with checking(Sink("collect")) as inner:
        traced = trace(f, example_args, example_kwargs, levels, static_argnums=static)
    analysis = analyze(traced.closed, traced.in_levels, axis_levels=traced.axis_levels)
    return build_report(traced, analysis, inner.found)


def _static_argnums(static_argnums: object, count: int) -> tuple[int, ...] | None:
    if static_argnums is None:
        return None
    items = static_argnums if isinstance(static_argnums, (tuple, list)) else (static_argnums,)
    positions = []
    for i, item in enumerate(items):
        name = "static_argnums" if not isinstance(static_argnums, (tuple, list)) else f"static_argnums[{i}]"
        position = as_int(name, item)
        if not -count <= position < count:
            raise ValueError(f"{name}={position} names no positional example argument (there are {count}).")
        positions.append(position % count)
    return tuple(positions)
