"""Bad input to keyfan.ensemble's metrics, losses, dropout keys, bootstrap weights, the Trainer's
constructor, batch placement and checkpoint paths: each case
asserts the exception type, that the message names the argument and what was expected, and that
it is keyfan's own message (no JAX trace, no tracer repr). The valid neighbours of each rule are
checked against the plain formula, so the checks reject nothing the functions are documented to
accept."""

from __future__ import annotations

import math
import os
import pathlib
import re
import types
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import keyfan as kf
from keyfan.ensemble import (
    FunctionalModel,
    LinenModel,
    NNXModel,
    Trainer,
    bootstrap_weights,
    classification_metrics,
    cross_entropy,
    dropout_keys,
    ensemble_report,
    gaussian_nll,
    gaussian_variance,
    latest_step,
    make_mesh,
    mse,
    regression_metrics,
    report_table,
    restore,
    save,
    shard_batch,
    shard_members,
    shared_vmap,
    summarize,
)
from tests.conftest import assert_trees_bitwise_equal

F = jnp.float32
PROBS = jnp.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]], F)
LABELS = jnp.array([0, 1, 1])
MEMBER_KEYS = jax.vmap(lambda m: kf.at(kf.key(0), m))(jnp.arange(3))
SGD = optax.sgd(0.1)
LR_SGD = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)


def _ensemble() -> kf.Ensemble:
    return kf.Ensemble.init(nn.Dense(3), kf.key(0), members=2, sample_input=jnp.ones((4, 2)))


def _nnx_ensemble() -> kf.Ensemble:
    """An ensemble without a recorded input spec (an NNX constructor, no sample_input)."""
    return kf.Ensemble.init(kf.ensemble.nnx_model(lambda rngs: nnx.Linear(2, 3, rngs=rngs)), kf.key(0), members=2)


def _report() -> dict[str, Any]:
    return dict(ensemble_report(jnp.zeros((2, 3, 2)), jnp.zeros(3, jnp.int32), task="classification"))


def _without(report: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != field}


def _member_without(report: dict[str, Any], metric: str) -> dict[str, Any]:
    members = [dict(m) for m in report["members"]]
    del members[1][metric]
    return {**report, "members": members}


class _BytesPath(os.PathLike):  # type: ignore[type-arg]
    def __fspath__(self) -> bytes:
        return b"/tmp"


