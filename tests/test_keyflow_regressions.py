"""The failure classes of the sanitizer and the audit found on code no one here wrote (issue 20),
each reproduced in a few lines as its user wrote it; the cond/while family is in
``test_sanitize_matrix.py``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax import lax

import keyfan as kf
from tests._real_programs import _NNXModel
from tests._real_programs import nested_heads as nested_heads_program

# -- class 2: the audit reads arguments as the function's own jit wrapper does ----------------


class _DropoutModel(eqx.Module):
    linear: eqx.nn.Linear
    dropout: eqx.nn.Dropout

    def __init__(self, key):
        self.linear = eqx.nn.Linear(4, 2, key=key)
        self.dropout = eqx.nn.Dropout(p=0.3)

    def __call__(self, x, key):
        return self.linear(self.dropout(x, key=key, inference=False))


_OPTIM = optax.adamw(1e-3)


@eqx.filter_jit
def _make_step(model, opt_state, x, y, key):
    keys = jax.random.split(key, x.shape[0])

    def loss(model):
        return jnp.mean((jax.vmap(model)(x, keys) - y) ** 2)

    value, grads = eqx.filter_value_and_grad(loss)(model)
    updates, opt_state = _OPTIM.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
    return eqx.apply_updates(model, updates), opt_state, value


def _equinox_step_args(broadcast=False):
    model = _DropoutModel(jax.random.key(0))
    return (model, _OPTIM.init(eqx.filter(model, eqx.is_inexact_array)), jnp.ones((8, 4)), jnp.zeros((8, 2)),
            jax.random.key(1))


def test_audit_reads_an_equinox_step_as_filter_jit_does():
    args = _equinox_step_args()
    _make_step(*args)  # the program runs
    report = kf.audit(_make_step, *args, in_axes=None)
    assert report.ok, report
    assert report.draws >= 1


def test_audit_reads_static_argnums_of_a_jax_jit_wrapper():
    @jax.jit
    def plain(x, key):
        return x + jax.random.normal(key, x.shape)

    def step(x, key, n):
        return jax.vmap(lambda xi: xi * n + jax.random.normal(key, xi.shape))(x)

    stepped = jax.jit(step, static_argnums=2)
    assert kf.audit(plain, jnp.ones(3), jax.random.key(0), in_axes=None).ok
    report = kf.audit(stepped, jnp.ones((4, 3)), jax.random.key(0), 3, in_axes=None)  # n: static, as jit has it
    assert [p.kind.value for p in report.problems] == ["shared-draw"], report


# -- class 3: a draw whose values reach no output is no problem ----------------------------------


def _init_from_seed(seed):
    example = jax.random.uniform(jax.random.PRNGKey(0), (4,))  # made for its shape only
    key = jax.random.PRNGKey(seed)
    return jax.random.normal(key, example.shape, example.dtype)


def test_dead_draw_is_reported_by_neither_tool():
    seeds = jnp.arange(4)
    with kf.sanitize():
        out = jax.vmap(_init_from_seed)(seeds)
    assert not np.array_equal(out[0], out[1])
    assert kf.audit(_init_from_seed, seeds[0], in_axes=0).ok
    assert kf.audit(jax.jit(lambda s: jax.vmap(_init_from_seed)(s)), seeds, in_axes=None).ok
    # Its values reaching the output is the bug again.
    def live(seed):
        return _init_from_seed(seed) + jax.random.uniform(jax.random.PRNGKey(0), (4,))
    with pytest.raises(kf.SharedRandomnessError), kf.sanitize():
        jax.vmap(live)(seeds)
    assert not kf.audit(live, seeds[0], in_axes=0).ok


def test_dead_reuse_is_not_reported():
    def f(key):
        k1, k2 = jax.random.split(key)
        _ = jax.random.normal(key, (2,))  # after the split, but its values go nowhere
        return jax.random.normal(k1, (2,)) + jax.random.normal(k2, (2,))
    assert kf.audit(f, jax.random.key(0), in_axes=None).ok


# -- class 4: nested scans that split and carry the key ------------------------------------------


def _nested_scans(key):
    def outer(key, _):
        key, sub = jax.random.split(key)

        def inner(k, _):
            k, s = jax.random.split(k)
            return k, jax.random.normal(s)

        key, ys = lax.scan(inner, key, None, length=3)
        return key, ys + jax.random.normal(sub)

    return lax.scan(outer, key, None, length=2)[1]


def test_nested_scans_that_split_every_step_are_clean():
    def inner_only(k):
        def inner(k, _):
            k, s = jax.random.split(k)
            return k, jax.random.normal(s)
        return lax.scan(inner, k, None, length=3)[1]

    assert kf.audit(inner_only, jax.random.key(0), in_axes=None).ok
    report = kf.audit(_nested_scans, jax.random.key(0), in_axes=None)
    assert report.ok, report
    values = np.asarray(_nested_scans(jax.random.key(0))).ravel()
    assert len(set(values.tolist())) == values.size  # every draw differs: nothing was reused


def test_nested_scans_that_reuse_the_inner_key_are_still_found():
    def buggy(key):
        def outer(key, _):
            def inner(k, _):
                return k, jax.random.normal(k)  # the carried key drawn from on every step, never split
            key, ys = lax.scan(inner, key, None, length=3)
            return key, ys
        return lax.scan(outer, key, None, length=2)[1]
    assert "loop-reuse" in {p.kind.value for p in kf.audit(buggy, jax.random.key(0), in_axes=None).problems}


# -- class 5: a library re-deriving from one key by design ---------------------------------------


def _sde_solve(key):
    # The SDE example of diffrax's documentation (https://docs.kidger.site/diffrax/usage/getting-started/).
    t0, t1 = 0.0, 3.0
    drift = lambda t, y, args: -y  # noqa: E731
    diffusion = lambda t, y, args: 0.1 * t  # noqa: E731
    brownian_motion = diffrax.VirtualBrownianTree(t0, t1, tol=1e-3, shape=(), key=key)
    terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, brownian_motion))
    sol = diffrax.diffeqsolve(terms, diffrax.Euler(), t0, t1, dt0=0.05, y0=1.0,
                              saveat=diffrax.SaveAt(ts=jnp.linspace(t0, t1, 4)))
    return sol.ys


def test_library_rederivation_is_a_note_of_the_library_not_the_users_problem():
    report = kf.audit(_sde_solve, jax.random.key(0), in_axes=None)
    assert report.ok, report
    notes = [f for f in report.allowed if "diffrax" in f.message]
    assert notes, report
    # Over a batch of paths, one key per path is correct and the broadcast key is still found.
    keys = jax.random.split(jax.random.key(0), 3)
    assert kf.audit(_sde_solve, keys[0], in_axes=0).ok
    with kf.sanitize():
        paths = jax.vmap(_sde_solve)(keys)
    assert not np.array_equal(paths[0], paths[1])
    with pytest.raises(kf.SharedRandomnessError, match=r"test_keyflow_regressions\.py"), kf.sanitize():
        jax.vmap(lambda y0, key: _sde_solve(key) + y0, in_axes=(0, None))(jnp.zeros(3), jax.random.key(0))


# -- class 6: NNX parameters shared over nnx.vmap on purpose ------------------------------------


class _Block(nnx.Module):
    # Flax's own NNX transform tests, test_split_rngs_decorator_simple
    # (https://github.com/google/flax/blob/main/tests/nnx/transforms_test.py).
    def __init__(self, rngs: nnx.Rngs):
        self.linear = nnx.Linear(2, 3, rngs=rngs)
        self.bn = nnx.BatchNorm(3, rngs=rngs)
        self.dropout = nnx.Dropout(0.1, deterministic=False, rngs=rngs)

    def __call__(self, x):
        return nnx.relu(self.dropout(self.bn(self.linear(x))))


def test_nnx_parameters_created_once_for_the_batch_are_not_reported():
    state_axes = nnx.StateAxes({(nnx.BatchStat, "dropout"): 0, ...: None})

    @nnx.split_rngs(splits=5, only="dropout")
    @nnx.vmap(in_axes=(state_axes,), out_axes=state_axes)
    def create_block(rngs: nnx.Rngs):
        return _Block(rngs)

    @nnx.vmap(in_axes=(state_axes, 0), out_axes=0)
    def forward_block(module, x):
        return module(x)

    with kf.sanitize():
        module = create_block(nnx.Rngs(params=0, dropout=1))
        y = forward_block(module, jnp.ones((5, 1, 2)))
    assert module.linear.kernel.shape == (2, 3) and y.shape == (5, 1, 3)
    assert kf.audit(lambda r: create_block(r), nnx.Rngs(params=0, dropout=1), in_axes=None).ok


def test_nnx_dropout_stream_not_split_is_still_found():
    model = _NNXModel(nnx.Rngs(params=0, dropout=1))  # Linear + Dropout, one unsplit dropout stream
    forward = nnx.vmap(lambda m, x: m(x), in_axes=(None, 0))
    with pytest.raises(kf.SharedRandomnessError, match=r"nnx\.vmap"), kf.sanitize():
        forward(model, jnp.ones((5, 4)))


# -- declared unmapped outputs: the draw itself, never a reduction over the batch ------------------
# out_axes=None says "one value for every example": a draw returned that way (shared parameters
# under hk.vmap, nn.vmap, nnx.vmap) is shared on purpose. A reduction over the batch (pmean, psum)
# of values computed from the draw is no such declaration: its examples did share the noise.


def _noisy_with_mean(x, key):
    y = x + jax.random.normal(key, x.shape)
    return y, lax.pmean(y, "batch")


def _noisy_mean_only(x, key):
    return lax.pmean(x + jax.random.normal(key, x.shape), "batch")


def _init_and_apply(x, key):
    w = jax.random.normal(key, (3, 2))
    return x @ w, w


@jax.jit
def _apply(w, x):
    return w * 1.0, x @ w


def _init_then_jit(x, key):
    w = jax.random.normal(key, (3, 2))
    w2, y = _apply(w, x)  # w2 leaves a jit that also reads the batch, but depends on w alone
    return y, w2


@pytest.mark.parametrize("f, out_axes", [(_noisy_with_mean, (0, None)), (_noisy_mean_only, None)])
def test_a_reduction_over_the_batch_returned_unmapped_does_not_declare_the_draw_shared(f, out_axes):
    batched = jax.vmap(f, in_axes=(0, None), out_axes=out_axes, axis_name="batch")
    xs, key = jnp.arange(12.0).reshape(4, 3), jax.random.key(0)
    with pytest.raises(kf.SharedRandomnessError, match=r"test_keyflow_regressions\.py:\d+ \(_noisy"), kf.sanitize():
        batched(xs, key)
    with pytest.raises(kf.SharedRandomnessError), kf.sanitize():
        jax.jit(batched)(xs, key)
    report = kf.audit(lambda xs, key: batched(xs, key), xs, key, in_axes=None)
    assert [f.kind for f in report.problems] == [kf.AuditKind.SHARED_DRAW], str(report)


@pytest.mark.parametrize("f", [_init_and_apply, _init_then_jit])
def test_a_draw_returned_unmapped_is_declared_shared(f):
    batched = jax.vmap(f, in_axes=(0, None), out_axes=(0, None))
    xs, key = jnp.ones((4, 3)), jax.random.key(0)
    plain = batched(xs, key)
    with kf.sanitize():
        checked = batched(xs, key)
        jax.jit(batched)(xs, key)
    assert all(bool((a == b).all()) for a, b in zip(plain, checked, strict=True))
    assert kf.audit(lambda xs, key: batched(xs, key), xs, key, in_axes=None).ok


# -- class 7: one retrace per function under the check, whatever the number of blocks ------------


def test_sanitize_blocks_retrace_a_function_once():
    traces = []

    @jax.jit
    def step(x):
        traces.append(1)
        return jax.vmap(lambda r: r @ r.T)(x)

    x = jnp.ones((4, 3, 3))
    step(x)
    for _ in range(5):
        with kf.sanitize():
            step(x)
    with kf.sanitize(action="warn"):
        step(x)
    assert len(traces) == 3, "one trace without the check, one per action under it"
    assert step._cache_size() <= 3


def test_a_buggy_function_raises_in_every_block():
    step = jax.jit(lambda xs, key: jax.vmap(lambda x: x + jax.random.normal(key, x.shape))(xs))
    for _ in range(3):
        with pytest.raises(kf.SharedRandomnessError), kf.sanitize():
            step(jnp.ones((4, 3)), jax.random.key(0))


def test_warn_mode_replays_a_cached_trace_in_every_block_without_retracing():
    """A later warn block hits the cached trace: it still warns, and nothing is traced again."""
    from jax._src import pjit  # the adapter's interposition points are JAX's again after the check

    traces = []

    @jax.jit
    def step(xs, key):
        traces.append(1)
        return jax.vmap(lambda x: x + jax.random.normal(key, x.shape))(xs)

    @jax.jit
    def outer(xs, key):  # a new trace around the cached one
        return step(xs, key) + 1.0

    xs, key = jnp.ones((4, 3)), jax.random.key(0)
    original = pjit._infer_params
    for f in (step, step, outer, outer):
        with warnings.catch_warnings(record=True) as caught, kf.sanitize(action="warn"):
            warnings.simplefilter("always")
            f(xs, key)
            f(xs, key)
        assert [type(w.message) for w in caught] == [kf.SharedRandomnessWarning], [str(w.message) for w in caught]
        assert caught[0].filename == __file__ and caught[0].message.findings[0].kind is kf.AuditKind.SHARED_DRAW
    assert len(traces) == 1, "the warn-mode trace is reused by every block"
    assert pjit._infer_params is original
    with kf.sanitize(action="warn"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        checked = step(xs, key)
    assert bool((checked == step(xs, key)).all()), "the replayed call computes the same values"


_CACHED_BUG = '''
import jax, jax.numpy as jnp

@jax.jit
def step(xs, key):
    return jax.vmap(lambda x: x + jax.random.normal(key, x.shape))(xs)

def test_first():
    step(jnp.zeros((4, 3)), jax.random.key(0))

def test_second():
    step(jnp.zeros((4, 3)), jax.random.key(0))
'''


def test_pytest_warn_mode_reports_to_every_test_that_runs_the_cached_trace(tmp_path):
    run = _pytest(tmp_path, _CACHED_BUG, "--keyfan-sanitize-warn", "-rA")
    assert run.returncode == 0, run.stdout + run.stderr
    summary = run.stdout.split("warnings summary", 1)[-1]
    assert "test_bug.py::test_first" in summary and "test_bug.py::test_second" in summary, run.stdout
    assert "SharedRandomnessWarning" in summary and "test_bug.py:6" in summary, run.stdout
    assert "2 passed, 2 warnings" in run.stdout.strip().splitlines()[-1], run.stdout


# -- class 8: what a user reads in pytest -------------------------------------------------------

_TWO_BUGS = '''
import jax, jax.numpy as jnp

def noisy(x, key):
    a = jax.random.normal(key, x.shape)
    b = jax.random.uniform(key, x.shape)
    return x + a + b

def test_noise():
    jax.jit(jax.vmap(noisy, in_axes=(0, None)))(jnp.zeros((4, 3)), jax.random.key(0))
'''


def _pytest(tmp_path, source, *flags, env=None):
    (tmp_path / "test_bug.py").write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags, "test_bug.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_pytest_report_names_the_public_error_every_draw_and_hides_keyfan_frames(tmp_path):
    run = _pytest(tmp_path, _TWO_BUGS, "--keyfan-sanitize")
    assert run.returncode == 1, run.stdout + run.stderr
    summary = [line for line in run.stdout.splitlines() if line.startswith("FAILED")]
    assert summary and "keyfan.SharedRandomnessError" in summary[0], run.stdout
    assert "test_bug.py:5" in run.stdout and "test_bug.py:6" in run.stdout, run.stdout
    assert "_keyflow" not in run.stdout and "keyfan/_sanitize.py" not in run.stdout, run.stdout


@pytest.mark.parametrize("value", ["yes", "maybe"])
def test_unknown_environment_value_is_one_clear_line(tmp_path, value):
    run = subprocess.run([sys.executable, "-c", "import keyfan"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "KEYFAN_SANITIZE": value}, cwd=tmp_path)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "KEYFAN_SANITIZE" in lines[0] and "'warn'" in lines[0] and value in lines[0], run.stderr


# -- the vmaps JAX makes for autodiff, and a vmap traced by make_jaxpr ---------------------------

def _noisy_scale(x):
    return x * jax.random.normal(jax.random.key(0), x.shape)


@pytest.mark.parametrize("transform", [jax.jacfwd, jax.jacrev, jax.hessian], ids=["jacfwd", "jacrev", "hessian"])
def test_autodiff_basis_vmaps_are_not_reported(transform):
    """jacfwd/jacrev vmap over basis vectors with one primal: the draw is the same on purpose."""
    x = jnp.arange(3.0)
    with kf.sanitize():
        got = transform(lambda v: _noisy_scale(v).sum())(x) if transform is jax.hessian else transform(_noisy_scale)(x)
    assert got.shape == (3, 3)


def test_a_vmap_traced_by_make_jaxpr_is_checked():
    """On JAX < 0.10 ``make_jaxpr_f`` sits right above the vmap (the audit traces that way): it is
    not ``jacfwd``'s basis vmap, so the broadcast key is reported, at the outer of nested vmaps too."""
    with pytest.raises(kf.SharedRandomnessError, match="shared-draw"), kf.sanitize():
        jax.make_jaxpr(jax.vmap(lambda x, key: x + jax.random.normal(key, x.shape), in_axes=(0, None)))(
            jnp.zeros((4, 3)), jax.random.key(0))
    fn, args = nested_heads_program("batch")
    assert not kf.audit(fn, *args, in_axes=None).ok
