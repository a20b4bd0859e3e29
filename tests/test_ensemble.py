"""keyfan.Ensemble: member identity (DESIGN §2.6), use, indexing, stacking, dropout keys, errors."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import keyfan as kf
from keyfan.ensemble import Ensemble, dropout_keys
from tests.conftest import assert_bitwise_equal, assert_trees_bitwise_equal, key_bits

SEED = 20240611
X = jax.random.normal(jax.random.key(7), (5, 3))


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Dense(8)(x))
        x = nn.Dropout(0.5, deterministic=not train)(x)
        return nn.Dense(2)(x)


class NNXMLP(nnx.Module):
    def __init__(self, din: int, dout: int, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(din, 8, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)
        self.out = nnx.Linear(8, dout, rngs=rngs)

    def __call__(self, x):
        return self.out(self.dropout(nnx.relu(self.hidden(x))))


def init_fn(key, x):
    k1, k2 = jax.random.split(key)
    return {"w": jax.random.normal(k1, (x.shape[-1], 2)), "b": jax.random.uniform(k2, (2,))}


def apply_fn(params, x, key=None):
    y = x @ params["w"] + params["b"]
    if key is not None:
        y = jnp.where(jax.random.bernoulli(key, 0.5, y.shape), 2.0 * y, 0.0)
    return y


MAKE_NNX = functools.partial(NNXMLP, 3, 2)


def nnx_states(module):
    return nnx.split(module, nnx.Param, ...)[1:]


def single(kind, key):
    """The model of ``kind`` initialised alone with ``key``, as the member's single-model object."""
    if kind == "linen":
        return LinenMLP().init(key, X)
    if kind == "nnx":
        return nnx_states(MAKE_NNX(rngs=nnx.Rngs(key)))
    return init_fn(key, X)


MODELS = {"linen": LinenMLP(), "nnx": MAKE_NNX, "functional": (init_fn, apply_fn)}


# -- member identity ---------------------------------------------------------------------------

@pytest.mark.bitwise
@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("members", [1, 4, 16])
def test_member_i_is_the_model_initialised_alone_with_at_key_i(kind, members):
    key = kf.key(SEED)
    ens = Ensemble.init(MODELS[kind], key, members=members, sample_input=X)
    assert ens.members == len(ens) == members
    assert_bitwise_equal(key_bits(ens.keys), key_bits(kf.fan_out(key, (members,))))
    for i in range(members):
        member = ens.member(i)
        got = nnx_states(member) if kind == "nnx" else member
        assert_trees_bitwise_equal(got, single(kind, kf.at(key, i)))


@pytest.mark.bitwise
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_growing_the_ensemble_keeps_the_first_members(kind):
    key = kf.key(SEED)
    small = Ensemble.init(MODELS[kind], key, members=4, sample_input=X)
    large = Ensemble.init(MODELS[kind], key, members=16, sample_input=X)
    assert_trees_bitwise_equal(large[:4].params, small.params)
    differ = [not np.array_equal(np.asarray(leaf[0]), np.asarray(leaf[4]))
              for leaf in jax.tree.leaves(large.params) if leaf.dtype == jnp.float32]
    assert any(differ), "members 0 and 4 must have different parameters"


@pytest.mark.bitwise
def test_raw_and_jax_keys_give_the_same_members_as_keyfan_keys():
    typed = Ensemble.init(LinenMLP(), kf.key(SEED), members=3, sample_input=X)
    raw = Ensemble.init(LinenMLP(), jax.random.PRNGKey(SEED), members=3, sample_input=X)
    jax_typed = Ensemble.init(LinenMLP(), jax.random.key(SEED), members=3, sample_input=X)
    assert_trees_bitwise_equal(raw.params, typed.params)
    assert_trees_bitwise_equal(jax_typed.params, typed.params)
    assert raw.keys.dtype == jnp.uint32 and jax.dtypes.issubdtype(typed.keys.dtype, jax.dtypes.prng_key)


# -- use ---------------------------------------------------------------------------------------

def close(actual, expected):
    """Equal up to float32 rounding: the ensemble's batched matmuls may round differently from a
    single model's (parameters and keys are compared bitwise elsewhere)."""
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-5, atol=1e-6)


@pytest.mark.bitwise
def test_member_round_trip_through_model_apply():
    model = LinenMLP()
    ens = Ensemble.init(model, kf.key(SEED), members=4, sample_input=X)
    outputs = ens(X)
    assert outputs.shape == (4, 5, 2)
    for i in range(4):
        close(model.apply(ens.member(i), X), outputs[i])
    assert_bitwise_equal(ens.apply(X), outputs)
    assert len({np.asarray(outputs[i]).tobytes() for i in range(4)}) == 4, "members must disagree"


