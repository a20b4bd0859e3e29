"""kf.vmap's randomness policies: what happens to a key the vmap is not told to map.

"error" (the default) refuses a draw that every example would share, "different" gives example i
the key kf.at(key, i), and "same" shares the draw on purpose (and says so to the audit).

Run: .venv/bin/python examples/vmap_policies.py
"""

import jax
import jax.numpy as jnp

import keyfan as kf


def noisy(x: jax.Array, key: jax.Array) -> jax.Array:
    return x + jax.random.normal(key, x.shape)


key = kf.key(0)
xs = jnp.zeros((4, 3))

# jax.vmap broadcasts the key silently: four identical rows.
bug = jax.vmap(noisy, in_axes=(0, None))(xs, key)
assert (bug == bug[0]).all()

# "error": the same mistake under kf.vmap raises, naming the argument and the fix.
try:
    kf.vmap(noisy, in_axes=(0, None))(xs, key)
except kf.SharedRandomnessError as err:
    message = str(err)
assert "argument 'key'" in message and "randomness='different'" in message

# "different": example i draws from kf.at(key, i), exactly the canonical split + vmap.
different = kf.vmap(noisy, in_axes=(0, None), randomness="different")(xs, key)
assert (different == jax.vmap(noisy)(xs, kf.fan_out(key, (4,)))).all()
assert (different[2] == noisy(xs[2], kf.at(key, 2))).all()
# ... and row i does not depend on the batch size.
bigger = kf.vmap(noisy, in_axes=(0, None), randomness="different")(jnp.zeros((16, 3)), key)
assert (bigger[:4] == different).all()

# "same": one draw shared by the batch, declared, so the audit lists it as intended.
same = kf.vmap(noisy, in_axes=(0, None), randomness="same")(xs, key)
assert (same == same[0]).all() and (same[0] == noisy(xs[0], key)).all()

# Nested "different" maps give example (i, j) the key kf.at(key, (i, j)).
per_pixel = kf.vmap(lambda x, k: x + jax.random.normal(k), in_axes=(0, None), randomness="different")
per_image = kf.vmap(per_pixel, in_axes=(0, None), randomness="different")
grid = per_image(jnp.zeros((8, 16)), key)
assert grid[3, 5] == jax.random.normal(kf.at(key, (3, 5)))

# Pure functions run as plain jax.vmap, and jit traces the check once.
assert (jax.jit(kf.vmap(noisy, in_axes=(0, None), randomness="different"))(xs, key) == different).all()
print("error raised:", message.split(":")[0], "| different == canonical | same shared | nested == at(key, (i, j))")
