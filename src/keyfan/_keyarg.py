"""The one checker every keyfan function runs on its ``key`` argument.

keyfan accepts three kinds of key, and gives results back in the kind it was given:

* typed keys of a keyfan stream (``kf.key(seed)``): they carry their stream;
* raw ``uint32[..., 2]`` key data (``jax.random.PRNGKey(seed)``): read on the stream named by
  ``stream=`` (default ``"threefry"``);
* typed keys of JAX's own ``threefry2x32`` (``jax.random.key(seed)``): the same key data, read
  on the stream named by ``stream=`` (default ``"threefry"``).

A key of any other implementation (``rbg``, ``unsafe_rbg``, ...) has different key data and is
refused with a ``TypeError``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from keyfan._checks import is_typed_key
from keyfan.streams import DEFAULT_STREAM, STREAMS, Stream, Words, get_stream

__all__ = ["KeyArg", "check_key"]

_JAX_THREEFRY = "threefry2x32"


def raw_data(key: Array) -> Array:
    """The uint32 ``(..., 2)`` data of a typed or raw key, as a JAX array; free inside ``jit``."""
    if is_typed_key(key):
        # JAX 0.5 hands back the NumPy array a key was made from: keep keyfan's arithmetic in JAX.
        return jnp.asarray(jax.random.key_data(key))
    return key


@dataclasses.dataclass(frozen=True)
class KeyArg:
    """A checked key argument: the key as given, its stream, and how to give keys back."""

    value: Array
    """The key as given (typed, or raw uint32 data as a JAX array)."""
    stream: Stream
    kind: str
    """``"keyfan"``, ``"jax"`` (JAX's own threefry2x32 typed key) or ``"raw"``."""

    @property
    def data(self) -> Array:
        """uint32 array of shape ``(*batch, 2)``."""
        return raw_data(self.value)

    @property
    def words(self) -> Words:
        return self.data[..., 0], self.data[..., 1]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape if self.kind != "raw" else self.value.shape[:-1]

    def wrap(self, data: Array) -> Array:
        """Key data ``uint32[..., 2]`` as keys of the kind this argument was given in."""
        if self.kind == "keyfan":
            return cast(Array, jax.random.wrap_key_data(data, impl=self.stream.spec))
        if self.kind == "jax":
            return cast(Array, jax.random.wrap_key_data(data, impl=_JAX_THREEFRY))
        return data

    def wrap_words(self, words: Words) -> Array:
        return self.wrap(jnp.stack(words, axis=-1))


def _stream_of_typed(name: str, key: Any) -> Stream | None:
    impl = jax.random.key_impl(key)
    if isinstance(impl, str):
        if impl == _JAX_THREEFRY:
            return None
        raise TypeError(
            f"{name} is a key of JAX's {impl!r} implementation; keyfan streams are Threefry-2x32 "
            f"and cannot read its key data. Make keys with kf.key(seed) or jax.random.key(seed)."
        )
    for stream in STREAMS.values():
        if impl == stream.spec:
            return stream
    raise TypeError(
        f"{name} is a key of the implementation {impl!r}, which is not a keyfan stream "
        f"({', '.join(map(repr, STREAMS))}). Make keys with kf.key(seed)."
    )


def check_key(name: str, key: Any, *, stream: str | Stream | None = None,
              batched: bool = False) -> KeyArg:
    """Checks a key argument and returns its data and stream.

    Args:
      name: the argument's name, for error messages.
      key: a typed key (keyfan or JAX threefry2x32) or raw ``uint32[..., 2]`` key data.
      stream: the stream to read raw or JAX-typed keys on; must agree with a keyfan key's own.
      batched: allow an array of keys; otherwise the key must be a single key.

    Raises:
      TypeError: ``key`` is not a key, or is a key of a foreign implementation.
      ValueError: ``stream`` disagrees with the key's stream, or ``key`` is batched when a single
        key is expected.
    """
    requested = None if stream is None else get_stream(stream)
    dtype = getattr(key, "dtype", None)
    if is_typed_key(key):
        own = _stream_of_typed(name, key)
        if own is not None:
            if requested is not None and requested is not own:
                raise ValueError(
                    f"{name} is a key of stream {own.name!r} but stream={requested.name!r} was "
                    f"passed; drop stream= (a keyfan key carries its stream) or re-key with "
                    f"kf.key(seed, stream={requested.name!r})."
                )
            arg = KeyArg(key, own, "keyfan")
        else:
            arg = KeyArg(key, requested or STREAMS[DEFAULT_STREAM], "jax")
    elif dtype is not None and np.dtype(dtype) == np.uint32 and getattr(key, "ndim", 0) >= 1 \
            and key.shape[-1] == 2:
        arg = KeyArg(jnp.asarray(key), requested or STREAMS[DEFAULT_STREAM], "raw")
    else:
        hint = ""
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            hint = f" Did you mean kf.key({key})?"
        elif dtype is not None and getattr(key, "shape", ())[-1:] == (2,):
            hint = f" Raw key data must have dtype uint32 (as jax.random.PRNGKey makes it), not {dtype}."
        shape = getattr(key, "shape", None)
        got = f"{type(key).__name__}" + (f" of shape {shape} and dtype {dtype}" if shape is not None else f" {key!r}")
        raise TypeError(
            f"{name} must be a key: kf.key(seed), jax.random.key(seed), or raw uint32 key data "
            f"of shape (..., 2) from jax.random.PRNGKey(seed); got {got}.{hint}"
        )
    if not batched and arg.shape != ():
        raise ValueError(
            f"{name} must be a single key, got an array of keys of shape {arg.shape}; "
            f"use kf.vmap or jax.vmap to map over keys."
        )
    return arg