CASES: list[tuple[str, Callable[[], Any], type[Exception], tuple[str, ...]]] = [
    # ensemble_report: the gaussian layout, labels, batch sizes, empty arrays
    ("report-gaussian-last-axis-3", lambda: ensemble_report(jnp.zeros((2, 3, 3)), jnp.zeros(3), task="gaussian"),
     ValueError, ("outputs", "(K, B, 2)", "(2, 3, 3)")),
    ("report-gaussian-last-axis-1", lambda: ensemble_report(jnp.zeros((2, 3, 1)), jnp.zeros(3), task="gaussian"),
     ValueError, ("outputs", "(K, B, 2)", "(2, 3, 1)")),
    ("report-rank-2", lambda: ensemble_report(jnp.zeros((3, 2)), jnp.zeros(3), task="gaussian"),
     ValueError, ("outputs", "(K, B, 2)", "rank 3")),
    ("report-float-labels", lambda: ensemble_report(jnp.zeros((2, 3, 2)), jnp.zeros(3), task="classification"),
     TypeError, ("targets", "integer", "float32")),
    ("report-list-labels", lambda: ensemble_report(jnp.zeros((2, 3, 2)), [0, 1, 0], task="classification"),
     TypeError, ("targets", "list", "jnp.asarray")),
    ("report-list-outputs", lambda: ensemble_report([[[0.0, 1.0]]], jnp.zeros(1, jnp.int32), task="classification"),
     TypeError, ("outputs", "list", "(K, B, C)")),
    ("report-int-logits", lambda: ensemble_report(jnp.zeros((2, 3, 2), jnp.int32), jnp.zeros(3, jnp.int32),
                                                  task="classification"), TypeError, ("outputs", "floating")),
    ("report-batch", lambda: ensemble_report(jnp.zeros((2, 3, 2)), jnp.zeros(4, jnp.int32), task="classification"),
     ValueError, ("targets", "(3,)", "(4,)")),
    ("report-no-members", lambda: ensemble_report(jnp.zeros((0, 3, 2)), jnp.zeros(3, jnp.int32),
                                                  task="classification"), ValueError, ("outputs", "at least one")),
    ("report-no-examples", lambda: ensemble_report(jnp.zeros((2, 0, 2)), jnp.zeros(0, jnp.int32),
                                                   task="classification"), ValueError, ("outputs", "at least one")),
    ("report-label-range", lambda: ensemble_report(jnp.zeros((2, 3, 2)), jnp.array([0, 2, 1]),
                                                   task="classification"), ValueError, ("targets", "[0, 2)")),
    ("report-gaussian-bool-targets", lambda: ensemble_report(jnp.zeros((2, 3, 2)), jnp.zeros(3, bool),
                                                             task="gaussian"), TypeError, ("targets", "bool")),
    # classification_metrics
    ("cm-float-labels", lambda: classification_metrics(PROBS, jnp.array([0.0, 1.0, 1.0])),
     TypeError, ("labels", "integer", "float32")),
    ("cm-list-labels", lambda: classification_metrics(PROBS, [0, 1, 1]), TypeError, ("labels", "list", "jnp.asarray")),
    ("cm-bool-labels", lambda: classification_metrics(PROBS, jnp.array([True, False, True])),
     TypeError, ("labels", "integer", "bool")),
    ("cm-one-hot-labels", lambda: classification_metrics(PROBS, jnp.eye(2, dtype=jnp.int32)[LABELS]),
     ValueError, ("labels", "(B,)", "(3, 2)")),
    ("cm-list-probs", lambda: classification_metrics([[0.5, 0.5]], jnp.array([0])), TypeError, ("probs", "list")),
    ("cm-1d-probs", lambda: classification_metrics(jnp.full((2,), 0.5), jnp.array([0, 1])),
     ValueError, ("probs", "(B, C)", "rank 2")),
    ("cm-int-probs", lambda: classification_metrics(jnp.ones((2, 2), jnp.int32), jnp.array([0, 1])),
     TypeError, ("probs", "floating", "int32")),
    ("cm-batch", lambda: classification_metrics(PROBS, jnp.array([0, 1])), ValueError, ("labels", "(3,)", "(2,)")),
    ("cm-empty", lambda: classification_metrics(jnp.zeros((0, 2)), jnp.zeros(0, jnp.int32)),
     ValueError, ("probs", "at least one")),
    ("cm-label-range", lambda: classification_metrics(PROBS, jnp.array([0, -1, 1])), ValueError, ("labels", "[0, 2)")),
    # regression_metrics
    ("rm-list", lambda: regression_metrics([[0.0]], jnp.ones((1, 1)), jnp.zeros(1)), TypeError, ("means", "list")),
    ("rm-1d-means", lambda: regression_metrics(jnp.zeros(3), jnp.ones(3), jnp.zeros(3)),
     ValueError, ("means", "(M, B)", "rank 2")),
    ("rm-variances-shape", lambda: regression_metrics(jnp.zeros((2, 3)), jnp.ones((2, 4)), jnp.zeros(3)),
     ValueError, ("variances", "(2, 3)", "(2, 4)")),
    ("rm-targets-shape", lambda: regression_metrics(jnp.zeros((2, 3)), jnp.ones((2, 3)), jnp.zeros(2)),
     ValueError, ("targets", "(3,)", "(2,)")),
    ("rm-targets-column", lambda: regression_metrics(jnp.zeros((2, 3)), jnp.ones((2, 3)), jnp.zeros((3, 1))),
     ValueError, ("targets", "(B,)", "rank 1")),
    ("rm-int-variances", lambda: regression_metrics(jnp.zeros((1, 3)), jnp.ones((1, 3), jnp.int32), jnp.zeros(3)),
     TypeError, ("variances", "floating")),
    ("rm-negative-variance", lambda: regression_metrics(jnp.zeros((1, 3)), jnp.array([[1.0, -1.0, 1.0]]),
                                                        jnp.zeros(3)), ValueError, ("variances", "positive", "-1.0")),
    ("rm-nan-variance", lambda: regression_metrics(jnp.zeros((1, 2)), jnp.array([[1.0, jnp.nan]]), jnp.zeros(2)),
     ValueError, ("variances", "positive", "NaN: True")),
    ("rm-empty", lambda: regression_metrics(jnp.zeros((0, 3)), jnp.ones((0, 3)), jnp.zeros(3)),
     ValueError, ("means", "at least one")),
    # losses
    ("ce-float-label", lambda: cross_entropy(jnp.zeros(3), jnp.float32(1)), TypeError, ("label", "integer", "float32")),
    ("ce-list-logits", lambda: cross_entropy([0.0, 1.0], jnp.int32(1)), TypeError, ("logits", "list")),
    ("ce-int-logits", lambda: cross_entropy(jnp.zeros(3, jnp.int32), jnp.int32(0)),
     TypeError, ("logits", "floating", "int32")),
    ("ce-scalar-logits", lambda: cross_entropy(jnp.float32(0), jnp.int32(0)), ValueError, ("logits", "(C,)", "()")),
    ("ce-no-classes", lambda: cross_entropy(jnp.zeros(0), jnp.int32(0)), ValueError, ("logits", "at least one class")),
    ("ce-label-shape", lambda: cross_entropy(jnp.zeros(3), jnp.zeros(1, jnp.int32)),
     ValueError, ("label", "logits", "(1,)")),
    ("ce-batch-mismatch", lambda: cross_entropy(jnp.zeros((2, 3)), jnp.zeros(3, jnp.int32)),
     ValueError, ("label", "(2,)", "(3,)")),
    ("mse-shapes", lambda: mse(jnp.zeros(3), jnp.zeros(4)), ValueError, ("target", "prediction", "(3,)", "(4,)")),
    ("mse-grows", lambda: mse(jnp.zeros((4, 1)), jnp.zeros(4)), ValueError, ("target", "(4, 1)", "(4,)")),
    ("mse-list", lambda: mse([1.0, 2.0], jnp.zeros(2)), TypeError, ("prediction", "list")),
    ("mse-key", lambda: mse(jnp.zeros(2), kf.key(0)), TypeError, ("target", "numeric", "key")),
    ("mse-bool", lambda: mse(jnp.zeros(2), jnp.zeros(2, bool)), TypeError, ("target", "bool")),
    ("nll-last-3", lambda: gaussian_nll(jnp.zeros((4, 3)), jnp.zeros(4)), ValueError, ("output", "(..., 2)", "(4, 3)")),
    ("nll-last-1", lambda: gaussian_nll(jnp.zeros((4, 1)), jnp.zeros(4)), ValueError, ("output", "(..., 2)", "(4, 1)")),
    ("nll-scalar", lambda: gaussian_nll(jnp.float32(0), jnp.float32(0)), ValueError, ("output", "(..., 2)")),
    ("nll-target-size", lambda: gaussian_nll(jnp.zeros((4, 2)), jnp.zeros(5)), ValueError, ("target", "(4,)", "(5,)")),
    ("nll-target-transposed", lambda: gaussian_nll(jnp.zeros((2, 3, 2)), jnp.zeros((3, 2))),
     ValueError, ("target", "(2, 3)", "(3, 2)")),
    ("nll-int-output", lambda: gaussian_nll(jnp.zeros((4, 2), jnp.int32), jnp.zeros(4)),
     TypeError, ("output", "floating", "int32")),
    ("nll-list", lambda: gaussian_nll([0.0, 1.0], jnp.zeros(())), TypeError, ("output", "list")),
    # dropout_keys: the real parameter's name, shapes and dtypes instead of a tracer
    ("dk-single-key", lambda: dropout_keys(kf.key(0), jnp.arange(4)),
     ValueError, ("member_keys", "(K,)", "single key")),
    ("dk-grid-of-keys", lambda: dropout_keys(kf.fan_out(kf.key(0), (2, 3)), jnp.arange(4)),
     ValueError, ("member_keys", "(K,)", "(2, 3)")),
    ("dk-not-keys", lambda: dropout_keys(jnp.zeros(3), jnp.arange(4)), TypeError, ("member_keys", "key", "float32")),
    ("dk-float-ids", lambda: dropout_keys(MEMBER_KEYS, jnp.arange(4.0)), TypeError, ("ids", "integers")),
    ("dk-step-half", lambda: dropout_keys(MEMBER_KEYS, jnp.arange(4), step=2.5), ValueError, ("step", "whole")),
    ("dk-negative-id", lambda: dropout_keys(MEMBER_KEYS, jnp.array([-1, 2])), ValueError, ("ids", "non-negative")),
    # report_table
    ("table-missing-member-mean", lambda: report_table(_without(_report(), "member_mean")),  # type: ignore[arg-type]
     ValueError, ("metrics", "'member_mean'", "ensemble_report")),
    ("table-missing-members", lambda: report_table(_without(_report(), "members")),  # type: ignore[arg-type]
     ValueError, ("metrics", "'members'")),
    ("table-member-lacks-metric", lambda: report_table(_member_without(_report(), "ece")),  # type: ignore[arg-type]
     ValueError, ("metrics['members'][1]", "'ece'")),
    ("table-not-a-dict", lambda: report_table([1, 2]), TypeError, ("metrics", "list")),  # type: ignore[arg-type]
    ("table-members-not-dicts", lambda: report_table({**_report(), "members": [1.0]}),  # type: ignore[arg-type]
     TypeError, ("metrics['members']", "dicts")),
    # gaussian_variance, summarize
    ("gv-list", lambda: gaussian_variance([0.0, 1.0]), TypeError, ("raw", "list", "jnp.asarray")),
    ("gv-key", lambda: gaussian_variance(kf.key(0)), TypeError, ("raw", "floating", "key")),
    ("gv-str", lambda: gaussian_variance("a"), TypeError, ("raw", "str")),  # type: ignore[arg-type]
    ("summarize-classification-rank-2", lambda: summarize(jnp.zeros((2, 3)), task="classification"),
     ValueError, ("outputs", "(K, B, C)", "(2, 3)")),
    ("summarize-gaussian-rank-2", lambda: summarize(jnp.zeros((3, 2)), task="gaussian"),
     ValueError, ("outputs", "(K, B, ..., 2)", "(3, 2)")),
    ("summarize-no-members", lambda: summarize(jnp.zeros((0, 3, 2)), task="classification"),
     ValueError, ("outputs", "K >= 1")),
    ("summarize-keys", lambda: summarize(kf.fan_out(kf.key(0), (2, 3)), task="regression"),
     TypeError, ("outputs", "key")),
    # predict / apply / stack / the model adapters / shared_vmap
    ("predict-list", lambda: _ensemble().predict([[1.0, 1.0]]), TypeError, ("x", "list", "jnp.asarray")),
    ("predict-scalar", lambda: _ensemble().predict(jnp.float32(1)), ValueError, ("x", "shape ()", "(B, 2)")),
    ("predict-features", lambda: _ensemble().predict(jnp.ones((3, 5))), ValueError, ("x", "(3, 5)", "(B, 2)")),
    ("predict-no-spec-scalar", lambda: _nnx_ensemble().predict(jnp.float32(1)), ValueError, ("x", "(B, ...)")),
    ("predict-no-spec-numbers", lambda: _nnx_ensemble().predict([1.0, 2.0, 3.0]), TypeError, ("x", "list")),
    ("apply-list", lambda: _ensemble().apply([[1.0, 1.0]]), TypeError, ("x", "list", "jnp.asarray")),
    ("apply-per-member-str", lambda: _ensemble().apply(jnp.ones((2, 4, 2)), per_member="yes"),  # type: ignore[arg-type]
     TypeError, ("per_member", "True or False")),
    ("init-sample-numbers", lambda: kf.Ensemble.init(nn.Dense(3), kf.key(0), members=2, sample_input=[[1.0, 1.0]]),
     TypeError, ("sample_input", "list", "jnp.asarray")),
    ("nnx-class-needs-arguments", lambda: kf.Ensemble.init(nnx.Linear, kf.key(0), members=2),
     TypeError, ("model", "make(rngs=nnx.Rngs(key))", "in_features")),
    ("nnx-make-without-rngs", lambda: kf.Ensemble.init(kf.ensemble.nnx_model(lambda: None), kf.key(0),  # type: ignore[arg-type]
                                                       members=2), TypeError, ("model", "make(nnx.Rngs(key))")),
    ("stack-not-a-list", lambda: kf.Ensemble.stack(3, model=nn.Dense(3)), TypeError,  # type: ignore[arg-type]
     ("members", "list", "int")),
    ("concatenate-one-ensemble", lambda: kf.Ensemble.concatenate(_ensemble()),  # type: ignore[arg-type]
     TypeError, ("ensembles", "list of kf.Ensemble", "got Ensemble")),
    ("concatenate-mixed", lambda: kf.Ensemble.concatenate([_ensemble(), 3]),  # type: ignore[list-item]
     TypeError, ("ensembles", "'int'")),
    ("stack-empty", lambda: kf.Ensemble.stack([], model=nn.Dense(3)), ValueError, ("members", "empty")),
    ("linen-model-not-a-module", lambda: LinenModel(3), TypeError, ("module", "Module instance", "int")),  # type: ignore[arg-type]
    ("functional-model-not-callable", lambda: FunctionalModel(lambda k, s: {}, 4),  # type: ignore[arg-type]
     TypeError, ("apply_fn", "callable")),
    ("nnx-model-not-callable", lambda: NNXModel(3), TypeError, ("make", "callable")),  # type: ignore[arg-type]
    ("shared-vmap-in-axes-float", lambda: shared_vmap(nn.Dense, in_axes=1.5),  # type: ignore[arg-type]
     TypeError, ("in_axes", "int, None", "float")),
    ("shared-vmap-in-axes-str", lambda: shared_vmap(nn.Dense, in_axes=("0",)), TypeError, ("in_axes", "str")),
    ("shared-vmap-out-axes-bool", lambda: shared_vmap(nn.Dense, out_axes=True), TypeError, ("out_axes", "bool")),
    # bootstrap_weights: the real parameter names, shapes and dtypes instead of a tracer or vmap's rank error
    ("bw-not-keys", lambda: bootstrap_weights(jnp.zeros(3), 5), TypeError, ("member_keys", "key", "float32", "(3,)")),
    ("bw-single-key", lambda: bootstrap_weights(kf.key(0), 5), ValueError, ("member_keys", "(K,)", "single key")),
    ("bw-single-raw-key", lambda: bootstrap_weights(jax.random.PRNGKey(0), 5),
     ValueError, ("member_keys", "(K,)", "single key")),
    ("bw-grid-of-keys", lambda: bootstrap_weights(kf.fan_out(kf.key(0), (2, 3)), 5),
     ValueError, ("member_keys", "(K,)", "(2, 3)")),
    ("bw-list", lambda: bootstrap_weights([1, 2], 5), TypeError, ("member_keys", "key", "list")),  # type: ignore[arg-type]
    ("bw-n-half", lambda: bootstrap_weights(MEMBER_KEYS, 2.5), ValueError, ("n must be", "whole", "2.5")),  # type: ignore[arg-type]
    ("bw-n-2.7", lambda: bootstrap_weights(MEMBER_KEYS, 2.7), ValueError, ("n must be", "whole", "2.7")),  # type: ignore[arg-type]
    ("bw-n-zero", lambda: bootstrap_weights(MEMBER_KEYS, 0), ValueError, ("n must be", "at least 1")),
    ("bw-n-str", lambda: bootstrap_weights(MEMBER_KEYS, "5"), TypeError, ("n must be", "integer", "str")),  # type: ignore[arg-type]
    ("bw-n-bool", lambda: bootstrap_weights(MEMBER_KEYS, True), TypeError, ("n must be", "integer", "bool")),
    ("init-bootstrap-half", lambda: Trainer(SGD).init(_ensemble(), bootstrap=2.5),
     ValueError, ("bootstrap", "whole", "2.5")),
    ("init-bootstrap-zero", lambda: Trainer(SGD).init(_ensemble(), bootstrap=0),
     ValueError, ("bootstrap", "at least 1")),
    ("init-learning-rates-str", lambda: Trainer(LR_SGD).init(_ensemble(), learning_rates="fast"),
     TypeError, ("learning_rates", "2 finite positive numbers", "str")),
    ("init-learning-rates-bool", lambda: Trainer(LR_SGD).init(_ensemble(), learning_rates=np.array([True, True])),
     TypeError, ("learning_rates", "2 finite positive numbers", "dtype bool")),
    ("init-learning-rates-keys", lambda: Trainer(LR_SGD).init(_ensemble(), learning_rates=kf.fan_out(kf.key(0), 2)),
     TypeError, ("learning_rates", "2 finite positive numbers", "key<", "(2,)")),
    ("init-learning-rates-ragged", lambda: Trainer(LR_SGD).init(_ensemble(), learning_rates=[0.1, [0.2]]),
     TypeError, ("learning_rates", "2 finite positive numbers", "list")),
    ("init-learning-rates-count", lambda: Trainer(LR_SGD).init(_ensemble(), learning_rates=[0.1, 0.2, 0.3]),
     ValueError, ("learning_rates", "2 finite positive numbers", "one per member")),
    ("init-learning-rates-negative", lambda: Trainer(LR_SGD).init(_ensemble(), learning_rates=[0.1, -0.2]),
     ValueError, ("learning_rates", "positive", "-0.2")),
    # the Trainer's constructor: flags, sizes, options and model_kwargs
    ("trainer-dropout-str", lambda: Trainer(SGD, dropout="no"),  # type: ignore[arg-type]
     TypeError, ("dropout", "True or False", "str", "'no'")),
    ("trainer-dropout-int", lambda: Trainer(SGD, dropout=1), TypeError, ("dropout", "True or False", "int")),  # type: ignore[arg-type]
    ("trainer-dropout-none", lambda: Trainer(SGD, dropout=None),  # type: ignore[arg-type]
     TypeError, ("dropout", "True or False", "None")),
    ("trainer-layout-invariant-str", lambda: Trainer(SGD, layout_invariant="no"),  # type: ignore[arg-type]
     TypeError, ("layout_invariant", "True or False", "str")),
    ("trainer-donate-int", lambda: Trainer(SGD, donate=0), TypeError, ("donate", "True or False", "int")),  # type: ignore[arg-type]
    ("trainer-model-kwargs-list", lambda: Trainer(SGD, model_kwargs=[1]),  # type: ignore[arg-type]
     TypeError, ("model_kwargs", "mapping", "str", "list")),
    ("trainer-model-kwargs-int-keys", lambda: Trainer(SGD, model_kwargs={1: True}),  # type: ignore[dict-item]
     TypeError, ("model_kwargs", "mapping", "str", "[1]")),
    ("trainer-model-kwargs-none", lambda: Trainer(SGD, model_kwargs=None),  # type: ignore[arg-type]
     TypeError, ("model_kwargs", "mapping", "None")),
    ("trainer-chunks-zero", lambda: Trainer(SGD, chunks=0), ValueError, ("chunks", "at least 1")),
    ("trainer-chunks-negative", lambda: Trainer(SGD, chunks=-2), ValueError, ("chunks", "at least 1", "-2")),
    ("trainer-chunks-half", lambda: Trainer(SGD, chunks=2.5), ValueError, ("chunks", "whole", "2.5")),  # type: ignore[arg-type]
    ("trainer-chunks-bool", lambda: Trainer(SGD, chunks=True), TypeError, ("chunks", "integer", "bool")),
    ("trainer-block-size-zero", lambda: Trainer(SGD, block_size=0), ValueError, ("block_size", "at least 1")),
    ("trainer-block-size-half", lambda: Trainer(SGD, block_size=1.5),  # type: ignore[arg-type]
     ValueError, ("block_size", "whole", "1.5")),
    ("trainer-member-group-negative", lambda: Trainer(SGD, member_group=-1),
     ValueError, ("member_group", "at least 1")),
    ("trainer-member-group-str", lambda: Trainer(SGD, member_group="2"),  # type: ignore[arg-type]
     TypeError, ("member_group", "integer", "str")),
    ("trainer-products-unknown", lambda: Trainer(SGD, products="fast"),
     ValueError, ("products", "'auto', 'elementwise', 'gemm'", "'fast'")),
    ("trainer-products-none", lambda: Trainer(SGD, products=None),  # type: ignore[arg-type]
     TypeError, ("products", "a string", "None")),
    ("trainer-loss-unknown", lambda: Trainer(SGD, loss="hinge"), ValueError, ("loss", "'mse'", "callable", "'hinge'")),
    ("trainer-loss-int", lambda: Trainer(SGD, loss=3), TypeError, ("loss", "'mse'", "callable", "int")),
    ("trainer-mesh-str", lambda: Trainer(SGD, mesh="data"), TypeError, ("mesh", "jax.sharding.Mesh", "'data'")),
    ("trainer-optimizer-str", lambda: Trainer("adam"), TypeError, ("optimizer", "optax.GradientTransformation", "str")),  # type: ignore[arg-type]
    # shard_batch: a batch is arrays with the example axis first
    ("shard-batch-python-scalar", lambda: shard_batch(3.0, make_mesh(1, 1)),
     TypeError, ("tree", "array", "(B, ...)", "float", "jnp.asarray")),
    ("shard-batch-python-list", lambda: shard_batch([1.0, 2.0], make_mesh(1, 1)),
     TypeError, ("tree[0]", "array", "(B, ...)", "list of numbers", "jnp.asarray")),
    ("shard-batch-list-in-dict", lambda: shard_batch({"x": jnp.ones((2, 3)), "ids": [0, 1]}, make_mesh(1, 1)),
     TypeError, ("tree['ids'][0]", "(B, ...)", "int")),
    ("shard-batch-str", lambda: shard_batch("abc", make_mesh(1, 1)), TypeError, ("tree", "array", "str")),
    ("shard-batch-0d-array", lambda: shard_batch(jnp.float32(1), make_mesh(1, 1)),
     ValueError, ("tree", "(B, ...)", "only 0-d")),
    ("shard-batch-none", lambda: shard_batch(None, make_mesh(1, 1)), ValueError, ("tree", "(B, ...)", "no arrays")),
    ("shard-batch-mesh", lambda: shard_batch(jnp.ones((2, 3)), None),  # type: ignore[arg-type]
     TypeError, ("mesh", "jax.sharding.Mesh")),
    ("shard-members-python-list", lambda: shard_members([1.0, 2.0], make_mesh(1, 1)),
     ValueError, ("tree", "member axis", "(K, ...)", "only 0-d", "jnp.asarray")),
    ("shard-members-str-leaf", lambda: shard_members({"w": jnp.ones((2, 3)), "name": "a"}, make_mesh(1, 1)),
     TypeError, ("tree['name']", "(K, ...)", "str")),
    # checkpoint paths
    ("latest-step-int", lambda: latest_step(5), TypeError, ("directory", "os.PathLike", "int")),  # type: ignore[arg-type]
    ("latest-step-bytes", lambda: latest_step(b"/tmp"), TypeError, ("directory", "bytes")),  # type: ignore[arg-type]
    ("latest-step-bytes-pathlike", lambda: latest_step(_BytesPath()), TypeError, ("directory", "_BytesPath")),
    ("latest-step-none", lambda: latest_step(None), TypeError, ("directory", "NoneType")),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("call", "error", "words"), [pytest.param(c, e, w, id=i) for i, c, e, w in CASES])
