"""``kf.vmap``: ``jax.vmap`` that knows what to do with a key it is not told to map.

``jax.vmap`` has no notion of randomness: a key passed with ``in_axes=None`` is silently shared
by the whole batch, so every example gets the same noise, the same dropout mask, the same crop.
``kf.vmap`` makes the choice explicit, as ``torch.func.vmap(randomness=...)`` and
``hk.vmap(split_rng=...)`` do, and reproducibly:

* ``"different"``: each unmapped key argument is fanned out over the mapped axis with
  ``kf.fan_out``, so example ``i`` sees ``kf.at(key, i)``: bit for bit the hand-written
  ``jax.vmap(f)(..., kf.fan_out(key, n))``, and (on the ``"threefry"`` stream) independent of the
  batch size. Nested ``"different"`` maps give example ``(i, j)`` the key ``kf.at(key, (i, j))``.
* ``"same"``: the key is broadcast on purpose; ``f`` is traced inside ``kf.shared_randomness()``
  so that ``kf.audit`` reports its draws as intended sharing.
* ``"error"`` (default): ``f`` is traced once per abstract signature and a
  :class:`SharedRandomnessError` names the argument if a draw's key does not vary over the batch.
  Functions that make no shared draw run as plain ``jax.vmap``.
"""

from __future__ import annotations

import enum
import functools
import weakref
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Literal

import jax
import numpy as np

from keyfan import _keyflow
from keyfan._checks import as_size
from keyfan._keyarg import check_key
from keyfan._keyflow.args import Bound, bind, check_axes, check_key_argnums
from keyfan._keyflow.errors import SharedRandomnessError
from keyfan._keyflow.example import Example, example_jaxpr
from keyfan._keyflow.findings import Finding, error_text, vmap_policy
from keyfan._keyflow.primitives import declared_shared, draw_name
from keyfan.keys import fan_out
from keyfan.scopes import shared_randomness
from keyfan.streams import get_stream
from keyfan.typing import InAxes, PyTree, StreamName

__all__ = ["Randomness", "vmap"]


class Randomness(enum.Enum):
    """What ``kf.vmap`` does with a key argument that is not mapped (``randomness=``; the string
    values are accepted too).

    Examples:
      >>> import jax, jax.numpy as jnp, keyfan as kf
      >>> def noisy(x, key):
      ...     return x + jax.random.normal(key, x.shape)
      >>> ys = kf.vmap(noisy, in_axes=(0, None), randomness=kf.Randomness.SAME)(jnp.zeros((2, 3)), kf.key(0))
      >>> bool((ys[0] == ys[1]).all())
      True
    """

    DIFFERENT = "different"
    """Fan the key out: example ``i`` gets ``kf.at(key, i)``."""
    SAME = "same"
    """Share the key across the batch, on purpose."""
    ERROR = "error"
    """Raise :class:`SharedRandomnessError` if the function draws from a shared key."""


RandomnessLike = Randomness | Literal["different", "same", "error"]



def _canonicalize(randomness: Any) -> Randomness:
    """The policy named by ``randomness`` (a :class:`Randomness` or its string value)."""
    if isinstance(randomness, Randomness):
        return randomness
    if isinstance(randomness, str):
        try:
            return Randomness(randomness)
        except ValueError:
            pass
    choices = ", ".join(repr(r.value) for r in Randomness)
    error = ValueError if isinstance(randomness, str) else TypeError
    raise error(f"randomness must be one of {choices} (or a kf.Randomness); got {randomness!r}.")


