"""What a keyfan stream is: two per-element functions, from which everything else follows.

A stream is a pinned definition of random values. It is given by two functions that each
compute ONE element, from its coordinates, without building any array around it:

* ``child(key, index, size)``: the key at position ``index`` of ``split(key, size)``;
* ``element_bits(key, counter, size, bit_width)``: the value at flat position ``counter`` of
  ``random_bits(key, bit_width, shape)`` for a shape of ``size`` elements.

From these two, :class:`Stream` derives the five functions of a JAX PRNG implementation
(``seed``, ``split``, ``fold_in``, ``random_bits``, key shape ``(2,)``) and registers them with
the public ``jax.extend.random.define_prng_impl``, so a typed key carries its stream and every
``jax.random`` function works on it unchanged. keyfan's own fast samplers call the same two
functions over a flat index, so the two routes cannot drift apart.

Keys and counters are handled as pairs of uint32 words ("words"): nothing here depends on
``jax_enable_x64`` or on ``jax_threefry_partitionable``.
"""

from __future__ import annotations

import abc
import functools
import math

import jax
import jax.extend.random
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from keyfan._flat import flat_loop
from keyfan.streams._per_key import per_key
from keyfan.streams._threefry2x32 import threefry2x32

Words = tuple[Array, Array]

MAX_DRAW_SIZE = 2**32 - 1
"""Largest number of values one key draws in a single call (counters are one uint32 word)."""


def _as_words(key_data: Array) -> Words:
    return key_data[..., 0], key_data[..., 1]


def _stack_words(words: Words) -> Array:
    return jnp.stack(words, axis=-1)


class Stream(abc.ABC):
    """A named, pinned random stream: two per-element functions and what follows from them."""

    name: str
    tag: str
    size_dependent: bool
    """True when ``child(key, i, size)`` depends on ``size`` (the legacy split)."""

    @abc.abstractmethod
    def child(self, key: Words, index: Words, size: int | None) -> Words:
        """Key words at ``index = (hi, lo)`` of ``split(key, size)``; uint32 arrays, broadcast."""

    @abc.abstractmethod
    def element_bits(self, key: Words, counter: Array, size: int, bit_width: int) -> Array:
        """Value at flat position ``counter`` (uint32) of ``random_bits(key, bit_width, shape)``
        for a shape holding ``size`` values; an unsigned array of ``bit_width`` bits."""

    @abc.abstractmethod
    def check_draw_size(self, size: int, bit_width: int) -> None:
        """Raises ``ValueError`` if one key cannot draw ``size`` values of ``bit_width`` bits."""

    # -- Derived: the JAX PRNG implementation -------------------------------------------------

    def seed(self, seed: Array) -> Array:
        """uint32[2] key data for an integer seed, as ``PRNGKey`` maps it under ``x64``.

        The seed is sign-extended to 64 bits whatever its width, so ``seed(int32(-1))`` equals
        ``seed(int64(-1))`` and the mapping does not depend on ``jax_enable_x64``.
        """
        seed = jnp.asarray(seed)
        if seed.shape:
            raise TypeError(f"seed must be a scalar, got an array of shape {seed.shape}.")
        if not jnp.issubdtype(seed.dtype, jnp.integer):
            raise TypeError(f"seed must have an integer dtype, got {seed.dtype}.")
        if seed.dtype.itemsize == 8:
            hi = lax.convert_element_type(lax.shift_right_logical(seed, seed.dtype.type(32)), np.uint32)
            lo = lax.convert_element_type(seed & seed.dtype.type(0xFFFFFFFF), np.uint32)
        else:
            lo = lax.convert_element_type(seed, np.uint32)
            if jnp.issubdtype(seed.dtype, jnp.signedinteger):
                hi = jnp.where(seed < 0, np.uint32(0xFFFFFFFF), np.uint32(0))
            else:
                hi = jnp.zeros((), np.uint32)
        return jnp.stack([hi, lo])

    def fold_in(self, key_data: Array, data: Array) -> Array:
        """``jax.random.fold_in`` on one key: the hash of the counter ``(0, data)``."""
        data = lax.convert_element_type(data, np.uint32)
        k0, k1 = _as_words(key_data)
        return _stack_words(threefry2x32(k0, k1, jnp.zeros_like(data), data))

    def split(self, key_data: Array, shape: tuple[int, ...]) -> Array:
        """``jax.random.split(key, shape)`` on one key: ``prod(shape)`` children, flat order."""
        num = math.prod(shape)
        if num > MAX_DRAW_SIZE:
            raise ValueError(f"split: at most {MAX_DRAW_SIZE} keys per call, got shape {shape}.")

        def element(key: Words, index: Array) -> Array:
            return _stack_words(self.child(key, (jnp.zeros_like(index), index), num))

        def one(key_data: Array) -> Array:
            return flat_loop(lambda span, k: element(_as_words(k), span.index()), num, key_data)

        return per_key(one, element, num)(key_data).reshape(*shape, 2)

    def random_bits(self, key_data: Array, bit_width: int, shape: tuple[int, ...]) -> Array:
        """``jax.random.bits`` on one key: ``element_bits`` over every flat position."""
        size = math.prod(shape)
        self.check_draw_size(size, bit_width)

        def element(key: Words, counter: Array) -> Array:
            return self.element_bits(key, counter, size, bit_width)

        def one(key_data: Array) -> Array:
            return flat_loop(lambda span, k: element(_as_words(k), span.index()), size, key_data)

        return per_key(one, element, size)(key_data).reshape(shape)

    @functools.cached_property
    def spec(self):
        """The stream as a JAX PRNG implementation (``jax.random.key(..., impl=spec)``).

        The functions are registered jitted, as JAX's own Threefry functions are: JAX calls them
        outside ``jit`` for an eager ``jax.random.split(key)``, and the loop inside
        (``keyfan._flat``) would otherwise compile anew on every call (0.17 s each).
        """
        return jax.extend.random.define_prng_impl(
            key_shape=(2,),
            seed=self.seed,
            split=jax.jit(self.split, static_argnums=1),
            random_bits=jax.jit(self.random_bits, static_argnums=(1, 2)),
            fold_in=jax.jit(self.fold_in),
            name=f"keyfan.{self.name}",
            tag=f"keyfan.{self.name}",
        )

    def __repr__(self) -> str:
        return f"Stream({self.name!r})"

