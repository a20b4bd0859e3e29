"""A program whose bits do not change when it is vmapped: products and sums as elementwise ops.

XLA picks the kernel of a matrix product (YNNPACK or Eigen, its blocking) and the order of a
float reduction by the size of the whole operation, so vmapping a single-member training step
over ``K`` members changes each member's rounding with ``K``. :func:`exact` rewrites a function
so that it has no such operation: every float ``dot_general`` becomes an elementwise product
summed over the contracted axis by a tree of halves (slices and adds), and every
float ``reduce_sum`` the same tree. Elementwise operations round each element alike whatever
the shape around it, so ``jax.vmap(exact(f))`` gives each member the same bits for any number
of members, one included (measured: a vmap over 1, 2, 3, 5, 8, 16 or 32 members; the program
run without any member axis can differ, XLA fusing it differently, so every arrangement of the
``Trainer`` runs a member vmap, of one member at least). Each product's operands are computed
once into buffers of their own (:func:`_materialised`) and each output's multiplies and their
tree run in one loop, never written to memory (:func:`_product_sum`), so the temporaries stay
near those of the plain program; the price is work linear in a product's multiply count (no
blocked GEMM), which pays only for small models: :func:`assess`
says whether a function has only operations whose bits are known not to depend on a batch
axis, and how many multiplies its products hold (the rule in ``_train.py`` picks this form
below a measured size).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from keyfan._jaxinternals.core import Literal
from keyfan.ensemble._shard import fixed_sum

__all__ = ["CALLS", "PRODUCTS", "assess", "exact", "rounded"]

CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr", "core_call": "call_jaxpr",
         "custom_jvp_call": "call_jaxpr", "custom_vjp_call": "call_jaxpr"}
"""Primitives that call an inner (closed) jaxpr, and its parameter: evaluated (and rewritten)
inline. The program :func:`exact` builds is run, not differentiated, so a custom derivative's
rule is not needed."""

_REWRITTEN = frozenset({"dot_general", "reduce_sum"})

PRODUCTS = frozenset({"mul", "integer_pow", "square"})
"""Elementwise products, each rounded on its own (:func:`rounded`) before anything adds it."""

_BATCH_SAFE = frozenset({
    # elementwise arithmetic, comparisons, casts, transcendental functions (one element at a time)
    "abs", "acos", "acosh", "add", "add_any", "and", "asin", "asinh", "atan", "atan2", "atanh", "cbrt", "ceil",
    "clamp", "convert_element_type", "copy", "copy_p", "cos", "cosh", "div", "eq", "erf", "erf_inv", "erfc",
    "exp", "exp2", "expm1", "floor", "ge", "gt", "integer_pow", "is_finite", "le", "lgamma", "digamma", "log",
    "log1p", "logistic", "lt", "max", "min", "mul", "ne", "neg", "nextafter", "not", "or", "pow", "population_count",
    "rem", "round", "rsqrt", "select_n", "shift_left", "shift_right_arithmetic", "shift_right_logical", "sign",
    "sin", "sinh", "sqrt", "square", "sub", "tan", "tanh", "xor", "stop_gradient", "reduce_precision",
    # data movement (exact)
    "broadcast_in_dim", "concatenate", "dynamic_slice", "dynamic_update_slice", "expand_dims", "gather", "iota",
    "pad", "reshape", "rev", "slice", "squeeze", "stack", "transpose", "split",
    # the scatter that transposes a gather: XLA applies the updates in index order, member by member
    "scatter-add",
    # exact reductions and index searches
    "argmax", "argmin", "reduce_and", "reduce_max", "reduce_min", "reduce_or", "reduce_xor",
    # random bits (integer hashing)
    "random_bits", "random_fold_in", "random_seed", "random_split", "random_unwrap", "random_wrap", "threefry2x32",
    "bitcast_convert_type",
})
"""Primitives whose every output element is computed alike whatever the shape around it."""


def exact(fn: Callable[..., Any], zero: jax.Array) -> Callable[..., Any]:
    """``fn`` with every float ``dot_general`` and ``reduce_sum`` computed as elementwise
    products and adds in a tree fixed by the contracted size alone: the same values as
    ``fn`` up to rounding, and the same bits per member under ``jax.vmap`` over any number of
    members. ``fn`` must have no operation :func:`assess` calls unsupported.

    ``zero`` is an int32 scalar equal to 0 whose value the compiler cannot know (e.g. ``step >>
    31`` of a non-negative traced ``step``): every product (of the matrix products and every
    elementwise multiply) is rounded on its own before it is summed (its bits xor ``zero``), so
    that no multiply and add are contracted into one FMA in one arrangement and not in another
    (XLA fuses a multiply into its sum or not by the shapes around it; measured: one ulp apart
    under AVX-512 with blocks of one example, equal under SSE4.2, which has no FMA)."""

    def wrapped(*args: Any) -> Any:
        flat, tree = jax.tree.flatten(args)
        closed, shapes = jax.make_jaxpr(lambda *a: fn(*jax.tree.unflatten(tree, a)), return_shape=True)(*flat)
        out = _eval(closed.jaxpr, closed.consts, flat, zero, {id(a) for a in (*flat, *closed.consts)})
        return jax.tree.unflatten(jax.tree.structure(shapes), out)

    return wrapped


def assess(fn: Callable[..., Any], *args: Any) -> tuple[set[str], int]:
    """``(unsupported, products)`` for ``fn(*args)`` (arrays or ``jax.ShapeDtypeStruct``): the
    names of its operations whose bits :func:`exact` cannot keep apart from a batch axis (empty:
    ``exact(fn)`` is batch-independent), and the number of multiplies in its float products
    (the size of the elementwise products :func:`exact` builds)."""
    flat, tree = jax.tree.flatten(args)
    closed = jax.make_jaxpr(lambda *a: fn(*jax.tree.unflatten(tree, a)))(*flat)
    unsupported, total = set(), 0
    for name, eqn in _equations(closed.jaxpr):
        if name not in _BATCH_SAFE and name not in _REWRITTEN:
            unsupported.add(name)
        if name == "dot_general":
            (lc, _), _ = eqn.params["dimension_numbers"]
            lhs, out = eqn.invars[0].aval, eqn.outvars[0].aval
            total += int(np.prod(out.shape, dtype=np.int64)) * int(np.prod([lhs.shape[d] for d in lc], dtype=np.int64))
    return unsupported, total


def _equations(jaxpr: Any) -> Iterator[tuple[str, Any]]:
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name in CALLS:
            yield from _equations(eqn.params[CALLS[name]].jaxpr)
        else:
            yield name, eqn


_MOVES = frozenset({"broadcast_in_dim", "convert_element_type", "copy", "expand_dims", "reshape", "squeeze",
                    "transpose"})
"""Data movement that XLA reads through at no cost: a product's operand that is only this, of a
stored value, needs no buffer of its own (:func:`_materialised`)."""


def _eval(jaxpr: Any, consts: Any, args: Any, zero: jax.Array, stored: set[int]) -> list[Any]:
    """Evaluates ``jaxpr`` with the rewrites; ``stored`` holds the ids of the values that are
    already in memory (the function's arguments and constants, and data movement of them). An
    inner call's values are freed when it returns and their ids may be reused; a value taken for
    stored by mistake is only recomputed per product (materialising is an identity, never a
    change of bits).

    A computed value that a float product reads is materialised once (``shared``), and a float
    ``reduce_sum`` of that same value reads the materialised buffer too. Backprop through a
    dense layer gives its output's cotangent three readers: the kernel's and the input's
    gradients (products) and the bias gradient (a sum over the examples). Summing the
    cotangent's own expression instead made XLA fuse that expression (the layer's forward
    products recomputed for the activation's derivative, the dropout mask) into a second
    member-sized buffer of the same values, live next to the materialised one at the backward
    pass's peak: 32 KiB of the 241 KiB of XLA temporaries at the ``small`` trainer-bench size
    (2-16-16-2 MLP, blocks of 16, K=32), 1.22x the hand-written ``jit(vmap(step))``'s, 1.06x
    with it shared (0.93x with :func:`_dot`'s late transposed copy too). The sum reads the same
    values (a division by exactly 1.0), so its bits are the same."""
    env: dict[Any, Any] = {}
    shared: dict[Any, Any] = {}
    dot_operands = {v for eqn in jaxpr.eqns if eqn.primitive.name == "dot_general"
                    and _is_float(eqn.outvars[0].aval.dtype) for v in eqn.invars[:2]
                    if not isinstance(v, Literal) and v.aval.dtype == _out_type(eqn)}

    def materialised(v: Any) -> Any:
        """``v``'s value in a buffer of its own, made once per value."""
        if v not in shared:
            shared[v] = _materialised(read(v), zero)
        return shared[v]

    def read(v: Any) -> Any:
        return v.val if isinstance(v, Literal) else env[v]

    for v, a in zip(jaxpr.constvars, consts, strict=True):
        env[v] = a
    for v, a in zip(jaxpr.invars, args, strict=True):
        env[v] = a
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        if name in CALLS:
            inner = eqn.params[CALLS[name]]
            stored |= {id(c) for c in inner.consts}
            outs = _eval(inner.jaxpr, inner.consts, invals, zero, stored)
        else:
            if name == "dot_general" and _is_float(eqn.outvars[0].aval.dtype):
                ops, done, inputs = [], [], []
                for v, a in zip(eqn.invars[:2], invals[:2], strict=True):
                    own = not isinstance(v, Literal) and v in dot_operands and id(a) not in stored
                    ops.append(materialised(v) if own else a)
                    done.append(own or id(a) in stored)
                    inputs.append(id(a) in stored)
                out = _dot(ops[0], ops[1], eqn.params, zero, done, inputs)
            elif name == "reduce_sum" and _is_float(eqn.outvars[0].aval.dtype):
                v = eqn.invars[0]
                shares = not isinstance(v, Literal) and v in dot_operands and id(invals[0]) not in stored
                out = _sum_axes(materialised(v) if shares else invals[0], eqn.params["axes"])
            else:
                out = eqn.primitive.bind(*invals, **eqn.params)
                if name in PRODUCTS and _is_float(eqn.outvars[0].aval.dtype):
                    out = rounded(out, zero)
            outs = list(out) if eqn.primitive.multiple_results else [out]
            if name in _MOVES and all(id(a) in stored for a in invals if not isinstance(a, (int, float))):
                stored |= {id(o) for o in outs}
        for v, o in zip(eqn.outvars, outs, strict=True):
            env[v] = o
    return [read(v) for v in jaxpr.outvars]


def _out_type(eqn: Any) -> Any:
    """The dtype a ``dot_general`` equation multiplies in (its operands are cast to it)."""
    return eqn.params.get("preferred_element_type") or eqn.outvars[0].aval.dtype


def _is_float(dtype: Any) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.inexact))