def vmap(f: Callable[..., PyTree], in_axes: InAxes = 0, out_axes: PyTree = 0, *,
         randomness: RandomnessLike = "error", axis_name: Hashable | None = None, axis_size: int | None = None,
         spmd_axis_name: Hashable | tuple[Hashable, ...] | None = None, key_argnums: int | Sequence[int] | None = None,
         stream: StreamName | None = None) -> Callable[..., PyTree]:
    """Vectorizing map with an explicit policy for keys that are not mapped.

    A drop-in for ``jax.vmap``: ``in_axes``, ``out_axes``, ``axis_name``, ``axis_size`` and
    ``spmd_axis_name`` mean what they mean there (keyword arguments are mapped over axis 0),
    and the result is the same whenever ``f`` draws no randomness from an unmapped key.

    Keys are found by type (typed key arrays from ``kf.key`` or ``jax.random.key``, anywhere in
    the arguments, a single typed key passed by keyword included) or named with ``key_argnums``
    (raw ``uint32[2]`` keys from ``jax.random.PRNGKey``, which look like any other data). Mapped
    keys (``in_axes=0`` over an array of keys) are used as given.

    Args:
      f: the function of one example.
      in_axes: as in ``jax.vmap``: an int or None for every positional argument, or a tuple with
        one pytree prefix of ints and Nones per positional argument.
      out_axes: as in ``jax.vmap``.
      randomness: ``"different"``, ``"same"`` or ``"error"`` (default); see the module docstring.
        Under ``"error"``, draws traced inside ``kf.shared_randomness()`` are allowed.
      axis_name: a name for the mapped axis, for collectives inside ``f``.
      axis_size: the batch size, needed when no argument is mapped.
      spmd_axis_name: as in ``jax.vmap``.
      key_argnums: positions of arguments whose leaves are keys (needed for raw keys).
      stream: the stream raw and JAX-typed keys are fanned out on (default ``"threefry"``); a
        ``kf.key`` carries its own.

    Returns:
      The batched function. Under ``"different"``, for an unmapped key ``key`` and a batch of
        size ``n``, it equals ``jax.vmap(f, in_axes=...)`` called with ``kf.fan_out(key, n)``
        mapped over axis 0 in place of ``key``, bit for bit.

    Raises:
      SharedRandomnessError: (a ``ValueError``) under ``"error"``, when a draw of ``f`` uses a key
        that is the same for every example; the message names the argument it comes from.
      ValueError, TypeError: bad ``in_axes``, sizes, ``key_argnums``, policy, or keys (naming the
        argument), raised before JAX sees the call.

    Examples:
      >>> import jax, jax.numpy as jnp, keyfan as kf
      >>> def noisy(x, key):
      ...     return x + jax.random.normal(key, x.shape)
      >>> key, xs = kf.key(0), jnp.zeros((4, 3))
      >>> ys = kf.vmap(noisy, in_axes=(0, None), randomness="different")(xs, key)
      >>> bool((ys == jax.vmap(noisy)(xs, kf.fan_out(key, 4))).all())
      True
    """
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__} {f!r}.")
    policy = _canonicalize(randomness)
    if axis_name is not None:
        try:
            hash(axis_name)
        except TypeError:
            raise TypeError(f"axis_name must be a hashable name for the mapped axis (a str, say), as in "
                            f"jax.vmap; got {type(axis_name).__name__} {axis_name!r}.") from None
    in_axes = check_axes("in_axes", in_axes)
    out_axes = check_axes("out_axes", out_axes)
    argnums = check_key_argnums(key_argnums)
    size = None if axis_size is None else as_size("axis_size", axis_size)
    if stream is not None:
        get_stream(stream)
    body = _shared(f) if policy is Randomness.SAME else f

    @functools.wraps(f)
    def mapped(*args: Any, **kwargs: Any) -> Any:
        bound = bind(f, in_axes, argnums, size, args, kwargs)
        values, axes = list(bound.values), [leaf.axis for leaf in bound.leaves]
        _check_named_keys(bound, stream)
        if policy is Randomness.DIFFERENT:
            for i in _unmapped_keys(bound, stream):
                values[i], axes[i] = fan_out(values[i], bound.size, stream=stream), 0
        elif policy is Randomness.ERROR:
            _check_no_shared_draws(f, bound, axis_name)
        flat = _flat(body, bound.treedef)
        return jax.vmap(flat, in_axes=tuple(axes), out_axes=out_axes, axis_name=axis_name,
                        axis_size=bound.size, spmd_axis_name=spmd_axis_name)(*values)

    return mapped


def _shared(f: Callable[..., Any]) -> Callable[..., Any]:
    def shared(*args: Any, **kwargs: Any) -> Any:
        with shared_randomness():
            return f(*args, **kwargs)
    return shared


def _flat(f: Callable[..., Any], treedef: Any) -> Callable[..., Any]:
    def flat(*values: Any) -> Any:
        args, kwargs = jax.tree_util.tree_unflatten(treedef, values)
        return f(*args, **kwargs)
    return flat


def _check_named_keys(bound: Bound, stream: str | None) -> None:
    """Every leaf of a ``key_argnums`` argument is a key (raw or typed), of any batch shape."""
    for leaf, value in zip(bound.leaves, bound.values, strict=True):
        if leaf.key == "raw":
            check_key(leaf.name, value, stream=stream, batched=True)