def test_bad_input_names_the_argument_and_the_rule(call: Callable[[], Any], error: type[Exception],
                                                   words: tuple[str, ...]) -> None:
    with pytest.raises(Exception) as info:  # the exact type is asserted below
        call()
    err = info.value
    assert type(err) is error, f"{type(err).__name__}: {err}"
    message = str(err)
    missing = [w for w in words if w not in message]
    assert not missing, f"{message!r} does not name {missing}"
    assert not re.search(r"Tracer|jax\._src|Traceback", message), message


# -- the valid neighbours of each rule --------------------------------------------------------------

def test_metrics_accept_numpy_arrays_and_give_the_values_of_jax_arrays() -> None:
    got = classification_metrics(np.asarray(PROBS), np.asarray(LABELS))
    want = classification_metrics(PROBS, LABELS)
    assert all(float(got[k]) == float(want[k]) for k in want)
    report = ensemble_report(np.zeros((2, 3, 2), np.float32), np.zeros(3, np.float32), task="gaussian")
    assert report == ensemble_report(jnp.zeros((2, 3, 2)), jnp.zeros(3), task="gaussian")
    reg = regression_metrics(jnp.zeros((1, 3)), jnp.ones((1, 3)), jnp.array([0, 1, 3]))  # integer targets
    assert math.isclose(float(reg["coverage_2sigma"]), 2 / 3, rel_tol=1e-6)