def _dot(lhs: jax.Array, rhs: jax.Array, params: dict[str, Any], zero: jax.Array, stored: list[bool],
         inputs: list[bool]) -> jax.Array:
    """``lax.dot_general`` as ``sum_c lhs[..c] * rhs[..c]``, the products laid out with the
    contracted entries (in the row-major order of the contracted dimensions) on the leading axis,
    summed by :func:`keyfan.ensemble._shard.fixed_sum`. An operand computed in the function (not
    ``stored``) is computed once into a buffer of its own first (:func:`_materialised`).

    An operand that is an argument of the function (``inputs``), read transposed (a dense
    layer's kernel in the input gradient ``g @ W.T``), is a copy XLA writes in the new layout,
    and XLA's scheduler wrote it as soon as its argument was there: at the start of the
    backward pass, so it stayed live through the peak (32 KiB of 208 KiB at the ``small``
    trainer-bench size). The copy is now a :func:`_materialised` one whose opaque zero is read
    from the product's other, computed operand (:func:`_zero_after`), so it is written only
    once that operand is, next to its one use: 183 KiB, 0.93x the hand-written step's. Its
    values are the argument's (a division by exactly 1.0), so the bits are the same."""
    (lc, rc), (lb, rb) = params["dimension_numbers"]
    out_type = params.get("preferred_element_type") or jnp.result_type(lhs, rhs)
    lhs, rhs = [a.astype(out_type) if done else _materialised(a.astype(out_type), zero)
                for a, done in zip((lhs, rhs), stored, strict=True)]
    lf = [d for d in range(lhs.ndim) if d not in lc and d not in lb]
    rf = [d for d in range(rhs.ndim) if d not in rc and d not in rb]
    batch = tuple(lhs.shape[d] for d in lb)
    lshape, rshape = tuple(lhs.shape[d] for d in lf), tuple(rhs.shape[d] for d in rf)
    c = int(np.prod([lhs.shape[d] for d in lc], dtype=np.int64))
    lhs_t, rhs_t = jnp.transpose(lhs, (*lc, *lb, *lf)), jnp.transpose(rhs, (*rc, *rb, *rf))
    if inputs[0] and not inputs[1] and _moves(lhs, (*lc, *lb, *lf)):
        lhs_t = _materialised(lhs_t, _zero_after(rhs, zero))
    if inputs[1] and not inputs[0] and _moves(rhs, (*rc, *rb, *rf)):
        rhs_t = _materialised(rhs_t, _zero_after(lhs, zero))
    a = lhs_t.reshape(c, *batch, int(np.prod(lshape, dtype=np.int64)), 1)
    b = rhs_t.reshape(c, *batch, 1, int(np.prod(rshape, dtype=np.int64)))
    summed = _product_sum(a, b, zero)  # (batch, lhs free, rhs free)
    return summed.reshape(*batch, *lshape, *rshape)