def test_nnx_member_is_a_live_module_and_functional_member_plain_params():
    ens = Ensemble.init(MAKE_NNX, kf.key(SEED), members=3, sample_input=X)
    module = ens.member(2)
    assert isinstance(module, NNXMLP)
    close(nnx.view(module, deterministic=True)(X), ens(X)[2])
    fn = Ensemble.init((init_fn, apply_fn), kf.key(SEED), members=3, sample_input=X)
    close(apply_fn(fn.member(-1), X), fn(X)[2])


def test_per_member_inputs():
    ens = Ensemble.init(LinenMLP(), kf.key(SEED), members=3, sample_input=X)
    xs = jax.random.normal(jax.random.key(1), (3, 4, 3))
    out = ens.apply(xs, per_member=True)
    assert out.shape == (3, 4, 2)
    for i in range(3):
        close(LinenMLP().apply(ens.member(i), xs[i]), out[i])


@pytest.mark.bitwise
def test_sub_ensembles_by_slice_index_array_and_mask():
    ens = Ensemble.init(LinenMLP(), kf.key(SEED), members=6, sample_input=X)
    full = ens(X)
    for idx, rows in ((slice(1, 5, 2), [1, 3]), (jnp.array([5, 0, 2]), [5, 0, 2]), (np.array([-1]), [5]),
                      (np.array([True, False, False, True, True, False]), [0, 3, 4])):
        sub = ens[idx]
        assert sub.members == len(rows)
        close(sub(X), full[np.array(rows)])
        assert_bitwise_equal(key_bits(sub.keys), key_bits(ens.keys)[np.array(rows)])
        for j, i in enumerate(rows):
            assert_trees_bitwise_equal(sub.member(j), ens.member(i))


@pytest.mark.bitwise
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_stack_inverts_unstack(kind):
    ens = Ensemble.init(MODELS[kind], kf.key(SEED), members=3, sample_input=X)
    again = Ensemble.stack(ens.unstack(), model=ens.model, keys=ens.keys)
    assert_trees_bitwise_equal(again.params, ens.params)
    assert_bitwise_equal(again(X), ens(X))


@pytest.mark.bitwise
def test_stack_from_independent_models_and_concatenate():
    singles = [LinenMLP().init(kf.at(kf.key(SEED), i), X) for i in range(5)]
    stacked = Ensemble.stack(singles, model=LinenMLP(), keys=[kf.at(kf.key(SEED), i) for i in range(5)])
    initialised = Ensemble.init(LinenMLP(), kf.key(SEED), members=5, sample_input=X)
    assert_trees_bitwise_equal(stacked.params, initialised.params)
    joined = Ensemble.concatenate([stacked[:2], stacked[2:]])
    assert_trees_bitwise_equal(joined.params, stacked.params)
    assert_bitwise_equal(key_bits(joined.keys), key_bits(stacked.keys))
    assert Ensemble.stack(singles, model=LinenMLP()).keys is None


def test_ensemble_is_a_pytree_usable_under_jit():
    ens = Ensemble.init(LinenMLP(), kf.key(SEED), members=4, sample_input=X)
    jitted = jax.jit(lambda e, x: e(x))(ens, X)
    np.testing.assert_allclose(jitted, ens(X), rtol=1e-6, atol=1e-6)
    doubled = jax.tree.map(lambda a: a * 2 if a.dtype == jnp.float32 else a, ens)
    assert isinstance(doubled, Ensemble) and doubled.members == 4


# -- dropout keys (DESIGN §2.6: "the same for its dropout masks") --------------------------------

class LinenDrop(nn.Module):
    """Dense then dropout: the output's zeros are the dropout mask."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dropout(0.5, deterministic=not train)(nn.Dense(16)(x))


class NNXDrop(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.dense = nnx.Linear(3, 16, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        return self.dropout(self.dense(x))


def assert_same_mask(actual, expected):
    """Same dropout mask (same zeros, bitwise), same values up to float32 rounding."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert_bitwise_equal(actual == 0, expected == 0)
    close(actual, expected)


@pytest.mark.bitwise
def test_dropout_masks_are_those_of_the_single_model_with_the_member_key():
    key = kf.key(SEED)
    model = LinenDrop()
    ens = Ensemble.init(model, key, members=3, sample_input=X)
    ids, step = np.array([10, 3, 7, 0, 42]), 5
    out = ens(X, ids=ids, step=step, train=True)
    for i in range(3):
        member_key = kf.at(key, i)
        for j in range(5):
            k = kf.example_keys(kf.named(member_key, "dropout"), ids[j : j + 1], step=step)[0]
            alone = model.apply(ens.member(i), X[j : j + 1], train=True, rngs={"dropout": k})[0]
            assert_same_mask(out[i, j], alone)
    masks = np.asarray(out) == 0
    assert 0.3 < masks.mean() < 0.7
    assert not np.array_equal(masks[0], masks[1]), "members need their own masks"
    assert not np.array_equal(masks[0, 0], masks[0, 1]), "examples need their own masks"
    assert not (np.asarray(ens(X, train=False)) == 0).any(), "no dropout without train=True"