def test_classification_metrics_under_jit_and_vmap_still_run() -> None:
    """The checks read shapes and dtypes only: traced labels pass (their range cannot be read)."""
    jitted = jax.jit(classification_metrics)(PROBS, LABELS)
    assert float(jitted["accuracy"]) == float(classification_metrics(PROBS, LABELS)["accuracy"])
    stacked = jax.vmap(classification_metrics, in_axes=(0, None))(jnp.stack([PROBS, PROBS]), LABELS)
    assert stacked["nll"].shape == (2,)


def test_losses_accept_their_documented_shapes() -> None:
    assert float(cross_entropy(jnp.array([0.0, 0.0]), 1)) == pytest.approx(math.log(2))  # a Python int label
    batch = cross_entropy(jnp.zeros((2, 3)), jnp.array([0, 2]))
    assert batch.shape == (2,)
    assert float(mse(jnp.ones((2, 3)), jnp.zeros(3))) == 1.0
    assert float(mse(jnp.ones(1), jnp.float32(0))) == 1.0
    assert float(mse(jnp.array([2, 4]), jnp.array([0, 0]))) == 10.0  # integers give float32
    out = jnp.array([[1.0, 0.0], [2.0, 0.0]])
    var = float(gaussian_variance(jnp.float32(0.0)))
    want = 2 * 0.5 * (math.log(var) + math.log(2 * math.pi))
    for target in (jnp.array([1.0, 2.0]), jnp.array([[1.0], [2.0]]), jnp.array([[1.0, 2.0]])):
        assert float(gaussian_nll(out, target)) == pytest.approx(want, rel=1e-5)
    one = 0.5 * (math.log(var) + math.log(2 * math.pi))
    assert float(gaussian_nll(jnp.array([0.0, 0.0]), 0.0)) == pytest.approx(one, rel=1e-5)