def _moves(a: jax.Array, perm: tuple[int, ...]) -> bool:
    """Whether transposing ``a`` by ``perm`` moves data (its axes longer than 1 reorder)."""
    kept = [d for d in perm if a.shape[d] > 1]
    return kept != sorted(kept)


def _zero_after(a: jax.Array, zero: jax.Array) -> jax.Array:
    """``zero`` (an int32 0 the compiler cannot fold) made to depend on the value ``a``: still
    0 (``a``'s first element's bits AND 0), but a program can compute it only once ``a`` is."""
    width = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}.get(a.dtype.itemsize)
    if width is None or a.size == 0 or not jnp.issubdtype(a.dtype, jnp.floating):
        return zero
    first = jax.lax.bitcast_convert_type(jnp.ravel(a)[0], width)
    return (first.astype(jnp.uint32) & zero.astype(jnp.uint32)).astype(zero.dtype)


def _product_sum(a: jax.Array, b: jax.Array, zero: jax.Array) -> jax.Array:
    """``fixed_sum(rounded(a * b, zero))`` over axis 0 (``a``, ``b`` broadcasting), the same
    operations in the same order, but the first level of the tree multiplies slices of ``a`` and
    ``b`` itself, so that no product has more than one reader and XLA computes each output's
    products and their tree in one loop, never writing the products to memory."""
    n = a.shape[0]
    if n < 2:
        return fixed_sum(rounded(a * b, zero))
    half = n // 2

    def products(lo: int, hi: int) -> jax.Array:
        return rounded(a[lo:hi] * b[lo:hi], zero)

    head = products(0, half) + products(half, 2 * half)
    return fixed_sum(jnp.concatenate([head, products(2 * half, n)]) if n % 2 else head)


