"""keyfan.recipes: bitwise equal to the canonical JAX code written inline, and the contract's
properties (DESIGN §1)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyfan import recipes
from keyfan._pitfalls import distinct_rows
from tests.conftest import assert_bitwise_equal, examples

SEEDS = st.integers(min_value=-(2**31), max_value=2**32 - 1)


# -- deterministic_batch ----------------------------------------------------------------------

@pytest.mark.bitwise
@settings(max_examples=examples(25), deadline=None)
@given(seed=SEEDS, batch_size=st.integers(0, 9), n=st.integers(0, 6), as_float=st.booleans())
def test_deterministic_batch_equals_split_then_vmap(seed, batch_size, n, as_float):
    args = (float(seed), float(batch_size), float(n)) if as_float else (seed, batch_size, n)
    out = recipes.deterministic_batch(*args)
    keys = jax.random.split(jax.random.PRNGKey(seed), batch_size)
    expected = jax.vmap(lambda k: jax.random.normal(k, (n,)))(keys)
    assert_bitwise_equal(out, expected)
    assert out.shape == (batch_size, n) and out.dtype == jnp.float32


@pytest.mark.parametrize("seed", [0, 1, 2**31 - 1, 2**32 - 1, -(2**31)])
def test_deterministic_batch_rows_pairwise_distinct(seed):
    assert distinct_rows(recipes.deterministic_batch(seed, 64, 3))


@pytest.mark.bitwise
def test_deterministic_batch_accepts_numpy_and_0d_arrays():
    expected = recipes.deterministic_batch(3, 4, 2)
    for args in [(np.int64(3), np.float32(4.0), np.array(2)), (jnp.array(3), jnp.array(4.0), 2.0)]:
        assert_bitwise_equal(recipes.deterministic_batch(*args), expected)


@pytest.mark.bitwise
def test_one_big_draw_is_not_the_per_example_batch():
    # The pitfall the recipe avoids: normal(key, (B, n)) is one draw, not B per-key draws.
    key = jax.random.PRNGKey(0)
    big = jax.random.normal(key, (8, 3))
    assert not np.array_equal(np.asarray(big), np.asarray(recipes.deterministic_batch(0, 8, 3)))


# -- batched_init_param_count -----------------------------------------------------------------

@pytest.mark.bitwise
@settings(max_examples=examples(10), deadline=None)
@given(seed=SEEDS, num_inits=st.integers(1, 6), features=st.integers(1, 5), as_float=st.booleans())
def test_batched_init_param_count(seed, num_inits, features, as_float):
    if as_float:
        seed, num_inits, features = float(seed), float(num_inits), float(features)
    out = recipes.batched_init_param_count(seed, num_inits, features)
    model = nn.Dense(features=int(features))
    keys = jax.random.split(jax.random.PRNGKey(int(seed)), int(num_inits))
    stacked = jax.vmap(model.init, in_axes=(0, None))(keys, jnp.ones((4,)))
    expected = jnp.array([float(num_inits), float(features), float(stacked["params"]["kernel"].shape[0])])
    assert_bitwise_equal(out, expected)
    assert out[2] == out[0]
    # Each init is a different kernel (the keys are split, not shared).
    kernels = np.asarray(stacked["params"]["kernel"]).reshape(int(num_inits), -1)
    assert len({k.tobytes() for k in kernels}) == int(num_inits)


# -- nn_vmap_forward --------------------------------------------------------------------------

@pytest.mark.bitwise
@settings(max_examples=examples(10), deadline=None)
@given(seed=SEEDS, batch=st.integers(1, 6), in_dim=st.integers(1, 5), features=st.integers(1, 8))
def test_nn_vmap_forward_equals_inline_and_plain_dense(seed, batch, in_dim, features):
    x = jax.random.normal(jax.random.PRNGKey(99), (batch, in_dim))
    out = recipes.nn_vmap_forward(seed, x, features)
    vmapped = nn.vmap(nn.Dense, in_axes=0, out_axes=0, variable_axes={"params": None},
                      split_rngs={"params": False})(features=features)
    variables = vmapped.init(jax.random.PRNGKey(seed), x)
    assert_bitwise_equal(out, vmapped.apply(variables, x).reshape(-1))
    # Shared parameters, no batch axis: the output is exactly a plain Dense initialised with the
    # same key (the lifted init sees one example) applied to the whole batch.
    plain_variables = nn.Dense(features).init(jax.random.PRNGKey(seed), x[0])
    assert_bitwise_equal(out, nn.Dense(features).apply(plain_variables, x).reshape(-1))


def test_nn_vmap_forward_rejects_bad_batch():
    with pytest.raises(ValueError, match="x_batch"):
        recipes.nn_vmap_forward(0, jnp.ones((4,)), 3)


# -- noise, dropout, model_step ---------------------------------------------------------------

@pytest.mark.bitwise
def test_model_step_equals_inline_split_vmap():
    params = {"w": jax.random.normal(jax.random.PRNGKey(1), (3, 2)), "b": jnp.arange(2.0)}
    x = jnp.ones((6, 3))
    key = jax.random.PRNGKey(5)

    @jax.jit
    def inline(params, x_batch, key):
        keys = jax.random.split(key, x_batch.shape[0])

        def single(x, k):
            nk, dk = jax.random.split(k)
            h = x + 0.1 * jax.random.normal(nk, x.shape)
            mask = jax.random.bernoulli(dk, 0.5, x.shape)
            h = mask * h / 0.5
            return h @ params["w"] + params["b"]

        return jax.vmap(single)(x_batch, keys)

    out = recipes.model_step(params, x, key)
    assert_bitwise_equal(out, inline(params, x, key))
    assert distinct_rows(out)


def test_dropout_masks_differ_between_examples_and_keep_the_mean():
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    x = jnp.ones((2, 20_000))
    out = jax.vmap(recipes.per_example_dropout)(x, keys)
    masks = np.asarray(out) != 0
    assert (masks[0] != masks[1]).any()
    # Inverted scaling keeps the expectation: mean of 20k units, sd of the mean 0.0071 at p=0.5;
    # a 5-sigma band fails with probability < 1e-6.
    assert abs(float(out[0].mean()) - 1.0) < 5 * 0.0071
    np.testing.assert_array_equal(np.unique(np.asarray(out)), [0.0, 2.0])


def test_dropout_p_zero_is_identity_and_p_one_is_rejected():
    x = jnp.arange(5.0)
    assert_bitwise_equal(recipes.per_example_dropout(x, jax.random.PRNGKey(0), 0.0), x)
    with pytest.raises(ValueError, match=r"^p must be less than 1"):
        recipes.per_example_dropout(x, jax.random.PRNGKey(0), 1.0)


def test_add_noise_rejects_a_batch_of_keys():
    with pytest.raises(TypeError, match="key"):
        recipes.add_noise(jnp.zeros(3), jax.random.split(jax.random.PRNGKey(0), 2))


# -- forward_single ---------------------------------------------------------------------------

@pytest.mark.bitwise
@settings(max_examples=examples(10), deadline=None)
@given(seed=SEEDS, batch=st.integers(1, 6))
def test_forward_batch_equals_inline_split_vmap(seed, batch):
    key = jax.random.PRNGKey(seed)
    params = recipes.init_mlp_params(key, 4, 64, 2)
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, 4))

    def inline_single(params, x, k):  # DESIGN §1, written out: the FIRST split key drives dropout
        dk, _ = jax.random.split(k)
        h = jax.nn.relu(x @ params["w1"] + params["b1"])
        keep = jax.random.bernoulli(dk, 0.7, h.shape)
        return (keep * h / 0.7) @ params["w2"] + params["b2"]

    expected = jax.vmap(inline_single, in_axes=(None, 0, 0))(params, x, jax.random.split(key, batch))
    assert_bitwise_equal(recipes.forward_batch(params, x, key), expected)
    assert_bitwise_equal(jax.vmap(recipes.forward_single, in_axes=(None, 0, 0))(
        params, x, jax.random.split(key, batch)), expected)


def test_forward_batch_shares_params_and_differs_per_example():
    key = jax.random.PRNGKey(3)
    params = recipes.init_mlp_params(key, 4, 64, 2)
    assert {k: v.shape for k, v in params.items()} == {"w1": (4, 64), "b1": (64,), "w2": (64, 2), "b2": (2,)}
    w1, w2 = jax.random.split(key)
    init = jax.nn.initializers.lecun_normal()
    assert_bitwise_equal(params["w1"], init(w1, (4, 64), jnp.float32))
    assert_bitwise_equal(params["w2"], init(w2, (64, 2), jnp.float32))
    x = jnp.ones((5, 4))
    keys = jax.random.split(key, 5)
    out = recipes.forward_batch(params, x, key)
    assert distinct_rows(out)  # same inputs, different dropout masks per example
    # Each row is forward_single with that example's own key (equal up to the rounding of a
    # matrix-vector versus a matrix-matrix product).
    np.testing.assert_allclose(out[2], recipes.forward_single(params, x[2], keys[2]), rtol=1e-6)


# -- augment_image ----------------------------------------------------------------------------

def _coordinate_image(size: int = 232) -> jnp.ndarray:
    """An image whose pixels encode their (row, col), so flips and crops can be read back."""
    rows, cols = jnp.meshgrid(jnp.arange(size), jnp.arange(size), indexing="ij")
    return jnp.stack([rows / 1000.0, cols / 1000.0, jnp.full_like(rows, 0.5, dtype=jnp.float32)], -1)


@pytest.mark.bitwise
@pytest.mark.parametrize("seed", [0, 5, 2**32 - 1])
def test_augment_batch_equals_inline_split_vmap(seed):
    key = jax.random.PRNGKey(seed)
    images = jax.random.uniform(jax.random.PRNGKey(1), (64, 232, 232, 3))

    def inline(k, image):  # DESIGN §1, written out
        flip_key, brightness_key, crop_key = jax.random.split(k, 3)
        image = jnp.where(jax.random.bernoulli(flip_key), image[:, ::-1, :], image)
        image = image * jax.random.uniform(brightness_key, minval=0.8, maxval=1.2)
        dy, dx = jax.random.randint(crop_key, (2,), 0, 8)
        return jnp.clip(jax.lax.dynamic_slice(image, (dy, dx, 0), (224, 224, 3)), 0.0, 1.0)

    expected = jax.jit(jax.vmap(inline))(jax.random.split(key, 64), images)
    assert_bitwise_equal(recipes.augment_batch(key, images), expected)
    assert_bitwise_equal(recipes.augment_image(jax.random.split(key, 64)[9], images[9]), expected[9])


@pytest.mark.bitwise
def test_augment_batch_shapes_range_and_per_example_decisions():
    key = jax.random.PRNGKey(0)
    images = jnp.broadcast_to(_coordinate_image(), (64, 232, 232, 3))
    out = recipes.augment_batch(key, images)
    assert out.shape == (64, 224, 224, 3) and out.dtype == jnp.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    keys = jax.random.split(key, 64)
    for i in (0, 17, 63):
        assert_bitwise_equal(out[i], recipes.augment_image(keys[i], images[i]))
    # Read back each example's decisions: brightness scales every channel; the blue channel is
    # 0.5 * brightness, the row channel encodes the crop row offset, and columns run backwards
    # when flipped.
    brightness = np.asarray(out[:, 0, 0, 2]) / 0.5
    row0 = np.rint(np.asarray(out[:, 0, 0, 0]) / brightness * 1000).astype(int)
    col_step = np.asarray(out[:, 0, 1, 1] - out[:, 0, 0, 1])
    flipped = col_step < 0
    assert 0 < flipped.sum() < 64, "flip decisions must vary across the batch"
    assert len(set(row0.tolist())) > 1 and set(row0.tolist()) <= set(range(8))
    assert len(set(np.round(brightness, 6).tolist())) == 64
    assert ((brightness >= 0.8) & (brightness <= 1.2)).all()


def test_augment_image_rejects_small_or_wrong_images():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="image"):
        recipes.augment_image(key, jnp.ones((200, 232, 3)))
    with pytest.raises(ValueError, match="image"):
        recipes.augment_image(key, jnp.ones((232, 232, 1)))
    with pytest.raises(ValueError, match="image"):
        recipes.augment_image(key, jnp.ones((232, 232, 3), jnp.int32))


# -- Monte Carlo and nested batches -----------------------------------------------------------

@pytest.mark.bitwise
@settings(max_examples=examples(10), deadline=None)
@given(seed=SEEDS)
def test_sample_many_equals_split_vmap(seed):
    key = jax.random.PRNGKey(seed)
    out = recipes.sample_many(key)
    assert out.shape == (1000, 3)
    xs = jax.vmap(lambda k: jax.random.normal(k, (3,)))(jax.random.split(key, 1000))
    assert_bitwise_equal(out, jnp.sin(xs) + xs**2)
    assert distinct_rows(out)


@pytest.mark.bitwise
@settings(max_examples=examples(10), deadline=None)
@given(seed=SEEDS, n_chains=st.integers(1, 4), batch=st.integers(1, 8), n=st.integers(1, 4))
def test_key_grid_and_nested_vmap(seed, n_chains, batch, n):
    key = jax.random.PRNGKey(seed)
    grid = recipes.key_grid(key, n_chains, batch)
    expected = jax.random.split(key, n_chains * batch).reshape(n_chains, batch, 2)
    assert_bitwise_equal(grid, expected)
    out = recipes.nested_normal(key, n_chains, batch, n)
    assert_bitwise_equal(out, jax.vmap(jax.vmap(lambda k: jax.random.normal(k, (n,))))(expected))
    assert distinct_rows(out.reshape(n_chains * batch, n))


@pytest.mark.bitwise
def test_key_grid_moves_keys_when_the_batch_changes():
    key = jax.random.PRNGKey(2)
    a, b = recipes.key_grid(key, 2, 3), recipes.key_grid(key, 2, 4)
    assert np.array_equal(a[0, 0], b[0, 0])
    assert not np.array_equal(a[1, 0], b[1, 0])  # row 1 starts at flat index b: it moved


def test_key_grid_keeps_typed_keys_typed():
    grid = recipes.key_grid(jax.random.key(0), 2, 3)
    assert grid.shape == (2, 3) and jax.dtypes.issubdtype(grid.dtype, jax.dtypes.prng_key)


# -- Argument rules ---------------------------------------------------------------------------

BAD_SIZES = [(2.5, ValueError), (float("nan"), ValueError), (float("inf"), ValueError), (float("-inf"), ValueError),
             (-1, ValueError), (-3.0, ValueError), (True, TypeError), ("4", TypeError),
             (np.array([1, 2]), TypeError), (None, TypeError)]
BAD_SEEDS = [(2.5, ValueError), (float("nan"), ValueError), (float("-inf"), ValueError),
             (True, TypeError), (np.bool_(False), TypeError), (2**32, ValueError),
             (-(2**31) - 1, ValueError), (2.0**40, ValueError), ("0", TypeError)]

RECIPE_CALLS = {
    "deterministic_batch": lambda seed=0, batch_size=2, n=3: recipes.deterministic_batch(seed, batch_size, n),
    "batched_init_param_count": lambda seed=0, num_inits=2, features=3:
        recipes.batched_init_param_count(seed, num_inits, features),
    "nn_vmap_forward": lambda seed=0, features=3: recipes.nn_vmap_forward(seed, jnp.ones((2, 4)), features),
    "sample_many": lambda num_samples=3: recipes.sample_many(jax.random.PRNGKey(0), num_samples),
    "key_grid": lambda n_chains=2, batch=3: recipes.key_grid(jax.random.PRNGKey(0), n_chains, batch),
    "nested_normal": lambda n=2: recipes.nested_normal(jax.random.PRNGKey(0), 2, 2, n),
    "init_mlp_params": lambda in_dim=2, hidden=4, out_dim=1:
        recipes.init_mlp_params(jax.random.PRNGKey(0), in_dim, hidden, out_dim),
}
SIZE_ARGS = [("deterministic_batch", "batch_size"), ("deterministic_batch", "n"),
             ("batched_init_param_count", "num_inits"), ("batched_init_param_count", "features"),
             ("nn_vmap_forward", "features"), ("sample_many", "num_samples"),
             ("key_grid", "n_chains"), ("key_grid", "batch"), ("nested_normal", "n"),
             ("init_mlp_params", "in_dim"), ("init_mlp_params", "hidden"), ("init_mlp_params", "out_dim")]
SEED_ARGS = ["deterministic_batch", "batched_init_param_count", "nn_vmap_forward"]


@pytest.mark.parametrize("recipe,arg", SIZE_ARGS)
@pytest.mark.parametrize("value,error", BAD_SIZES, ids=repr)
def test_bad_sizes_are_rejected_naming_the_argument(recipe, arg, value, error):
    if arg in ("features", "in_dim", "hidden", "out_dim") and isinstance(value, float) and value == -3.0:
        value = 0  # these must be >= 1: zero is the first bad value
    with pytest.raises(error, match=rf"^{arg} must "):
        RECIPE_CALLS[recipe](**{arg: value})


@pytest.mark.parametrize("recipe", SEED_ARGS)
@pytest.mark.parametrize("value,error", BAD_SEEDS, ids=repr)
def test_bad_seeds_are_rejected_naming_the_argument(recipe, value, error):
    with pytest.raises(error, match=r"^seed must "):
        RECIPE_CALLS[recipe](seed=value)


@pytest.mark.parametrize("seed", [-(2**31), 2**32 - 1, 7.0, np.uint32(9), jnp.array(-4)])
def test_seed_range_edges_are_accepted(seed):
    assert recipes.deterministic_batch(seed, 2, 2).shape == (2, 2)