def test_predict_and_summarize_accept_what_they_document() -> None:
    ens = _ensemble()
    x = jnp.arange(10.0).reshape(5, 2)
    assert ens.predict(np.asarray(x)).mean.shape == (5, 3)
    assert jnp.array_equal(ens.predict(x).mean, ens.predict(np.asarray(x)).mean)
    per_member = ens.apply(jnp.stack([x, x]), per_member=np.bool_(True))
    assert jnp.array_equal(per_member, ens.apply(x))
    assert _nnx_ensemble().predict(x).mean.shape == (5, 3)
    nested = summarize([[[0.0, 1.0]], [[1.0, 0.0]]], task="classification")  # documented: a nested list
    assert jnp.allclose(nested.probs, jnp.array([[0.5, 0.5]]))
    counts = summarize(jnp.array([[1, 3]]), task="regression")  # integer outputs give float32
    assert counts.mean.dtype == jnp.float32 and counts.mean.tolist() == [1.0, 3.0]
    assert float(gaussian_variance(0)) == float(gaussian_variance(jnp.float32(0)))
    layer = shared_vmap(nn.Dense, in_axes=(0,), out_axes=0)(features=3)
    assert layer.apply(layer.init(kf.key(0), x), x).shape == (5, 3)


@pytest.mark.bitwise
def test_bootstrap_weights_accept_what_they_document_with_the_bits_of_the_plain_formula() -> None:
    def plain(keys: jax.Array, n: int) -> jax.Array:
        def one(key: jax.Array) -> jax.Array:
            draws = jax.random.randint(kf.named(key, "bootstrap"), (n,), 0, n)
            return jnp.zeros((n,), jnp.float32).at[draws].add(1.0)
        return jax.vmap(one)(keys)

    raw = jax.random.split(jax.random.PRNGKey(0), 3)
    for keys in (MEMBER_KEYS, raw, np.asarray(raw)):
        want = np.asarray(plain(jnp.asarray(keys), 7))
        for n in (7, 7.0, np.int64(7), jnp.int32(7)):
            got = bootstrap_weights(keys, n)  # type: ignore[arg-type]
            assert got.dtype == jnp.float32 and np.array_equal(np.asarray(got), want)
    jitted = jax.jit(bootstrap_weights, static_argnums=1)(MEMBER_KEYS, 7)  # traced keys pass the check
    assert np.array_equal(np.asarray(jitted), np.asarray(plain(MEMBER_KEYS, 7)))
    state = Trainer(SGD).init(_ensemble(), bootstrap=np.int32(6))
    assert state.weights is not None and np.array_equal(np.asarray(state.weights),
                                                         np.asarray(plain(_ensemble().keys, 6)))