def _materialised(a: jax.Array, zero: jax.Array) -> jax.Array:
    """``a`` bit for bit (each element divided by exactly 1.0), computed into a buffer of its
    own instead of inside the products that read it.

    XLA fuses a cheap producer into every consumer, even one that broadcasts it, so each product
    ``a[c] * b[c]`` recomputed the chain behind its operands (the previous layer's products and
    sum, bias, activation, dropout mask) once per output it feeds. A division is an expensive
    operation, which XLA does not duplicate into a consumer that reuses its elements; the ones
    are built from ``a``'s own bits (``bits & zero | bits of 1.0``), so the simplifier can neither
    fold them nor turn the division into a multiply by a broadcast reciprocal (it does that to a
    division by a scalar, which then fused again). Dividing by exactly 1.0 is exact (IEEE 754)."""
    width = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}.get(a.dtype.itemsize)
    if width is None or not jnp.issubdtype(a.dtype, jnp.floating):
        return a
    bits = jax.lax.bitcast_convert_type(a, width)
    one = jax.lax.bitcast_convert_type(jnp.ones((), a.dtype), width)
    ones = jax.lax.bitcast_convert_type((bits & zero.astype(width)) | one, a.dtype)
    return a / ones


def rounded(p: jax.Array, zero: jax.Array) -> jax.Array:
    """``p`` (bit for bit), but no longer the result of a multiply as far as the compiler can
    tell: its bits xor an opaque zero."""
    width = {2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}.get(p.dtype.itemsize)
    if width is None:
        return p
    bits = jax.lax.bitcast_convert_type(p, width)
    return jax.lax.bitcast_convert_type(bits ^ zero.astype(width), p.dtype)


def _sum_axes(a: jax.Array, axes: Any) -> jax.Array:
    keep = [d for d in range(a.ndim) if d not in axes]
    moved = jnp.transpose(a, (*axes, *keep))
    return fixed_sum(moved.reshape(-1, *moved.shape[len(axes):]))
