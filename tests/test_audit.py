"""keyfan.audit, check_independent, the pytest helpers and the ``keyfan audit`` command.

The corpus (``tests/audit_corpus``) gives every snippet its expected verdict; precision and
recall are computed over it and printed. Then: no false positive on any recipe, sampler or
transform; every wrapper kind is followed; reports, errors, the runtime check, the CLI.
"""

from __future__ import annotations

import functools
import inspect
import pathlib
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import PartitionSpec as P
from rich.console import Console
from typer.testing import CliRunner

import keyfan as kf
from keyfan import recipes
from keyfan import transforms as T
from keyfan._cli_specs import parse_arg, parse_in_axes
from keyfan.cli import app
from keyfan.testing import assert_independent, assert_no_key_misuse
from tests.audit_corpus import CASES, Case
from tests.conftest import LEGACY_SLOW

README = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "guides" / "audit.md").read_text()  # the audit guide

SEED = 20240917
KEY = jax.random.key(SEED)
RAW = jax.random.PRNGKey(SEED)
X = jnp.zeros(3, jnp.float32)


def noisy(x, key):
    return x + jax.random.normal(key, x.shape)


def _verdict(case: Case) -> tuple[bool, object]:
    """(flagged, report) for one corpus snippet."""
    if case.runtime:
        report = kf.check_independent(case.f())
    else:
        report = kf.audit(case.f, *case.args, in_axes=case.in_axes, axis_name=case.axis_name)
    return not report.ok, report


# -- the corpus ----------------------------------------------------------------------------------

def test_corpus_is_large_enough():
    static = [c for c in CASES if not c.runtime]
    assert sum(c.buggy for c in static) >= 30 and sum(not c.buggy for c in static) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_verdict(case: Case):
    if case.limit:
        pytest.xfail(case.limit)
    flagged, report = _verdict(case)
    assert flagged == case.buggy, f"{case.why}\n{report}"
    if case.buggy and not case.runtime:
        assert case.kinds <= {f.kind.value for f in report.problems}, report
        assert all(f.location and f.fix for f in report.problems), report
    if case.allowed:
        assert report.allowed, f"the declared sharing should be reported as allowed\n{report}"


def _precision_recall(cases: list[Case]) -> tuple[int, int, int, int]:
    tp = fp = fn = tn = 0
    for case in cases:
        flagged, _ = _verdict(case)
        tp += flagged and case.buggy
        fp += flagged and not case.buggy
        fn += not flagged and case.buggy
        tn += not flagged and not case.buggy
    return tp, fp, fn, tn


def test_corpus_precision_and_recall(capsys):
    lines = []
    whole = [c for c in CASES if c.name.startswith("whole_program.")]
    for label, cases in (("keyfan.audit (static)", [c for c in CASES if not c.runtime]),
                         ("keyfan.audit of whole programs (in_axes=None)", whole),
                         ("keyfan.check_independent (runtime)", [c for c in CASES if c.runtime])):
        tp, fp, fn, tn = _precision_recall(cases)
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        lines.append(f"{label}: {len(cases)} snippets ({tp + fn} buggy, {fp + tn} correct): "
                     f"precision {tp}/{tp + fp} = {precision:.1%}, recall {tp}/{tp + fn} = {recall:.1%}")
        assert fp == 0, "no correct snippet may be flagged"
        assert fn == sum(c.limit != "" for c in cases), "every missed bug is a documented limit"
        percent = {p: "100%" if p == 1 else f"{p:.1%}" for p in (precision, recall)}
        readme_row = f"| {tp}/{tp + fp} = {percent[precision]} | {tp}/{tp + fn} = {percent[recall]} |"
        assert readme_row in README, f"docs/guides/audit.md's precision/recall table is stale: expected {readme_row!r}"
    with capsys.disabled():
        print("\n" + "\n".join(lines))


# -- no false positives on keyfan's own code -------------------------------------------------------

PARAMS = recipes.init_mlp_params(RAW, 4, 8, 2)
IMAGE = jax.ShapeDtypeStruct((232, 232, 3), jnp.float32)

