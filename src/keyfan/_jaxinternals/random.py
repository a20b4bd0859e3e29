"""``define_prng_impl``: a JAX PRNG implementation from five functions (keyfan's streams).

``jax.extend.random.define_prng_impl(*, key_shape, seed, split, random_bits, fold_in, name,
tag)`` has the same keywords on every JAX >= 0.5.
"""

from jax.extend.random import define_prng_impl as define_prng_impl

__all__ = ["define_prng_impl"]
