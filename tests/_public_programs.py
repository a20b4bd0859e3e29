"""Programs no one here wrote: short snippets from public bug threads, documentation and
examples of JAX, Flax (linen and NNX), Equinox, Haiku, numpyro, blackjax and diffrax users, each as
its author wrote it (names and structure kept; sizes shrunk so a test runs in seconds; the source
address in a comment). Where a thread shows both, the bug and its fix are two entries.

Each entry builds ``(function, args)``: calling the function runs the whole program (every vmap
it makes is traced). ``sanitize`` is what ``kf.sanitize()`` must do (True: raise, the broadcast key
is there; False: stay quiet and change no bit); ``audit`` is the set of problem kinds
``kf.audit(function, *args, in_axes=None)`` must report (empty: none at all). Run by
``tests/test_public_programs.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any

import diffrax
import equinox as eqx
import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
import jax.random as jr
import numpyro
import numpyro.distributions as dist
import optax
from flax import nnx
from jax import lax

Program = tuple[Callable[..., Any], tuple[Any, ...]]


@dataclasses.dataclass(frozen=True)
class Public:
    name: str
    build: Callable[[], Program]
    source: str
    sanitize: bool
    """True: the program broadcasts a key over a vmap, and kf.sanitize() must raise."""
    audit: frozenset[str] = frozenset()
    """The problem kinds the whole-program audit must report (empty: none)."""


PROGRAMS: list[Public] = []


def _add(name: str, source: str, *, sanitize: bool = False, audit: tuple[str, ...] = ()):
    def register(build: Callable[[], Program]) -> Callable[[], Program]:
        PROGRAMS.append(Public(name, build, source, sanitize, frozenset(audit)))
        return build
    return register


# -- nnx.vmap over a model with Dropout ----------------------------------------------------------
# https://github.com/google/flax/issues/4195 ("nnx.vmap use the same random key rngs inside
# nnx.Module across vectorization"), the question and the maintainer's answer.

class _Stochastic(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.linear = nnx.Linear(4, 4, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rngs=rngs)

    def __call__(self, x):
        return self.dropout(self.linear(x))


@_add("flax#4195 nnx.vmap, model broadcast", "https://github.com/google/flax/issues/4195", sanitize=True,
      audit=("shared-draw",))
def _flax_4195_bug() -> Program:
    model = _Stochastic(nnx.Rngs(0))

    def inference_fn(model, x):
        y = model(x)
        return y

    def run(model, xs):
        return nnx.vmap(inference_fn, in_axes=(None, 0))(model, xs)
    return run, (model, jnp.ones((5, 4)))


@_add("flax#4195 nnx.split_rngs + StateAxes (the answer)", "https://github.com/google/flax/issues/4195")
def _flax_4195_fix() -> Program:
    model = _Stochastic(nnx.Rngs(0))
    state_axes = nnx.StateAxes({nnx.RngState: 0, ...: None})  # vectorize RngState, broadcast the rest

    @nnx.split_rngs(splits=5)
    @nnx.vmap(in_axes=(state_axes, 0))
    def inference_fn(model, x):
        y = model(x)
        return y

    return inference_fn, (model, jnp.ones((5, 4)))


# -- nnx.vmap + split_rngs to create a stack of layers with Dropout ------------------------------
# https://github.com/google/flax/issues/4589

class _SomeLayer(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.linear = nnx.Linear(10, 10, rngs=rngs)
        self.dropout = nnx.Dropout(0.1, rngs=rngs)

    def __call__(self, x):
        return self.linear(self.dropout(x))


@_add("flax#4589 stack of layers created by nnx.vmap over split keys", "https://github.com/google/flax/issues/4589")
def _flax_4589() -> Program:
    def build_and_scan(x):
        @nnx.split_rngs(splits=3)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def create_layers(rngs: nnx.Rngs):
            return _SomeLayer(rngs)

        layers = create_layers(nnx.Rngs(0))

        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def forward(x, layer):
            return layer(x)
        return forward(x, layers)
    return build_and_scan, (jnp.ones((2, 10)),)


# -- Flax's own NNX transform tests (shared parameters, split dropout) ---------------------------
# https://github.com/google/flax/blob/main/tests/nnx/transforms_test.py (test_split_rngs_decorator_simple)

class _Block(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.linear = nnx.Linear(2, 3, rngs=rngs)
        self.bn = nnx.BatchNorm(3, rngs=rngs)
        self.dropout = nnx.Dropout(0.1, deterministic=False, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.relu(self.dropout(self.bn(self.linear(x))))


@_add("flax nnx transforms_test split_rngs decorator", "https://github.com/google/flax/blob/main/tests/nnx/transforms_test.py")
def _flax_nnx_tests() -> Program:
    def run(x):
        state_axes = nnx.StateAxes({(nnx.BatchStat, "dropout"): 0, ...: None})

        @nnx.split_rngs(splits=5, only="dropout")
        @nnx.vmap(in_axes=(state_axes,), out_axes=state_axes)
        def create_block(rngs: nnx.Rngs):
            return _Block(rngs)

        module = create_block(nnx.Rngs(params=0, dropout=1))

        @nnx.vmap(in_axes=(state_axes, 0), out_axes=0)
        def forward_block(module, x):
            return module(x)
        return forward_block(module, x)
    return run, (jnp.ones((5, 1, 2)),)


# -- linen: nn.vmap with split_rngs ------------------------------------------------------------
# Flax's RNG guide, "Lifted transforms: nn.vmap"
# (https://flax.readthedocs.io/en/latest/guides/flax_fundamentals/rng_guide.html).

class _RNGModule(nn.Module):
    @nn.compact
    def __call__(self):
        return jax.random.uniform(self.make_rng("other"), (2,))


class _VmapModule(nn.Module):
    split: bool

    @nn.compact
    def __call__(self):
        vmapped = nn.vmap(_RNGModule, variable_axes={"params": 0}, split_rngs={"params": True,
                                                                               "other": self.split}, axis_size=5)
        return vmapped()()


@_add("flax rng guide nn.vmap split_rngs other=False", "https://flax.readthedocs.io/en/latest/guides/flax_fundamentals/rng_guide.html",
      sanitize=True, audit=("shared-draw",))
def _rng_guide_bug() -> Program:
    model = _VmapModule(split=False)
    return lambda key: model.init_with_output({"params": key, "other": jax.random.fold_in(key, 1)})[0], (
        jax.random.key(0),)


@_add("flax rng guide nn.vmap split_rngs other=True", "https://flax.readthedocs.io/en/latest/guides/flax_fundamentals/rng_guide.html")
def _rng_guide_fix() -> Program:
    model = _VmapModule(split=True)
    return lambda key: model.init_with_output({"params": key, "other": jax.random.fold_in(key, 1)})[0], (
        jax.random.key(0),)


# -- haiku: hk.vmap with shared parameters -----------------------------------------------------
# https://github.com/google-deepmind/dm-haiku/issues/498, with the fix haiku's error message and
# the thread give: split_rng=(not hk.running_init()).

class _BatchedModule(hk.Module):
    def __init__(self, output_dim):
        super().__init__()
        self.module = hk.nets.MLP([10] + [output_dim])  # noqa: RUF005 (as the thread wrote it)

    def __call__(self, input_batch):
        return hk.vmap(self.module, split_rng=(not hk.running_init()))(input_batch)


# The thread's code passes one `rng` to init and to apply: apply's split repeats init's, which
# the audit reports (a real overlap of the parameters' keys and the per-example keys).
@_add("haiku#498 hk.vmap split_rng=(not hk.running_init())", "https://github.com/google-deepmind/dm-haiku/issues/498",
      audit=("split-then-reuse",))
def _haiku_498() -> Program:
    inputs = jax.random.normal(rng := jax.random.PRNGKey(0), (16, 13))
    batched_linear = hk.transform_with_state(lambda x: _BatchedModule(output_dim=11)(x))

    def run(rng, inputs):
        params, state = batched_linear.init(rng, inputs)
        return batched_linear.apply(params, state, rng, inputs)
    return run, (rng, inputs)


# -- haiku: dropout under hk.vmap --------------------------------------------------------------
# hk.vmap's documentation: split_rng=False gives every example the same random draw
# (https://dm-haiku.readthedocs.io/en/latest/api.html#haiku.vmap).

def _haiku_dropout(split: bool) -> Program:
    def f(x):
        return hk.vmap(lambda x: hk.dropout(hk.next_rng_key(), 0.5, x),
                       split_rng=split and not hk.running_init())(x)
    model = hk.transform(f)
    params = model.init(jax.random.PRNGKey(0), jnp.ones((8, 3)))
    return lambda key, x: model.apply(params, key, x), (jax.random.PRNGKey(1), jnp.ones((8, 3)))


_add("haiku hk.vmap dropout split_rng=False", "https://dm-haiku.readthedocs.io/en/latest/api.html#haiku.vmap",
     sanitize=True, audit=("shared-draw",))(partial(_haiku_dropout, False))
_add("haiku hk.vmap dropout split_rng=True", "https://dm-haiku.readthedocs.io/en/latest/api.html#haiku.vmap")(
    partial(_haiku_dropout, True))


# -- haiku: an ensemble initialised by vmap over keys ------------------------------------------
# https://github.com/google-deepmind/dm-haiku/issues/533 (vmap over init, one key per member)

@_add("haiku#533 ensemble: vmap(init) over split keys", "https://github.com/google-deepmind/dm-haiku/issues/533")
def _haiku_533() -> Program:
    def model(x: jax.Array) -> jax.Array:
        weights = hk.get_parameter("w", (x.shape[-1], 10), init=hk.initializers.RandomNormal())
        return x @ weights

    net = hk.without_apply_rng(hk.transform(model))

    def run(key, x):
        keys = jax.random.split(key, 4)
        params = jax.vmap(net.init, in_axes=(0, None))(keys, x)
        return jax.vmap(net.apply, in_axes=(0, None))(params, x)
    return run, (jax.random.PRNGKey(0), jnp.ones((2, 3)))


# -- Equinox: an ensemble by filter_vmap -------------------------------------------------------
# Equinox's documentation, "How to use filter_vmap to create an ensemble"
# (https://docs.kidger.site/equinox/tricks/#ensembling).

@_add("equinox ensembling trick", "https://docs.kidger.site/equinox/tricks/#ensembling")
def _equinox_ensemble() -> Program:
    def run(key, x):
        @eqx.filter_vmap
        def make_ensemble(key):
            return eqx.nn.MLP(2, 2, 2, 2, key=key)

        keys = jr.split(key, 8)
        mlp_ensemble = make_ensemble(keys)

        @eqx.filter_vmap(in_axes=(eqx.if_array(0), None))
        def evaluate_ensemble(model, x):
            return model(x)
        return evaluate_ensemble(mlp_ensemble, x)
    return run, (jr.PRNGKey(0), jnp.ones(2))


# -- Equinox: a training step with Dropout (issue 20's class 2, filter_jit + optax) --------------
# The Equinox docs' training-loop pattern (https://docs.kidger.site/equinox/examples/mnist/)
# with eqx.nn.Dropout called with inference=False.

class _DropoutMLP(eqx.Module):
    linear: eqx.nn.Linear
    dropout: eqx.nn.Dropout

    def __init__(self, key):
        self.linear = eqx.nn.Linear(4, 2, key=key)
        self.dropout = eqx.nn.Dropout(p=0.3)

    def __call__(self, x, key):
        return self.linear(self.dropout(x, key=key, inference=False))


def _equinox_step(broadcast: bool) -> Program:
    optim = optax.adamw(1e-3)

    @eqx.filter_jit
    def make_step(model, opt_state, x, y, key):
        def loss(model):
            if broadcast:
                pred = jax.vmap(model, in_axes=(0, None))(x, key)
            else:
                pred = jax.vmap(model)(x, jax.random.split(key, x.shape[0]))
            return jnp.mean((pred - y) ** 2)
        value, grads = eqx.filter_value_and_grad(loss)(model)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), opt_state, value

    model = _DropoutMLP(jr.PRNGKey(0))
    return make_step, (model, optim.init(eqx.filter(model, eqx.is_inexact_array)), jnp.ones((8, 4)),
                       jnp.zeros((8, 2)), jr.PRNGKey(1))


_add("equinox train step, dropout key broadcast", "https://docs.kidger.site/equinox/examples/mnist/", sanitize=True,
     audit=("shared-draw",))(partial(_equinox_step, True))
_add("equinox train step, one dropout key per example", "https://docs.kidger.site/equinox/examples/mnist/")(
    partial(_equinox_step, False))


# -- diffrax: a batch of SDE paths --------------------------------------------------------------
# https://github.com/patrick-kidger/diffrax/issues/267 (and jax#16422): one key per path.

def _diffrax_f(x0, key):
    D = x0.shape[0]
    drift = lambda t, x, args: -x  # noqa: E731
    diffusion = lambda t, x, args: jnp.eye(D)  # noqa: E731
    brownian_motion = diffrax.VirtualBrownianTree(0.0, 1.0, tol=1e-2, shape=x0.shape, key=key)
    terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, brownian_motion))
    sol = diffrax.diffeqsolve(terms, diffrax.Euler(), 0.0, 1.0, dt0=0.1, y0=x0, saveat=diffrax.SaveAt(t1=True))
    return sol.ys


@_add("diffrax#267 vmap over split keys", "https://github.com/patrick-kidger/diffrax/issues/267")
def _diffrax_267() -> Program:
    def run(x0, key):
        return jax.vmap(_diffrax_f)(x0, jax.random.split(key, x0.shape[0]))
    return run, (jnp.zeros((4, 2)), jax.random.key(1))


@_add("diffrax#531 vmap over initial points, one Brownian key", "https://github.com/patrick-kidger/diffrax/issues/531",
      sanitize=True, audit=("shared-draw",))
def _diffrax_531() -> Program:
    # "With my vmap attempt below, the paths are all the same; the BMs are not distinct."
    def run(x0, key):
        return jax.vmap(_diffrax_f, in_axes=(0, None))(x0, key)
    return run, (jnp.zeros((4, 2)), jax.random.key(1))


@_add("diffrax getting-started SDE", "https://docs.kidger.site/diffrax/usage/getting-started/")
def _diffrax_docs() -> Program:
    def solve(key):
        t0, t1 = 1, 3
        drift = lambda t, y, args: -y  # noqa: E731
        diffusion = lambda t, y, args: 0.1 * t  # noqa: E731
        brownian_motion = diffrax.VirtualBrownianTree(t0, t1, tol=1e-3, shape=(), key=key)
        terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, brownian_motion))
        sol = diffrax.diffeqsolve(terms, diffrax.Euler(), t0, t1, dt0=0.05, y0=1.0,
                                  saveat=diffrax.SaveAt(ts=jnp.linspace(t0, t1, 5)))
        return sol.ys
    return solve, (jr.PRNGKey(0),)


# -- blackjax: several chains ------------------------------------------------------------------
# blackjax's "How to sample multiple chains" (https://blackjax-devs.github.io/blackjax/examples/howto_sample_multiple_chains.html).

def _logdensity(x):
    return -0.5 * jnp.sum(x["loc"] ** 2)


def _blackjax_chains(shared_key: bool) -> Program:
    import blackjax

    kernel = blackjax.rmh(_logdensity, blackjax.mcmc.random_walk.normal(jnp.ones(2) * 0.3)).step
    num_chains = 4

    def inference_loop_multiple_chains(rng_key, initial_states, num_samples=3):
        @jax.jit
        def one_step(states, rng_key):
            if shared_key:
                states, _ = jax.vmap(kernel, in_axes=(None, 0))(rng_key, states)
            else:
                keys = jax.random.split(rng_key, num_chains)
                states, _ = jax.vmap(kernel)(keys, states)
            return states, states

        keys = jax.random.split(rng_key, num_samples)
        _, states = jax.lax.scan(one_step, initial_states, keys)
        return states.position

    init = jax.vmap(blackjax.rmh.init, in_axes=(0, None))(
        {"loc": jnp.zeros((num_chains, 2)) + jnp.arange(num_chains)[:, None]}, _logdensity)
    return inference_loop_multiple_chains, (jax.random.key(0), init)


_add("blackjax multiple chains, one key per chain",
     "https://blackjax-devs.github.io/blackjax/examples/howto_sample_multiple_chains.html")(
         partial(_blackjax_chains, False))
_add("blackjax multiple chains, the step key shared by the chains",
     "https://blackjax-devs.github.io/blackjax/examples/howto_sample_multiple_chains.html", sanitize=True,
     audit=("shared-draw",))(partial(_blackjax_chains, True))


# -- numpyro: vectorized chains and predictive -------------------------------------------------
# numpyro's MCMC (chain_method="vectorized") and Predictive (parallel=True) vmap over their
# own split keys (https://num.pyro.ai/en/stable/mcmc.html, https://num.pyro.ai/en/stable/utilities.html).

def _numpyro_model(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


@_add("numpyro Predictive(parallel=True)", "https://num.pyro.ai/en/stable/utilities.html#predictive")
def _numpyro_predictive() -> Program:
    from numpyro.infer import Predictive

    predictive = Predictive(_numpyro_model, num_samples=6, parallel=True)
    return lambda key: predictive(key)["y"], (jax.random.PRNGKey(0),)


@_add("numpyro MCMC chain_method=vectorized", "https://num.pyro.ai/en/stable/mcmc.html")
def _numpyro_mcmc() -> Program:
    from numpyro.infer import MCMC, NUTS

    def run(key, y):
        mcmc = MCMC(NUTS(_numpyro_model), num_warmup=3, num_samples=3, num_chains=2,
                    chain_method="vectorized", progress_bar=False)
        mcmc.run(key, y=y)
        return mcmc.get_samples()["mu"]
    return run, (jax.random.PRNGKey(0), jnp.ones(3))


# -- random-walk Metropolis over chains (the blog post, and its key fix) ----------------------------
# https://github.com/rlouf/blog-benchmark-rwmetropolis/pull/1 ("jax bug fix: split prng keys"):
# the kernel drew its proposal and its acceptance test from the same key.

def _rw_metropolis(fixed: bool) -> Program:
    def logpdf(x):
        return -0.5 * jnp.sum(x ** 2)

    def rw_metropolis_kernel(rng_key, position, log_prob):
        if fixed:
            key1, key2 = jax.random.split(rng_key)
        else:
            key1 = key2 = rng_key
        move_proposals = jax.random.normal(key1, shape=position.shape) * 0.1
        proposal = position + move_proposals
        proposal_log_prob = logpdf(proposal)
        log_uniform = jnp.log(jax.random.uniform(key2))
        do_accept = log_uniform < proposal_log_prob - log_prob
        position = jnp.where(do_accept, proposal, position)
        log_prob = jnp.where(do_accept, proposal_log_prob, log_prob)
        return position, log_prob

    def rw_metropolis_sampler(rng_key, initial_position, n_samples=5):
        def mh_update(i, state):
            key, position, log_prob = state
            _, key = jax.random.split(key)
            new_position, new_log_prob = rw_metropolis_kernel(key, position, log_prob)
            return (key, new_position, new_log_prob)

        logp = logpdf(initial_position)
        rng_key, position, log_prob = jax.lax.fori_loop(  # noqa: RUF059 (as the post wrote it)
            0, n_samples, mh_update, (rng_key, initial_position, logp))
        return position

    def run(rng_key, initial_positions):
        rng_keys = jax.random.split(rng_key, initial_positions.shape[0])
        return jax.jit(jax.vmap(rw_metropolis_sampler))(rng_keys, initial_positions)
    return run, (jax.random.PRNGKey(0), jnp.zeros((4, 2)))


# Both versions carry to the next iteration the key the kernel consumed: the next iteration's
# `_, key = split(key)` gives exactly the kernel's key2 (split(b) == (key1, key2) both times), which
# the fix drew its acceptance test from. The audit's loop-reuse on the fixed version is a real
# overlap, not a false alarm.
_add("rwmetropolis blog, proposal and acceptance from one key", "https://github.com/rlouf/blog-benchmark-rwmetropolis/pull/1",
     audit=("key-reuse", "loop-reuse"))(partial(_rw_metropolis, False))
_add("rwmetropolis blog, keys split (the fix)", "https://github.com/rlouf/blog-benchmark-rwmetropolis/pull/1",
     audit=("loop-reuse",))(partial(_rw_metropolis, True))


# -- a tutorial that split the key and kept drawing from the parent -------------------------------
# https://github.com/AakashKumarNain/TF_JAX_tutorials/issues/4

def _tutorial(fixed: bool) -> Program:
    def augment(key, batches):
        def one_batch(key, images):
            batch_size = images.shape[0]
            key, subkey = jax.random.split(key)
            rotate = jax.random.randint(subkey if fixed else key, shape=[batch_size], minval=0, maxval=2)
            return key, jnp.where(rotate[:, None, None] == 1, jnp.rot90(images, axes=(1, 2)), images)
        return jax.lax.scan(one_batch, key, batches)  # one key carried over the batches
    return augment, (jax.random.PRNGKey(0), jnp.ones((3, 4, 3, 3)))


# The bug shows over batches: the key randint drew from is the one split for the next batch.
_add("TF_JAX_tutorials#4 randint from the split parent", "https://github.com/AakashKumarNain/TF_JAX_tutorials/issues/4",
     audit=("loop-reuse",))(partial(_tutorial, False))
_add("TF_JAX_tutorials#4 randint from the subkey (the fix)", "https://github.com/AakashKumarNain/TF_JAX_tutorials/issues/4")(
    partial(_tutorial, True))


# -- a loop key: split-and-carry and fold_in (blackjax's change of pattern) ------------------------
# https://github.com/blackjax-devs/blackjax/pull/656

def _blackjax_656(fold: bool) -> Program:
    def loop(key):
        def step(carry, i):
            key, total = carry
            if fold:
                subkey = jax.random.fold_in(key, i)
            else:
                key, subkey = jax.random.split(key, 2)
            values = jax.random.normal(subkey, [3, 5])
            return (key, total + values.sum()), values
        return jax.lax.scan(step, (key, 0.0), jnp.arange(4))[1]
    return loop, (jax.random.key(42),)


_add("blackjax#656 split and carry in a loop", "https://github.com/blackjax-devs/blackjax/pull/656")(
    partial(_blackjax_656, False))
_add("blackjax#656 fold_in the step", "https://github.com/blackjax-devs/blackjax/pull/656")(
    partial(_blackjax_656, True))


# -- linen nn.scan over layers with dropout --------------------------------------------------------
# Flax's "Scan over layers" pattern (https://flax.readthedocs.io/en/latest/guides/converting_and_upgrading/rnncell_upgrade_guide.html
# and nn.scan's docstring): split_rngs={"params": True, "dropout": True}.

class _ScanBlock(nn.Module):
    @nn.compact
    def __call__(self, x, _):
        x = nn.Dense(4)(x)
        return nn.Dropout(0.5, deterministic=False)(x), None


def _linen_scan(split_dropout: bool) -> Program:
    stack = nn.scan(_ScanBlock, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": split_dropout},
                    length=3)
    model = stack()
    x = jnp.ones((2, 4))
    params = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x, None)
    return lambda key, x: model.apply(params, x, None, rngs={"dropout": key})[0], (jax.random.key(2), x)


_add("linen nn.scan dropout not split (one mask for every layer)", "https://flax.readthedocs.io/en/latest/api_reference/flax.linen/transformations.html#flax.linen.scan",
     audit=("loop-reuse",))(partial(_linen_scan, False))
_add("linen nn.scan dropout split", "https://flax.readthedocs.io/en/latest/api_reference/flax.linen/transformations.html#flax.linen.scan")(
    partial(_linen_scan, True))


# -- jax.random under vmap: keys mapped vs the shape trick -------------------------------------------
# JAX's "Pseudorandom numbers" tutorial (https://docs.jax.dev/en/latest/random-numbers.html): vmap
# over a key array gives independent draws; vmapping over data with one key does not.

@_add("jax tutorial: vmap over split keys", "https://docs.jax.dev/en/latest/random-numbers.html")
def _jax_tutorial_keys() -> Program:
    return lambda key: jax.vmap(lambda k: jax.random.normal(k, (3,)))(jax.random.split(key, 5)), (jax.random.key(0),)


@_add("jax tutorial: vmap over data with one key", "https://docs.jax.dev/en/latest/random-numbers.html", sanitize=True,
      audit=("shared-draw",))
def _jax_tutorial_data() -> Program:
    return (lambda key, xs: jax.vmap(lambda x: x + jax.random.normal(key, x.shape))(xs)), (
        jax.random.key(0), jnp.ones((5, 3)))


# -- a dead draw made for its shape (issue 20's class 3, from a held-out RL program) ----------------

@_add("init over seeds with a draw made for its shape", "keyfan issue 20, class 3 (a held-out RL program's init)")
def _shape_draw() -> Program:
    def init(seed):
        example = jax.random.uniform(jax.random.PRNGKey(0), (4,))
        key = jax.random.PRNGKey(seed)
        return jax.random.normal(key, example.shape, example.dtype)
    return jax.vmap(init), (jnp.arange(4),)


# -- jacfwd of a noisy function: JAX's own vmap over tangents --------------------------------------
# jax.jacfwd vmaps the JVP over basis vectors (https://docs.jax.dev/en/latest/_autosummary/jax.jacfwd.html):
# the primal draw is one draw for every direction by design.

@_add("jacfwd of a function that draws", "https://docs.jax.dev/en/latest/_autosummary/jax.jacfwd.html")
def _jacfwd() -> Program:
    def f(x, key):
        return x * jax.random.normal(key, x.shape)
    return (lambda x, key: (jax.jacfwd(f)(x, key), jax.hessian(lambda x: f(x, key).sum())(x))), (
        jnp.ones(3), jax.random.key(0))


# -- optax: a noisy-gradient transformation under vmap over seeds -----------------------------------
# optax.add_noise (https://optax.readthedocs.io/en/latest/api/transformations.html#optax.add_noise):
# one optimiser per seed, vmapped.

@_add("optax.add_noise vmapped over seeds", "https://optax.readthedocs.io/en/latest/api/transformations.html#optax.add_noise")
def _optax_noise() -> Program:
    def run(seeds, grads):
        def one(seed):
            tx = optax.add_noise(0.1, 0.55, seed)
            state = tx.init(grads)
            updates, _ = tx.update(grads, state)
            return updates
        return jax.vmap(one)(seeds)
    return run, (jnp.arange(3), jnp.ones(4))


# -- lax.cond with a per-example flag (issue 20's class 1) -----------------------------------------

@_add("cond on a per-example flag, key broadcast", "keyfan issue 20, class 1",
      sanitize=True, audit=("shared-draw",))
def _cond_flag() -> Program:
    def f(x, flag, key):
        return lax.cond(flag > 0, lambda x: x + jax.random.normal(key, x.shape), lambda x: x, x)
    return (lambda x, flags, key: jax.vmap(f, in_axes=(0, 0, None))(x, flags, key)), (
        jnp.zeros((4, 3)), jnp.array([1, 1, 1, 0]), jax.random.key(0))
