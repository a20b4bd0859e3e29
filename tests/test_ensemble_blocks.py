"""The layout-invariant trainer's blocks: ordinary backprop per block, a fixed tree over blocks.

Checked against a straightforward reference (each block's gradient by its own jitted program,
the tree of sums in NumPy), against the per-example mode (``block_size=1``), and on XLA's
compiled memory analysis (temporaries do not grow with batch x parameters). The 1/2/4/8-device
equality lives in tests/test_ensemble_layout.py.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import keyfan as kf
from keyfan.ensemble import Ensemble, Trainer
from keyfan.ensemble._data import make_moons
from keyfan.ensemble._exact import exact
from keyfan.ensemble._shard import tree_sum
from tests.conftest import assert_bitwise_equal

DATA = make_moons(kf.key(11), 64)
MEMBERS = 4


class MLP(nn.Module):
    hidden: int = 16

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.relu(nn.Dense(self.hidden)(x))
        x = nn.Dropout(0.2, deterministic=not train)(x)
        return nn.Dense(2)(x)


def capture_gradients() -> optax.GradientTransformation:
    """An optimizer whose state after ``update`` IS the gradient it was given (and whose update
    is zero), so a step's summed, scaled gradient can be read bit for bit."""
    return optax.GradientTransformation(
        lambda params: jax.tree.map(jnp.zeros_like, params),
        lambda grads, state, params=None: (jax.tree.map(jnp.zeros_like, grads), grads),
    )


def np_tree_sum(terms: list[np.ndarray]) -> np.ndarray:
    """Neighbour pairs level by level, an odd last term carried up: the documented tree."""
    while len(terms) > 1:
        pairs = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        terms = pairs + terms[-1:] if len(terms) % 2 else pairs
    return terms[0]


def reference_step(ens: Ensemble, weights, x, y, ids, *, block: int, products: str = "gemm"):
    """The step's scaled gradient and losses, computed the plain way: for each member and each
    block of ``block`` examples, the block's gradient by a jitted single-member program of its
    own (ordinary backprop of the block's weighted loss sum; each example run as a batch of one
    with its dropout key); then, per member, the tree of block sums in NumPy, times 1/B. The
    trainer's member grouping does not enter: every member runs its own program. With
    ``products="elementwise"`` the block program is ``_exact.exact`` of it, vmapped over a
    member axis of one member."""
    module = MLP()

    def block_grad_of(params, member_key, w, xb, yb, ib):
        dkeys = kf.ensemble.dropout_keys(member_key[None], ib, 0)[0]

        def total(p):
            def one(xi, yi, ki):
                out = module.apply(p, xi[None], train=True, rngs={"dropout": ki})[0]
                return optax.softmax_cross_entropy_with_integer_labels(out, yi)

            values = jax.vmap(one)(xb, yb, dkeys)
            return jnp.sum(values * w[ib] if w is not None else values)

        return jax.value_and_grad(total)(params)

    if products == "gemm":
        block_grad = jax.jit(block_grad_of)
    else:
        @jax.jit
        def one(step, *args):
            zero = jax.lax.shift_right_logical(step, jnp.int32(31))
            return jax.vmap(exact(block_grad_of, zero), in_axes=(0, 0, 0, None, None, None))(*args)

        def block_grad(params, member_key, w, xb, yb, ib):
            lift = lambda a: None if a is None else a[None]  # noqa: E731
            out = one(jnp.int32(0), jax.tree.map(lift, params), member_key[None], lift(w), xb, yb, ib)
            return jax.tree.map(lambda a: a[0], out)

    batch = ids.shape[0]
    values = [[] for _ in range(ens.members)]
    grads = [[] for _ in range(ens.members)]
    for m in range(ens.members):
        params = jax.tree.map(lambda a, m=m: a[m], ens.params)
        w = None if weights is None else weights[m]
        for b in range(0, batch, block):
            v, g = block_grad(params, ens.keys[m], w, x[b:b + block], y[b:b + block], ids[b:b + block])
            values[m].append(np.asarray(v))
            grads[m].append([np.asarray(leaf) for leaf in jax.tree.leaves(g)])
    scale = np.float32(1.0 / batch)
    losses = np.stack([np_tree_sum(v) * scale for v in values])
    summed = [[np_tree_sum([g[i] for g in member]) * scale for i in range(len(member[0]))] for member in grads]
    return losses, [np.stack([s[i] for s in summed]) for i in range(len(summed[0]))]


@pytest.mark.bitwise
@pytest.mark.parametrize(("block", "chunks", "group", "bootstrap"),
                         [(None, 1, None, None), (8, 1, None, 64), (8, 4, 2, 64),
                          pytest.param(4, 2, 2, None, marks=pytest.mark.slow),  # a third block size: 6 CPU-s
                          (1, 1, None, None), (8, 2, 1, 64)],
                         ids=["one-block", "blocks-of-8", "chunks-and-groups", "blocks-of-4", "per-example",
                              "one-member-at-a-time"])