def test_trainer_accepts_numpy_flags_and_whole_sizes_as_python_values() -> None:
    trainer = Trainer(SGD, dropout=np.bool_(False), layout_invariant=np.True_, donate=np.False_,
                      chunks=np.int64(2), block_size=4.0, member_group=jnp.int32(1),  # type: ignore[arg-type]
                      model_kwargs=types.MappingProxyType({"train": False}))
    assert (trainer.dropout, trainer.layout_invariant, trainer.donate) == (False, True, False)
    assert all(type(v) is bool for v in (trainer.dropout, trainer.layout_invariant, trainer.donate))
    assert (trainer.chunks, trainer.block_size, trainer.member_group) == (2, 4, 1)
    assert Trainer(SGD, loss=lambda out, y: jnp.sum(out)).loss is not None


@pytest.mark.bitwise
def test_learning_rates_as_a_list_numpy_or_jax_array_set_the_same_state() -> None:
    want = Trainer(LR_SGD).init(_ensemble(), learning_rates=np.array([0.5, 0.25])).opt_state
    for rates in ([0.5, 0.25], jnp.array([0.5, 0.25]), np.array([0.5, 0.25], np.float32), (0.5, 0.25)):
        assert_trees_bitwise_equal(Trainer(LR_SGD).init(_ensemble(), learning_rates=rates).opt_state, want)
    got = Trainer(LR_SGD).init(_ensemble(), learning_rates=[1, 2]).opt_state  # integers are rates too
    assert_trees_bitwise_equal(got, Trainer(LR_SGD).init(_ensemble(), learning_rates=[1.0, 2.0]).opt_state)