def test_nnx_dropout_masks_match_the_reseeded_single_module():
    ens = Ensemble.init(NNXDrop, kf.key(SEED), members=2, sample_input=X)
    ids = np.arange(5) + 100
    out = ens(X, ids=ids, step=1)
    keys = dropout_keys(ens.keys, ids, 1)
    for i in range(2):
        for j in range(5):
            module = ens.member(i)
            nnx.reseed(module, default=keys[i, j])
            assert_same_mask(out[i, j], nnx.view(module, deterministic=False)(X[j : j + 1])[0])
    assert 0.3 < (np.asarray(out) == 0).mean() < 0.7


@pytest.mark.bitwise
def test_an_examples_dropout_depends_on_its_id_not_its_position():
    ens = Ensemble.init(LinenMLP(), kf.key(SEED), members=2, sample_input=X)
    ids = np.array([4, 8, 15, 16, 23])
    perm = np.array([3, 0, 4, 1, 2])
    out = ens(X, ids=ids, step=2, train=True)
    shuffled = ens(X[perm], ids=ids[perm], step=2, train=True)
    assert_bitwise_equal(shuffled, out[:, perm])
    other_step = ens(X, ids=ids, step=3, train=True)
    assert not np.array_equal(np.asarray(other_step), np.asarray(out))


@pytest.mark.bitwise
def test_dropout_keys_of_a_member_do_not_depend_on_k():
    keys4 = Ensemble.init(LinenMLP(), kf.key(SEED), members=4, sample_input=X).keys
    keys9 = Ensemble.init(LinenMLP(), kf.key(SEED), members=9, sample_input=X).keys
    ids = jnp.arange(6)
    assert_bitwise_equal(key_bits(dropout_keys(keys9, ids, 3))[:4], key_bits(dropout_keys(keys4, ids, 3)))


# -- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("members, error", [(0, ValueError), (-3, ValueError), (2.5, ValueError),
                                            (True, TypeError), ("4", TypeError)])
def test_bad_member_counts(members, error):
    with pytest.raises(error, match="members"):
        Ensemble.init(LinenMLP(), kf.key(0), members=members, sample_input=X)


def test_mismatched_sample_inputs():
    with pytest.raises(ValueError, match=r"sample_input .*does not fit the nnx model"):
        Ensemble.init(functools.partial(NNXMLP, 4, 2), kf.key(0), members=2, sample_input=X)
    with pytest.raises(ValueError, match="sample_input is required"):
        Ensemble.init(LinenMLP(), kf.key(0), members=2)
    with pytest.raises(ValueError, match="leading batch axis"):
        Ensemble.init(LinenMLP(), kf.key(0), members=2, sample_input=jnp.float32(1.0))
    ens = Ensemble.init(LinenMLP(), kf.key(0), members=2, sample_input=X)
    with pytest.raises(ValueError, match=r"shape \(5, 4\).*\(B, 3\) float32"):
        ens(jnp.ones((5, 4)))
    with pytest.raises(ValueError, match="leading member axis of size 2"):
        ens(jnp.ones((3, 5, 3)), per_member=True)
    with pytest.raises(ValueError, match="ids must have shape"):
        ens(X, ids=np.arange(4))


@pytest.mark.parametrize("model, match", [
    ("dense", "model must be"),
    (nn.Dense, "linen class Dense, not an instance"),
    (NNXMLP(3, 2, rngs=nnx.Rngs(0)), "NNX module instance"),
    ((init_fn,), "model must be"),
    (42, "model must be"),
])
def test_unknown_model_kinds(model, match):
    with pytest.raises(TypeError, match=match):
        Ensemble.init(model, kf.key(0), members=2, sample_input=X)


def test_bad_keys_indices_and_stacks():
    ens = Ensemble.init(LinenMLP(), kf.key(0), members=4, sample_input=X)
    with pytest.raises(TypeError, match="must be a key"):
        Ensemble.init(LinenMLP(), 0, members=2, sample_input=X)
    with pytest.raises(TypeError, match=r"ens\[2\] is ambiguous"):
        ens[2]
    with pytest.raises(ValueError, match="boolean mask must have shape"):
        ens[np.array([True, False])]
    with pytest.raises(ValueError, match="outside"):
        ens[np.array([0, 4])]
    with pytest.raises(ValueError, match="selects no member"):
        ens[3:3]
    with pytest.raises(ValueError, match="at least -4"):
        ens.member(-5)
    other = nn.Dense(2).init(kf.key(1), X)
    with pytest.raises(ValueError, match=r"members\[1\] has a different structure"):
        Ensemble.stack([ens.member(0), other], model=LinenMLP())
    with pytest.raises(ValueError, match="one key per member"):
        Ensemble.stack([ens.member(0), ens.member(1)], model=LinenMLP(), keys=ens.keys)