def _unmapped_keys(bound: Bound, stream: str | None) -> list[int]:
    """Indices of the unmapped keys to fan out, each checked to be a single key."""
    keys = [i for i, leaf in enumerate(bound.leaves) if leaf.key is not None]
    if not keys:
        raise ValueError(
            "randomness='different' but no argument is a key: typed keys (kf.key, "
            "jax.random.key) are found by type, raw uint32[2] keys (jax.random.PRNGKey) must be "
            "named with key_argnums=. Pass the key as an argument, or name it."
        )
    unmapped = []
    for i in keys:
        leaf = bound.leaves[i]
        if leaf.axis is not None:
            continue
        arg = check_key(leaf.name, bound.values[i], stream=stream, batched=True)
        if arg.shape != ():
            raise ValueError(
                f"{leaf.name} is an unmapped array of keys of shape {arg.shape}; "
                f"randomness='different' fans out a single key. Map it (in_axes=0) if it holds "
                f"one key per example, or pass a single key."
            )
        unmapped.append(i)
    return unmapped


# -- randomness="error" -------------------------------------------------------------------------

_CACHE: weakref.WeakKeyDictionary[Any, dict[Any, list[Finding]]] = weakref.WeakKeyDictionary()
"""Shared draws per function and abstract signature: each signature is traced once."""


def _per_example(value: Any, axis: int | None) -> jax.ShapeDtypeStruct | None:
    """The abstract value of one example of a leaf, or None for a non-array (static) leaf."""
    try:
        aval = jax.typeof(value)
    except TypeError:
        return None
    shape = tuple(aval.shape)
    if axis is not None:
        shape = shape[:axis] + shape[axis + 1:]
    return jax.ShapeDtypeStruct(shape, aval.dtype, weak_type=aval.weak_type)  # type: ignore[no-untyped-call]


def _signature(bound: Bound, structs: Sequence[jax.ShapeDtypeStruct | None]) -> Any:
    """What the check depends on: structure, per-example avals, which leaves are mapped, and the
    values of static (non-array) leaves; None if that is not hashable."""
    signature = (bound.treedef, bound.size, tuple(
        (s.shape, s.dtype, s.weak_type, leaf.axis is None) if s is not None else ("static", value)
        for s, leaf, value in zip(structs, bound.leaves, bound.values, strict=True)))
    try:
        hash(signature)
    except TypeError:
        return None
    return signature


def _trace_shared_draws(f: Callable[..., Any], bound: Bound,
                        structs: Sequence[jax.ShapeDtypeStruct | None], axis_name: Any) -> list[Finding]:
    """Traces one example of ``f`` and returns a finding for each unintended shared draw."""
    dynamic = [i for i, s in enumerate(structs) if s is not None]
    example = Example(list(bound.values), bound.treedef, dynamic)
    env = None if axis_name is None else [(axis_name, bound.size)]
    closed = example_jaxpr(f, example, [s for s in structs if s is not None], axis_env=env)
    varying = [bound.leaves[i].axis is not None for i in dynamic]
    sites = _keyflow.draws(closed, varying, axis_names=() if axis_name is None else (axis_name,))
    key_arguments = any(leaf.key is not None for leaf in bound.leaves)
    found = []
    for site in sites:
        if 0 in site.levels or declared_shared(site.name_stack):
            continue
        sources = sorted(dynamic[i] for i in site.sources)
        keys = [i for i in sources if bound.leaves[i].key is not None]
        named = keys or sources
        found.append(vmap_policy(
            draw_name(site.primitive, site.api), site.location, origins=[bound.leaves[i].name for i in named],
            key_arguments=key_arguments, raw_hint=not keys and any(_looks_raw(bound.values[i]) for i in named)))
    return list(dict.fromkeys(found))


def _check_no_shared_draws(f: Callable[..., Any], bound: Bound, axis_name: Any) -> None:
    """Raises :class:`SharedRandomnessError` if a draw of ``f`` is the same for every example;
    the answer is cached per function and signature, so each signature is traced once."""
    structs = [_per_example(v, leaf.axis) for v, leaf in zip(bound.values, bound.leaves, strict=True)]
    signature = _signature(bound, structs)
    try:
        cache = _CACHE.setdefault(f, {}) if signature is not None else {}
    except TypeError:  # f cannot be weakly referenced
        cache = {}
    key = (signature, axis_name)
    if key not in cache:
        cache[key] = _trace_shared_draws(f, bound, structs, axis_name)
    if cache[key]:
        name = getattr(f, "__name__", type(f).__name__)
        raise SharedRandomnessError(error_text(f"kf.vmap({name}, randomness='error')", cache[key]), cache[key])


def _looks_raw(value: Any) -> bool:
    shape = tuple(getattr(value, "shape", ()))
    return shape[-1:] == (2,) and np.dtype(getattr(value, "dtype", np.float32)) == np.uint32