@pytest.mark.parametrize("products", ["gemm", "elementwise"])
@pytest.mark.bitwise
def test_step_equals_the_numpy_tree_of_block_gradients(block, chunks, group, bootstrap, products):
    ens = Ensemble.init(MLP(), kf.key(2), members=MEMBERS, sample_input=DATA.x[:2])
    trainer = Trainer(capture_gradients(), model_kwargs={"train": True}, block_size=block, chunks=chunks,
                      member_group=group, products=products)
    state = trainer.init(ens, bootstrap=bootstrap)
    ids = np.arange(32) * 2 % 64
    x, y = DATA.x[ids], DATA.y[ids]
    new_state, losses = trainer.step(state, x, y, ids)
    expected_losses, expected_grads = reference_step(ens, state.weights, x, y, jnp.asarray(ids),
                                                     block=block or 32 // chunks, products=products)
    assert_bitwise_equal(losses, expected_losses)
    for got, want in zip(jax.tree.leaves(new_state.opt_state), expected_grads, strict=True):
        assert_bitwise_equal(got, want)


@pytest.mark.bitwise
def test_tree_sum_order_and_subtrees():
    rng = np.random.default_rng(0)
    terms = (rng.normal(size=(11, 5)) * 1e4 ** rng.integers(-2, 3, size=(11, 1))).astype(np.float32)
    assert_bitwise_equal(tree_sum(jnp.asarray(terms)), np_tree_sum(list(terms)))
    assert_bitwise_equal(tree_sum(jnp.asarray(terms.T), axis=1), np_tree_sum(list(terms)))
    eight = jnp.asarray(terms[:8])
    by_pairs = tree_sum(jnp.stack([tree_sum(eight[i:i + 2]) for i in range(0, 8, 2)]))
    assert_bitwise_equal(by_pairs, tree_sum(eight))
    assert_bitwise_equal(tree_sum(jnp.zeros((0, 3))), np.zeros(3, np.float32))


@pytest.mark.slow  # 6 CPU-s; each block mode's exact step: test_step_equals_the_numpy_tree_of_block_gradients
def test_block_modes_train_alike_and_match_the_per_example_mode():
    ens = Ensemble.init(MLP(), kf.key(4), members=MEMBERS, sample_input=DATA.x[:2])
    results = {}
    for block in (None, 8, 1):
        trainer = Trainer(optax.adam(1e-2), model_kwargs={"train": True}, block_size=block)
        state = trainer.init(ens, bootstrap=64)
        losses = []
        for t in range(4):
            ids = (np.arange(32) + 32 * t) % 64
            state, loss = trainer.step(state, DATA.x[ids], DATA.y[ids], ids)
            losses.append(np.asarray(loss))
        results[block] = (np.stack(losses), jax.tree.leaves(state.ensemble.params))
    for block in (8, 1):
        np.testing.assert_allclose(results[block][0], results[None][0], rtol=1e-5, atol=1e-6)
        for a, b in zip(results[block][1], results[None][1], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def temp_bytes(trainer: Trainer, batch: int, members: int = 4, hidden: int = 256) -> int:
    """XLA's temporary bytes for the program of one step at ``batch`` (compiled, not run)."""
    x = jnp.ones((batch, 64), jnp.float32)
    ens = Ensemble.init(MLP(hidden=hidden), kf.key(0), members=members, sample_input=x[:1])
    state = trainer.init(ens)
    ids = jnp.arange(batch)
    compiled = trainer._lower_step(state, x, ids % 2, ids).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_temporary_memory_does_not_grow_with_batch_times_parameters():
    """From a batch of 32 to 256: the per-example mode's temporaries grow by about 224 x P floats
    (one member's per-example gradients: the members run one at a time); the default's by
    activations only."""
    hidden = 256
    params = 64 * hidden + hidden + hidden * 2 + 2
    per_example_growth = (256 - 32) * params * 4
    activations = (256 - 32) * hidden * 4  # one hidden layer's activations for the extra examples
    default = Trainer(optax.adam(1e-3), model_kwargs={"train": True})
    grown = temp_bytes(default, 256) - temp_bytes(default, 32)
    assert grown < 8 * activations < 0.15 * per_example_growth, (grown, activations, per_example_growth)
    per_example = Trainer(optax.adam(1e-3), model_kwargs={"train": True}, block_size=1)
    grown_per_example = temp_bytes(per_example, 256) - temp_bytes(per_example, 32)
    assert grown_per_example > 0.5 * per_example_growth, (grown_per_example, per_example_growth)


def test_the_optimizer_update_is_written_in_place():
    """With gemm products the members' Adam updates are written into the donated stacked state as
    they are computed (ensemble/_in_place.py): the step's temporaries hold the member's gradient
    and the gradient program's copy of its weights, under 2.5 member-sized buffers, not the new
    parameters and both moments beside them (4.0 before: three member-sized update outputs)."""
    hidden = 1024
    member_bytes = (64 * hidden + hidden + hidden * 2 + 2) * 4
    trainer = Trainer(optax.adam(1e-3), model_kwargs={"train": True}, products="gemm")
    temps = temp_bytes(trainer, 32, members=4, hidden=hidden)
    assert temps < 2.5 * member_bytes, (temps, member_bytes)


@pytest.mark.slow
def test_elementwise_step_temporaries_within_1_2x_of_the_hand_written_vmap():
    """The trainer bench's ``small`` size (2-16-16-2 MLP, dropout, batch 16, K=32 members, Adam;
    the rule picks elementwise products, all members in one vmap): XLA's temporaries within 1.2x
    of the hand-written ``jit(vmap(step))``'s (0.93x: 182744 against 197120 bytes; 1.22x when a
    dense layer's bias gradient summed a second copy of the cotangent the products had already
    materialised and the transposed kernel of the input gradient was copied at the start of the
    backward pass, ensemble/_exact.py)."""
    from keyfan._bench.trainer import SIZES, keyfan_contenders

    contenders = {c.name: c for c in keyfan_contenders(SIZES[0])}
    default, hand = contenders["keyfan Trainer (default)"], contenders["hand-written jit(vmap(train_step))"]
    assert default.arrangement.startswith("elementwise")
    default.make()
    assert default.temp_bytes() <= 1.2 * hand.temp_bytes(), (default.temp_bytes(), hand.temp_bytes())


def test_block_and_group_errors():
    ens = Ensemble.init(MLP(), kf.key(0), members=MEMBERS, sample_input=DATA.x[:2])
    with pytest.raises(ValueError, match="block_size"):
        Trainer(optax.sgd(0.1), block_size=0)
    with pytest.raises(ValueError, match="member_group"):
        Trainer(optax.sgd(0.1), member_group=0)
    trainer = Trainer(optax.sgd(0.1), model_kwargs={"train": True}, block_size=8, chunks=2)
    state = trainer.init(ens)
    ids = np.arange(24)
    with pytest.raises(ValueError, match=r"block_size=8 must divide each chunk .* chunks \* block_size = 16"):
        trainer.step(state, DATA.x[ids], DATA.y[ids], ids)
    grouped = Trainer(optax.sgd(0.1), model_kwargs={"train": True}, member_group=3)
    with pytest.raises(ValueError, match="member_group=3 must divide the 4 members"):
        grouped.step(grouped.init(ens), DATA.x[:8], DATA.y[:8], np.arange(8))


@pytest.mark.slow  # 25 CPU-s. Default tier: the numpy-tree test (groups None, 1, 2 against one
# group-independent reference, both products); slow tier also test_bench_trainer's member_group=2 bits.
@pytest.mark.parametrize("products", ["gemm", "elementwise"])
@pytest.mark.bitwise
def test_member_groups_keep_the_bits(products):
    """1, 2, 4 or 8 of 8 members per step of the loop over members give the bits of the default
    (one per step with gemm products, all 8 in one vmap with elementwise products): each member
    runs its own program (gemm) or a program whose bits do not depend on the member axis
    (elementwise) whatever the group."""
    ens = Ensemble.init(MLP(), kf.key(5), members=8, sample_input=DATA.x[:2])
    params = {}
    for group in (None, 1, 2, 4, 8):
        trainer = Trainer(optax.adam(1e-2), model_kwargs={"train": True}, member_group=group, block_size=8,
                          products=products)
        state = trainer.init(ens, bootstrap=64)
        for t in range(3):
            ids = (np.arange(32) + 32 * t) % 64
            state, _ = trainer.step(state, DATA.x[ids], DATA.y[ids], ids)
        params[group] = jax.tree.leaves(state.ensemble.params)
    for group in (1, 2, 4, 8):
        for a, b in zip(params[group], params[None], strict=True):
            assert_bitwise_equal(a, b)


@pytest.mark.parametrize("products", ["gemm", pytest.param("elementwise", marks=pytest.mark.slow)])
@pytest.mark.bitwise
def test_each_member_trained_alone_has_the_bits_it_has_in_the_ensemble(products):
    """Member identity for training: every member runs its own single-member program, so a member
    trained in an ensemble of 4 equals it trained alone (an ensemble of 1), step by step."""
    ens = Ensemble.init(MLP(), kf.key(6), members=4, sample_input=DATA.x[:2])

    def train(e):
        trainer = Trainer(optax.adam(1e-2), model_kwargs={"train": True}, products=products)
        state = trainer.init(e, bootstrap=64)
        losses = []
        for t in range(2):
            ids = (np.arange(32) + 32 * t) % 64
            state, loss = trainer.step(state, DATA.x[ids], DATA.y[ids], ids)
            losses.append(loss)
        return state, np.stack(losses)

    together, losses = train(ens)
    for m in (0, 3):
        alone, alone_losses = train(ens[m:m + 1])
        assert_bitwise_equal(alone_losses[:, 0], losses[:, m])
        for a, b in zip(jax.tree.leaves(alone.ensemble.params), jax.tree.leaves(together.ensemble.params), strict=True):
            assert_bitwise_equal(a[0], b[m])