@pytest.mark.bitwise
def test_shard_batch_and_members_keep_documented_trees_and_replicate_0d_leaves_beside_them() -> None:
    mesh = make_mesh(1, 1)
    x, ids, step = np.arange(12.0, dtype=np.float32).reshape(4, 3), jnp.arange(4), jnp.int32(3)
    placed = shard_batch({"x": x, "ids": ids, "step": step, "keys": kf.fan_out(kf.key(0), 4)}, mesh)
    assert np.array_equal(np.asarray(placed["x"]), x) and tuple(placed["x"].sharding.spec) == ("data",)
    assert int(placed["step"]) == 3 and tuple(placed["step"].sharding.spec) == ()
    assert shard_batch([jnp.ones(2), jnp.zeros(2)], mesh)[1].shape == (2,)  # a list of arrays is a pytree of batches
    _, state = _small_state()
    assert_trees_bitwise_equal(shard_members(state, mesh), state)  # a TrainState: 0-d step replicated
    placed_members = shard_members({"w": jnp.ones((2, 3)), "lr": 0.5}, mesh)  # a number beside arrays: replicated
    assert float(placed_members["lr"]) == 0.5 and tuple(placed_members["w"].sharding.spec) == ("member",)


def test_report_table_of_a_whole_report_is_unchanged() -> None:
    report = _report()
    labels, rows = report_table(report)  # type: ignore[arg-type]
    assert labels == ["accuracy", "NLL", "Brier", "ECE"]
    assert rows[-1] == ("ensemble", list(report["ensemble"].values()))


