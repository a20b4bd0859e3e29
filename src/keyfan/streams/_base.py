"""What a keyfan stream is: two per-element functions, from which everything else follows.

A stream is a pinned definition of random values. It is given by two functions that each
compute ONE element, from its coordinates, without building any array around it:

* ``child(key, index, size)``: the key at position ``index`` of ``split(key, size)``;
* ``element_bits(key, counter, size, bit_width)``: the value at flat position ``counter`` of
  ``random_bits(key, bit_width, shape)`` for a shape of ``size`` elements.

Positions are 64-bit, given as a uint32 array (the low word, high word zero) or as ``(hi, lo)``
words, so one key draws (and splits into) more than ``2**32`` values as JAX does.

From these two, :class:`Stream` derives the five functions of a JAX PRNG implementation
(``seed``, ``split``, ``fold_in``, ``random_bits``, key shape ``(2,)``) and registers them with
JAX's ``define_prng_impl`` (through ``keyfan._jaxinternals``), so a typed key carries its stream
and every ``jax.random`` function works on it unchanged. keyfan's own fast samplers call the same two
functions over a flat index, so the two routes cannot drift apart.

Keys and counters are handled as pairs of uint32 words ("words"): nothing here depends on
``jax_enable_x64`` or on ``jax_threefry_partitionable``.
"""

from __future__ import annotations

import abc
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from keyfan._checks import as_shape
from keyfan._flat import flat_loop
from keyfan._jaxinternals.random import define_prng_impl
from keyfan.streams._per_key import per_key
from keyfan.streams._threefry2x32 import threefry2x32

Words = tuple[Array, Array]

MAX_DRAW_SIZE = 2**32 - 1
"""Largest number of values per example in keyfan's own samplers (``kf.normal(..., shape=)``),
whose engine indexes an example's values with one uint32 word. ``jax.random`` on a keyfan key
has no such cap (see :meth:`Stream.check_jax_draw_size`)."""

_FLAT_MAX = 2**31 - 1
"""Largest one-key draw computed as a flat loop (``keyfan._flat``, whose block starts are int32);
larger draws index their values with two words (:func:`_wide_draw`), an elementwise program
that XLA fuses, so even a slice of a draw of ``2**33`` values computes only that slice."""


def counter_words(counter: Array | Words) -> Words:
    """A position as ``(hi, lo)`` uint32 words: a uint32 array is the low word of a zero high word."""
    if isinstance(counter, tuple):
        return counter
    return jnp.zeros_like(counter), counter


def add_words(a: Words, b: Words) -> Words:
    """64-bit ``a + b`` (mod ``2**64``) on ``(hi, lo)`` uint32 words."""
    lo = a[1] + b[1]
    return a[0] + b[0] + (lo < b[1]).astype(np.uint32), lo