RECIPES = [
    # per-example functions, with the in_axes they are vmapped with
    ("add_noise", recipes.add_noise, (X, "key"), (0, 0)),
    ("per_example_dropout", recipes.per_example_dropout, (X, "key"), (0, 0)),
    ("forward_single", recipes.forward_single, (PARAMS, jnp.zeros(4), "key"), (None, 0, 0)),
    ("augment_image", recipes.augment_image, ("key", IMAGE), (0, 0)),
    ("sample_and_transform", recipes.sample_and_transform, ("key",), 0),
    ("nested_normal inner", lambda k: jax.random.normal(k, (4,)), ("key",), [0, 0]),
    ("batched init", nn.Dense(5).init, ("key", jnp.ones(4)), (0, None)),
    # whole batched programs (no outer vmap)
    ("model_step", recipes.model_step, ({"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}, jnp.zeros((5, 3)), "key"), None),
    ("forward_batch", recipes.forward_batch, (PARAMS, jnp.zeros((5, 4)), "key"), None),
    ("augment_batch", recipes.augment_batch, ("key", jax.ShapeDtypeStruct((2, 232, 232, 3), jnp.float32)), None),
    ("sample_many", recipes.sample_many, ("key", 1000), None),
    ("nested_normal", recipes.nested_normal, ("key", 2, 3, 4), None),
    ("key_grid", recipes.key_grid, ("key", 2, 3), None),
    ("init_mlp_params", recipes.init_mlp_params, ("key", 4, 8, 2), None),
    ("deterministic_batch", recipes.deterministic_batch, (0, 4, 3), None),
    ("batched_init_param_count", recipes.batched_init_param_count, (0, 3, 5), None),
    ("nn_vmap_forward", recipes.nn_vmap_forward, (0, jnp.ones((4, 3)), 5), None),
]


@pytest.mark.parametrize("kind", ["typed", "raw"])
@pytest.mark.parametrize("name,f,args,in_axes", RECIPES, ids=[r[0] for r in RECIPES])
def test_no_false_positive_on_recipes(name, f, args, in_axes, kind):
    key = KEY if kind == "typed" else RAW
    args = tuple(key if isinstance(a, str) else a for a in args)
    report = kf.audit(f, *args, in_axes=in_axes)
    assert report.ok, report


def _keyfan_uses(stream):
    s = {"stream": stream}
    img, xs = jnp.ones((16, 16, 3)), jnp.ones((4, 8))
    pipe = T.compose(crop=functools.partial(T.random_crop, size=12, padding=2), flip=T.flip_left_right,
                     bright=functools.partial(T.brightness, max_delta=0.2))
    per_example = {
        "normal": lambda k: kf.normal(k, batch=(4,), shape=(3,), **s),
        "normal single": lambda k: kf.normal(k, batch=(), shape=(3,), **s),
        "nested normal": lambda k: kf.normal(k, batch=(2, 3), shape=(3,), **s),
        "uniform": lambda k: kf.uniform(k, batch=(4,), shape=(3,), minval=-1.0, maxval=2.0, **s),
        "bits": lambda k: kf.bits(k, batch=(4,), shape=(3,), **s),
        "bernoulli": lambda k: kf.bernoulli(k, batch=(4,), shape=(3,), p=0.3, **s),
        "randint": lambda k: kf.randint(k, batch=(4,), shape=(3,), minval=0, maxval=10, **s),
        "truncated_normal": lambda k: kf.truncated_normal(k, batch=(4,), shape=(3,), lower=-1.0, upper=1.0, **s),
        "gumbel": lambda k: kf.gumbel(k, batch=(4,), shape=(3,), **s),
        "categorical": lambda k: kf.categorical(k, batch=(4,), logits=jnp.zeros(5), **s),
        "keys": lambda k: (jax.random.normal(kf.at(k, 3, batch_shape=(8,), **s))
                           + jax.random.normal(kf.named(k, "x", **s)) + jax.random.normal(kf.step(k, 2, **s))
                           + jax.vmap(jax.random.normal)(kf.fan_out(k, 4, **s)).sum()),
        "dropout": lambda k: T.dropout(k, xs[0], 0.5, **s),
        "dropout_mask": lambda k: T.dropout_mask(k, (4, 8), 0.3, batch_axes=1, **s),
        "gaussian_noise": lambda k: T.gaussian_noise(k, xs[0], 0.1, **s),
        "flip_left_right": lambda k: T.flip_left_right(k, img, **s),
        "flip_up_down": lambda k: T.flip_up_down(k, img, **s),
        "brightness": lambda k: T.brightness(k, img, 0.2, **s),
        "contrast": lambda k: T.contrast(k, img, 0.8, 1.2, **s),
        "random_crop": lambda k: T.random_crop(k, img, 12, padding=2, **s),
        "cutout": lambda k: T.cutout(k, img, 4, **s),
        "compose": lambda k: pipe(k, img, **s),
    }
    batched = {  # the batched forms, audited as whole programs
        "dropout batched": lambda k: T.dropout(k, xs, 0.5, batch_axes=1, **s),
        "noise batched": lambda k: T.gaussian_noise(k, xs, 0.1, batch_axes=1, **s),
        "flip batched": lambda k: T.flip_up_down(k, img[None].repeat(3, 0), batch_axes=1, **s),
        "brightness batched": lambda k: T.brightness(k, img[None].repeat(3, 0), 0.2, batch_axes=1, **s),
        "crop batched": lambda k: T.random_crop(k, img[None].repeat(3, 0), 12, padding=2, batch_axes=1, **s),
        "cutout batched": lambda k: T.cutout(k, img[None].repeat(3, 0), 4, batch_axes=1, **s),
        "compose batched": lambda k: pipe(k, img[None].repeat(3, 0), batch_axes=1, **s),
    }
    return [(n, f, 0) for n, f in per_example.items()] + [(n, f, None) for n, f in batched.items()]


@pytest.mark.parametrize("stream", LEGACY_SLOW)  # the audit reads the jaxpr, not the stream's bits
def test_no_false_positive_on_samplers_and_transforms(stream):
    key = kf.key(SEED, stream=stream)
    flagged = {name: str(r) for name, f, in_axes in _keyfan_uses(None)
               if not (r := kf.audit(f, key, in_axes=in_axes)).ok}
    assert not flagged, "\n".join(flagged.values())
    if stream == "threefry":  # raw and JAX-typed keys, read on the default stream
        for k in (RAW, KEY):
            flagged = {n: str(r) for n, f, ax in _keyfan_uses(stream) if not (r := kf.audit(f, k, in_axes=ax)).ok}
            assert not flagged, "\n".join(flagged.values())


def test_no_false_positive_on_jax_random_library():
    def zoo(k):
        ks = jax.random.split(k, 12)
        return [jax.random.gamma(ks[0], 2.0, (3,)), jax.random.beta(ks[1], 2.0, 3.0, (3,)),
                jax.random.dirichlet(ks[2], jnp.ones(3)), jax.random.permutation(ks[3], 5),
                jax.random.choice(ks[4], 5, (3,), replace=False), jax.random.categorical(ks[5], jnp.zeros(4)),
                jax.random.truncated_normal(ks[6], -1.0, 1.0, (3,)), jax.random.poisson(ks[7], 3.0, (3,)),
                jax.random.multivariate_normal(ks[8], jnp.zeros(2), jnp.eye(2)),
                jax.nn.initializers.orthogonal()(ks[9], (3, 3)), jax.random.t(ks[10], 3.0, (2,)),
                jax.random.binomial(ks[11], 5, 0.3, (2,))]
    for key in (KEY, RAW):
        report = kf.audit(zoo, key)
        assert report.ok and report.draws >= 12, report


# -- every wrapper kind is followed ----------------------------------------------------------------

def _closed_call(f, *example):
    """``f`` behind a ``closed_call`` equation (JAX makes them when it prunes custom_vjp's forward)."""
    from jax._src import core, source_info_util
    from jax._src.interpreters import partial_eval as pe
    from jax.extend.core.primitives import closed_call_p

    inner = jax.make_jaxpr(f)(*example)
    # JAX 0.5 names a Var by (suffix, aval); eqn_effects takes (jaxpr, invars) from JAX 0.10, (jaxpr) in
    # 0.8.3 and 0.9, and is absent before (a call's effects are its jaxpr's, none here).
    var = core.Var if "suffix" not in core.Var.__slots__ else functools.partial(core.Var, "")
    invars = [var(a) for a in inner.in_avals]
    outvars = [var(a) for a in inner.out_avals]
    if not hasattr(core, "eqn_effects"):
        effects = inner.effects
    elif len(inspect.signature(core.eqn_effects).parameters) == 1:
        effects = core.eqn_effects(inner)
    else:
        effects = core.eqn_effects(inner, invars)
    eqn = pe.new_jaxpr_eqn(invars, outvars, closed_call_p, {"call_jaxpr": inner}, effects,
                           source_info_util.current())
    outer = core.Jaxpr([], invars, outvars, [eqn], debug_info=inner.jaxpr.debug_info)
    return lambda *args: core.eval_jaxpr(outer, [], *args)[0]


@jax.custom_jvp
def _cjvp(x, key):
    return noisy(x, key)


_cjvp.defjvp(lambda primals, tangents: (_cjvp(*primals), tangents[0]))


@jax.custom_vjp
def _cvjp(x, key):
    return noisy(x, key)


_cvjp.defvjp(lambda x, key: (_cvjp(x, key), None), lambda _, g: (g, None))


def _in_scan(x, key):
    def body(k, _):
        k, sub = jax.random.split(k)
        return k, jax.random.normal(sub)
    return x + lax.scan(body, key, None, length=3)[1].sum()


def _in_while(x, key):
    def body(state):
        i, acc, k = state
        return i + 1, acc + jax.random.normal(jax.random.fold_in(k, i)), k
    return x + lax.while_loop(lambda s: s[0] < 3, body, (0, 0.0, key))[1]


WRAPPERS = [
    ("jit", "jit", lambda x, k: jax.jit(noisy)(x, k)),
    ("closed_call", "closed_call", _closed_call(noisy, X, KEY)),
    ("remat", "remat2", lambda x, k: jax.checkpoint(noisy)(x, k)),
    ("custom_jvp", "custom_jvp_call", _cjvp),
    ("custom_vjp", "custom_vjp_call", _cvjp),
    ("custom_vjp under grad", "custom_vjp_call",
     lambda x, k: jax.value_and_grad(lambda x: _cvjp(x, k).sum())(x)[0]),
    ("cond", "cond", lambda x, k: lax.cond(x[0] > 0, lambda: noisy(x, k), lambda: x - noisy(x, k))),
    ("scan", "scan", _in_scan),
    ("while", "while", _in_while),
    ("shard_map", "shard_map", lambda x, k: jax.shard_map(noisy, mesh=jax.make_mesh((1,), ("d",)), in_specs=(P(), P()),
                                                           out_specs=P())(x, k)),
]


@pytest.mark.parametrize("name,primitive,f", WRAPPERS, ids=[w[0] for w in WRAPPERS])
def test_each_wrapper_is_followed(name, primitive, f):
    names = {e.primitive.name for e in jax.make_jaxpr(f)(X, KEY).eqns}
    assert primitive in names, f"the snippet should contain a {primitive} equation, got {names}"
    shared = kf.audit(f, X, KEY, in_axes=(0, None))
    assert [p.kind.value for p in shared.problems][:1] == ["shared-draw"], shared
    assert "test_audit.py" in shared.problems[0].location
    assert kf.audit(f, X, KEY, in_axes=(0, 0)).ok


def test_cond_with_mapped_index_makes_outputs_mapped():
    def f(i, key):  # a key chosen per example by a mapped index
        return jax.random.normal(lax.cond(i > 0, lambda: jax.random.fold_in(key, 1), lambda: key))
    report = kf.audit(f, jnp.int32(0), KEY, in_axes=(0, None))
    assert report.ok, report


def test_axis_index_counts_as_mapped():
    def f(x, key):
        return noisy(x, jax.random.fold_in(key, lax.axis_index("b")))
    assert kf.audit(f, X, KEY, in_axes=(0, None), axis_name="b").ok
    # the same name on an outer level does not make the inner level vary
    report = kf.audit(f, X, KEY, in_axes=[(0, None), (0, None)], axis_name=["b", "c"])
    assert [p.kind.value for p in report.problems] == ["shared-draw"]
    assert "vmap level 1 (innermost) 'c'" in report.problems[0].message
    # a psum over the axis removes the variation again
    g = lambda x, k: noisy(x, jax.random.fold_in(k, lax.psum(lax.axis_index("b"), "b")))  # noqa: E731
    assert not kf.audit(g, X, KEY, in_axes=(0, None), axis_name="b").ok


def test_scan_iteration_zero_uses_the_initial_key():
    def draw_then_fold(xs, key):
        def body(k, x):
            return jax.random.fold_in(k, jnp.int32(x)), jax.random.normal(k)
        return lax.scan(body, key, xs)[1]

    def fold_then_draw(xs, key):
        def body(k, x):
            k = jax.random.fold_in(k, jnp.int32(x))
            return k, jax.random.normal(k)
        return lax.scan(body, key, xs)[1]

    xs = jnp.arange(3.0)
    assert not kf.audit(draw_then_fold, xs, KEY, in_axes=(0, None)).ok
    assert kf.audit(fold_then_draw, xs, KEY, in_axes=(0, None)).ok


# -- reports ---------------------------------------------------------------------------------------

def test_report_fields_str_and_rich():
    def f(x, key, shared):
        k1, _ = jax.random.split(key)
        with kf.shared_randomness():
            scale = jax.random.uniform(shared)
        return noisy(x, k1) * scale + jax.random.normal(key)

    report = kf.audit(f, X, KEY, KEY, in_axes=(0, 0, None))
    assert not report.ok
    assert [p.kind for p in report.problems] == [kf.AuditKind.SPLIT_THEN_REUSE]
    assert [a.kind for a in report.allowed] == [kf.AuditKind.SHARED_DRAW]
    problem = report.problems[0]
    assert isinstance(problem, kf.AuditFinding)
    assert "test_audit.py" in problem.location and "test_audit.py" in problem.related
    assert problem.fix.startswith("after key, sub = jax.random.split(key)")
    text = str(report)
    assert text.startswith("keyfan.audit(test_report_fields_str_and_rich.<locals>.f) over the mapped axis: 1 problem")
    assert "split-then-reuse at tests/test_audit.py:" in text and "allowed shared-draw" in text
    console = Console(record=True, width=100)
    console.print(report)
    rendered = console.export_text()
    assert "✗ split-then-reuse" in rendered and "✓ allowed shared-draw" in rendered and "fix:" in rendered
    clean = kf.audit(noisy, X, KEY, in_axes=(0, 0))
    assert clean.ok and clean.findings == () and "no key misuse found (1 draw analysed)" in str(clean)


def test_shape_dtype_structs_python_constants_and_keywords():
    def f(x, key, rate, *, scale):
        return scale * noisy(x, key) * (1 - rate)

    x = jax.ShapeDtypeStruct((8, 3), jnp.float32)
    key = jax.ShapeDtypeStruct((), KEY.dtype)
    assert kf.audit(f, x, key, 0.5, in_axes=(0, 0, None), scale=jnp.float32(2.0)).ok
    assert not kf.audit(f, x, key, 0.5, in_axes=(0, None, None), scale=2.0).ok
    raw = jax.ShapeDtypeStruct((2,), jnp.uint32)
    assert not kf.audit(lambda x, k: noisy(x, k) + noisy(x, k), x, raw).ok


def test_bad_arguments_are_reported():
    with pytest.raises(TypeError, match="f must be callable"):
        kf.audit("noisy", X, KEY)
    with pytest.raises(TypeError, match="in_axes must be an int, None, or a tuple"):
        kf.audit(noisy, X, KEY, in_axes="0")
    with pytest.raises(ValueError, match=r"in_axes=\(0, None, None\) has 3 entries but 2 positional"):
        kf.audit(noisy, X, KEY, in_axes=(0, None, None))
    with pytest.raises(ValueError, match=r"in_axes\[1\]=None maps no array argument"):
        kf.audit(noisy, X, KEY, in_axes=[0, None])
    with pytest.raises(ValueError, match="in_axes=\\[\\] describes no vmap"):
        kf.audit(noisy, X, KEY, in_axes=[])
    with pytest.raises(ValueError, match=r"in_axes maps argument 'scale' \(position 2\), but it is a float"):
        kf.audit(lambda x, key, scale: noisy(x, key) * scale, X, KEY, 0.5, in_axes=0)
    with pytest.raises(ValueError, match="axis_name must be a list with one name"):
        kf.audit(noisy, X, KEY, in_axes=[0, 0], axis_name="b")
    with pytest.raises(ValueError, match="repeated name"):
        kf.audit(noisy, X, KEY, in_axes=[0, 0], axis_name=["b", "b"])
    with pytest.raises(ValueError, match="not a pytree prefix"):
        kf.audit(lambda d: d["a"], {"a": X}, in_axes=({"b": 0},))
    with pytest.raises(kf.AuditTraceError, match=r"could not trace .*NameError.*pass axis_name=") as info:
        kf.audit(lambda x: x * lax.axis_index("b"), X)
    assert isinstance(info.value, ValueError) and isinstance(info.value.__cause__, NameError)


# -- the pytest helpers ----------------------------------------------------------------------------

def test_assert_no_key_misuse():
    assert assert_no_key_misuse(noisy, X, KEY, in_axes=(0, 0)).ok
    with pytest.raises(AssertionError, match=r"shared-draw at .*test_audit\.py:\d+ \(noisy\).*Fix:"):
        assert_no_key_misuse(noisy, X, KEY, in_axes=(0, None))


def test_assert_independent():
    assert assert_independent(jax.random.split(KEY, 5)).examples == 5
    with pytest.raises(AssertionError, match=r"examples 0, 1, 2 \(3 identical\)"):
        assert_independent(jnp.broadcast_to(KEY, (3,)))


# -- check_independent -------------------------------------------------------------------------------

def test_check_independent_finds_tiled_and_broadcast_keys():
    report = kf.check_independent(jnp.tile(RAW, (6, 1)))
    assert not report.ok and report.duplicates == ((0, 1, 2, 3, 4, 5),)
    assert "6 identical" in str(report) and "kf.fan_out" in str(report)
    keys = jnp.concatenate([jax.random.split(KEY, 3), jax.random.split(KEY, 3)])  # a grid reused twice
    assert kf.check_independent(keys).duplicates == ((0, 3), (1, 4), (2, 5))
    assert kf.check_independent(kf.fan_out(KEY, 64)).ok
    assert kf.check_independent(jax.random.split(RAW, 64)).ok


def test_check_independent_on_pytrees_and_axes():
    noise = jax.vmap(noisy, in_axes=(0, None))(jnp.zeros((4, 3)), KEY)  # the broadcast-key bug
    assert kf.check_independent(noise).duplicates == ((0, 1, 2, 3),)
    # an example is distinct if any of its leaves differs
    assert kf.check_independent({"noise": noise, "id": jnp.arange(4)}).ok
    assert kf.check_independent(noise.T, axis=1).duplicates == ((0, 1, 2, 3),)
    assert kf.check_independent(noise.T, axis=-1).duplicates == ((0, 1, 2, 3),)
    nan_rows = np.full((3, 2), np.nan, np.float32)
    assert kf.check_independent(nan_rows).duplicates == ((0, 1, 2),), "compared bit for bit"
    assert kf.check_independent(jnp.zeros((1, 3))).ok


def test_check_independent_errors_name_the_leaf():
    with pytest.raises(ValueError, match=r"leaves of batch disagree.*batch\['a'\]: 2.*batch\['b'\]: 3"):
        kf.check_independent({"a": jnp.zeros((2, 1)), "b": jnp.zeros((3, 1))})
    with pytest.raises(ValueError, match=r"batch has shape \(\), which has no axis 0"):
        kf.check_independent(jnp.float32(1.0))
    with pytest.raises(TypeError, match=r"batch\['x'\] must be an array, got str"):
        kf.check_independent({"x": "abc"})
    with pytest.raises(ValueError, match="batch has no array leaves"):
        kf.check_independent({})
    with pytest.raises(ValueError, match=r"axis must be a whole number, got 0\.5"):
        kf.check_independent(jnp.zeros((2, 2)), axis=0.5)


# -- the command line --------------------------------------------------------------------------------

MODEL = """
import jax

def noisy(x, key):
    return x + jax.random.normal(key, x.shape)

def nested(x, key):
    return noisy(x, jax.random.fold_in(key, jax.lax.axis_index("chain")))
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(MODEL))
    return path


def _cli(*args):
    # Wide enough that rich never wraps a long temporary path (pytest-xdist's are longer).
    return CliRunner().invoke(app, ["audit", *map(str, args)], env={"COLUMNS": "400"})


def test_cli_exits_nonzero_on_a_buggy_function(model_file):
    result = _cli(f"{model_file}:noisy", "--in-axes", "0,None", "--arg", "float32[8,3]", "--arg", "key")
    assert result.exit_code == 1, result.output
    assert "1 problem" in result.output and "shared-draw" in result.output and "model.py:5" in result.output


def test_cli_exits_zero_on_a_clean_function(model_file):
    result = _cli(f"{model_file}:noisy", "--in-axes", "0,0", "--arg", "float32[8,3]", "--arg", "rawkey")
    assert result.exit_code == 0, result.output
    assert "no key misuse found" in result.output
    nested = _cli(f"{model_file}:nested", "--in-axes", "0,None", "--in-axes", "0,0", "--axis-name", "chain",
                  "--axis-name", "batch", "--arg", "float32[3]", "--arg", "key")
    assert nested.exit_code == 0, nested.output


def test_cli_reports_bad_usage_with_exit_code_2(model_file):
    for args in ([f"{model_file}:missing"], [f"{model_file.parent / 'nope.py'}:f"], ["model.py"],
                 [f"{model_file}:noisy", "--arg", "float32[8,3"],
                 [f"{model_file}:noisy", "--in-axes", "0,", "--arg", "float32[3]", "--arg", "key", "--arg", "key"]):
        result = _cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "keyfan audit:" in result.output


def test_cli_arg_and_in_axes_specs():
    assert parse_arg("float32[8,3]") == jax.ShapeDtypeStruct((8, 3), jnp.float32)
    assert parse_arg("int32[]") == jax.ShapeDtypeStruct((), jnp.int32)
    assert parse_arg("rawkey[4]") == jax.ShapeDtypeStruct((4, 2), jnp.uint32)
    assert parse_arg("key").dtype == KEY.dtype and parse_arg("key[2]").shape == (2,)
    with pytest.raises(ValueError, match="has no shape"):
        parse_arg("float32")
    with pytest.raises(ValueError, match="not a NumPy dtype"):
        parse_arg("floaty[2]")
    assert parse_in_axes([]) == 0
    assert parse_in_axes(["none"]) is None
    assert parse_in_axes(["0,None"]) == (0, None)
    assert parse_in_axes(["0,None", "(None, {'w': 0})"]) == [(0, None), (None, {"w": 0})]
    with pytest.raises(ValueError, match="not a Python literal"):
        parse_in_axes(["zero"])


@pytest.mark.parametrize("shape", [(0, 3), (1, 3), (0,), (1,)])
def test_check_independent_with_fewer_than_two_examples_is_ok(shape):
    report = kf.check_independent(jnp.zeros(shape))
    assert report.ok and report.duplicates == () and report.examples == shape[0]