def _small_state() -> tuple[Any, Any]:
    import flax.linen as nn
    import optax

    x = jnp.ones((4, 2))
    trainer = kf.ensemble.Trainer(optax.sgd(0.1))
    return trainer, trainer.init(kf.Ensemble.init(nn.Dense(2), kf.key(0), members=2, sample_input=x))


class _PathLike(os.PathLike):  # type: ignore[type-arg]
    """An os.PathLike that is not a pathlib.Path (as fsspec/UPath-like wrappers are)."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)


@pytest.mark.bitwise
def test_checkpoints_take_any_path_like_and_count_only_complete_steps(tmp_path: pathlib.Path) -> None:
    _, state = _small_state()
    run = _PathLike(tmp_path / "run")
    assert latest_step(run) is None
    assert save(run, state) == (tmp_path / "run" / "0").resolve()
    (tmp_path / "run" / "5").mkdir()  # an empty numeric directory is not a checkpoint
    (tmp_path / "run" / "7").mkdir()
    (tmp_path / "run" / "7" / "default").mkdir()  # nor one without orbax's completion record
    assert latest_step(run) == 0
    assert_trees_bitwise_equal(restore(run, like=state), state)
    with pytest.raises(ValueError, match="incomplete or corrupt") as info:
        restore(run, like=state, step=5)
    assert str(tmp_path / "run" / "5") in str(info.value)


def test_restore_names_the_incomplete_steps_when_none_is_complete(tmp_path: pathlib.Path) -> None:
    _, state = _small_state()
    (tmp_path / "3").mkdir()
    assert latest_step(tmp_path) is None
    with pytest.raises(FileNotFoundError) as info:
        restore(tmp_path, like=state)
    message = str(info.value)
    assert "no checkpoint" in message and str(tmp_path / "3") in message and "incomplete" in message