def _wide_draw(element, size: int, key_data: Array) -> Array:
    """``element(key_words, (hi, lo))`` at positions ``0 .. size - 1`` (any ``size < 2**64``):
    a ``(rows, 2**20)`` grid of 64-bit positions, flattened and cut. Only for draws too large
    for a flat uint32 loop, which no CPU can hold; it is what JAX itself computes there."""
    shift = 20 if size <= 2**52 else 32  # rows stay below 2**32
    columns = 2**shift
    rows = -(-size // columns)
    r = lax.broadcasted_iota(np.uint32, (rows, columns), 0)
    c = lax.broadcasted_iota(np.uint32, (rows, columns), 1)
    hi = lax.shift_right_logical(r, np.uint32(32 - shift))  # XLA: a shift by 32 gives 0
    lo = lax.shift_left(r, np.uint32(shift)) | c
    out = element(_as_words(key_data), (hi, lo))
    out = out.reshape(rows * columns, *out.shape[2:])
    return out if rows * columns == size else out[:size]


def seed_words(seed: Array, *, python_int: bool) -> Array:
    """uint32[2] key data of an integer scalar seed (concrete or traced).

    A 64-bit seed gives its two words. A narrower one gives its 32-bit pattern in the low word,
    and a zero high word (JAX's ``threefry_seed``), unless ``python_int`` says the value stands
    for a Python int (a weakly typed ``int32`` under ``jit`` in 32-bit mode): then it is
    sign-extended, as JAX maps that int under ``jax_enable_x64``.
    """
    seed = jnp.asarray(seed)
    if seed.shape:
        raise TypeError(f"seed must be a scalar, got an array of shape {seed.shape}.")
    if not jnp.issubdtype(seed.dtype, jnp.integer) or seed.dtype == np.bool_:
        raise TypeError(f"seed must have an integer dtype, got {seed.dtype}.")
    if seed.dtype.itemsize == 8:
        # Constants of the seed's own dtype: a NumPy uint64 scalar would be narrowed to 32 bits
        # under jax_explicit_x64_dtypes="allow" without x64.
        hi = lax.convert_element_type(lax.shift_right_logical(seed, lax.full_like(seed, 32)), np.uint32)
        lo = lax.convert_element_type(seed & lax.full_like(seed, 0xFFFFFFFF), np.uint32)
        return jnp.stack([hi, lo])
    lo = lax.convert_element_type(seed, np.uint32)
    if python_int and jnp.issubdtype(seed.dtype, jnp.signedinteger):
        hi = jnp.where(seed < 0, np.uint32(0xFFFFFFFF), np.uint32(0))
    else:
        hi = jnp.zeros((), np.uint32)
    return jnp.stack([hi, lo])


def _as_words(key_data: Array) -> Words:
    return key_data[..., 0], key_data[..., 1]


def _stack_words(words: Words) -> Array:
    return jnp.stack(words, axis=-1)


MAX_FAN_OUT = 2**32 - 1
"""Largest size of one materialised batch axis (``kf.fan_out``, the samplers' ``batch=``) on a stream
whose split does not depend on the batch size; ``kf.at`` reaches any index below ``2**64``."""


class Stream(abc.ABC):
    """A named, pinned random stream: two per-element functions and what follows from them.

    ``child`` (the key at index ``i`` of a split) and ``element_bits`` (word ``j`` of a draw)
    define the stream; JAX's ``PRNGImpl`` (:attr:`spec`) and keyfan's fused samplers are both
    derived from them, so the two cannot drift apart. A stream's values do not depend on the
    global ``jax_threefry_partitionable`` flag or on the JAX version (golden values pin them).

    Examples:
      >>> import jax, keyfan as kf
      >>> from keyfan.streams import STREAMS
      >>> legacy = STREAMS["threefry-legacy"]
      >>> legacy.name, legacy.size_dependent
      ('threefry-legacy', True)
      >>> jax.random.key_impl(kf.key(0, "threefry-legacy")) == legacy.spec
      True
    """

    name: str
    tag: str
    size_dependent: bool
    """True when ``child(key, i, size)`` depends on ``size`` (the legacy split)."""

    @abc.abstractmethod
    def child(self, key: Words, index: Words, size: int | None) -> Words:
        """Key words at ``index = (hi, lo)`` of ``split(key, size)``; uint32 arrays, broadcast."""

    @abc.abstractmethod
    def element_bits(self, key: Words, counter: Array | Words, size: int, bit_width: int) -> Array:
        """Value at flat position ``counter`` (a uint32 array, or ``(hi, lo)`` words for positions
        from ``2**32`` on) of ``random_bits(key, bit_width, shape)`` for a shape holding ``size``
        values; an unsigned array of ``bit_width`` bits."""

    @property
    def max_fan_out(self) -> int:
        """Largest size of one materialised batch axis: :data:`MAX_FAN_OUT`, or ``2**31`` for a
        size-dependent (legacy) split."""
        return 2**31 if self.size_dependent else MAX_FAN_OUT

    def check_batch_shape(self, name: str, value: object) -> tuple[int, ...]:
        """``value`` as a batch shape whose every axis is at most :attr:`max_fan_out`, or the
        ``ValueError``/``TypeError`` of :func:`keyfan._checks.as_shape` naming ``name``."""
        return as_shape(name, value, hi=self.max_fan_out + 1)

    def check_draw_size(self, size: int, bit_width: int) -> None:
        """Raises ``ValueError`` if keyfan's own samplers cannot draw ``size`` values of
        ``bit_width`` bits per example (their engine indexes one example's values in 32 bits)."""
        self.check_jax_draw_size(size, bit_width)
        if size > MAX_DRAW_SIZE:
            raise ValueError(
                f"keyfan's samplers draw at most {MAX_DRAW_SIZE} values per example, got {size}; "
                "draw per example with a larger batch (kf.normal(key, batch=..., shape=...)), or "
                "call jax.random on the key, which has no such limit."
            )

    @abc.abstractmethod
    def check_jax_draw_size(self, size: int, bit_width: int) -> None:
        """Raises where JAX's own Threefry raises for ``random_bits`` of ``size`` values."""

    # -- Derived: the JAX PRNG implementation -------------------------------------------------

    def seed(self, seed: Array) -> Array:
        """uint32[2] key data for an integer seed, exactly as JAX's ``threefry_seed``.

        A 64-bit seed gives its two 32-bit words; a narrower one its 32-bit pattern with a zero
        high word (``int32(-2)`` gives ``[0, 0xFFFFFFFE]``), as JAX's Threefry does. This is the
        function behind ``jax.random.key(seed, impl=...)``, which narrows a Python int to
        ``int32`` under 32-bit mode before it gets here; ``kf.key`` reads Python ints itself.
        """
        return seed_words(seed, python_int=False)

    def fold_in(self, key_data: Array, data: Array) -> Array:
        """``jax.random.fold_in`` on one key: the hash of the counter ``(0, data)``."""
        data = lax.convert_element_type(data, np.uint32)
        k0, k1 = _as_words(key_data)
        return _stack_words(threefry2x32(k0, k1, jnp.zeros_like(data), data))

    def split(self, key_data: Array, shape: tuple[int, ...]) -> Array:
        """``jax.random.split(key, shape)`` on one key: ``prod(shape)`` children, flat order."""
        num = math.prod(shape)

        def element(key: Words, index: Array | Words) -> Array:
            return _stack_words(self.child(key, counter_words(index), num))

        return self._one_key(element, num, key_data).reshape(*shape, 2)

    def random_bits(self, key_data: Array, bit_width: int, shape: tuple[int, ...]) -> Array:
        """``jax.random.bits`` on one key: ``element_bits`` over every flat position."""
        size = math.prod(shape)
        self.check_jax_draw_size(size, bit_width)

        def element(key: Words, counter: Array | Words) -> Array:
            return self.element_bits(key, counter, size, bit_width)

        return self._one_key(element, size, key_data).reshape(shape)

    @staticmethod
    def _one_key(element, size: int, key_data: Array) -> Array:
        """``element`` at positions ``0 .. size - 1`` of one key (batched as one flat loop)."""
        if size > _FLAT_MAX:
            return _wide_draw(element, size, key_data)

        def one(key_data: Array) -> Array:
            return flat_loop(lambda span, k: element(_as_words(k), span.index()), size, key_data)

        return per_key(one, element, size)(key_data)

    @functools.cached_property
    def spec(self):
        """The stream as a JAX PRNG implementation (``jax.random.key(..., impl=spec)``).

        The functions are registered jitted, as JAX's own Threefry functions are: JAX calls them
        outside ``jit`` for an eager ``jax.random.split(key)``, and the loop inside
        (``keyfan._flat``) would otherwise compile anew on every call (0.17 s each).
        """
        return define_prng_impl(
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

