"""In-process statistical evidence at fixed seeds: every sampler has its target distribution
(Kolmogorov-Smirnov or chi-square, moments), and neighbouring examples, steps, names and example
ids are uncorrelated.

Each check rejects at a p-value of 1e-6 (|z| > 4.9 for moments and correlations): with about 60
checks, an unlucky seed fails with probability below 1e-4, while a real defect at these sample
sizes (a shared key, a mean off by 0.02 sd, a correlation of 0.02) fails with certainty. The
negative controls (a broadcast key, a shifted distribution) show that the checks can fail.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import keyfan as kf

P_MIN = 1e-6
Z_MAX = 4.9
N = 200_000
SEEDS = (0, 1)


def _ks(sample, cdf, *args):
    return stats.kstest(np.asarray(sample, np.float64).ravel(), cdf, args=args).pvalue


def _z_mean(sample, mean, var):
    x = np.asarray(sample, np.float64).ravel()
    return (x.mean() - mean) / np.sqrt(var / x.size)


def _z_var(sample, var, kurtosis_excess):
    """z of the sample variance against ``var`` (its sd is var * sqrt((2 + kurt) / n))."""
    x = np.asarray(sample, np.float64).ravel()
    return (x.var() - var) / (var * np.sqrt((2 + kurtosis_excess) / x.size))


CONTINUOUS = {
    # name: (draw(key) -> (B, n), scipy distribution name, args, mean, var, excess kurtosis)
    "uniform": (lambda k: kf.uniform(k, batch=(N // 4,), shape=(4,)), "uniform", (), 0.5, 1 / 12, -1.2),
    "uniform_bounds": (lambda k: kf.uniform(k, batch=(N // 4,), shape=(4,), minval=-2.0, maxval=3.0), "uniform",
                       (-2.0, 5.0),
                       0.5, 25 / 12, -1.2),
    "normal": (lambda k: kf.normal(k, batch=(N // 4,), shape=(4,)), "norm", (), 0.0, 1.0, 0.0),
    "gumbel": (lambda k: kf.gumbel(k, batch=(N // 4,), shape=(4,)), "gumbel_r", (), np.euler_gamma, np.pi**2 / 6, 2.4),
    "truncated_normal": (lambda k: kf.truncated_normal(k, batch=(N // 4,), shape=(4,), lower=-1.0, upper=2.0),
                         "truncnorm",
                         (-1.0, 2.0), *stats.truncnorm.stats(-1.0, 2.0, moments="mvk")),
}
PORTABLE = {
    "uniform_bounds": lambda k: kf.uniform(k, batch=(N // 4,), shape=(4,), minval=-2.0, maxval=3.0, portable=True),
    "normal": lambda k: kf.normal(k, batch=(N // 4,), shape=(4,), portable=True),
    "gumbel": lambda k: kf.gumbel(k, batch=(N // 4,), shape=(4,), portable=True),
    "truncated_normal": lambda k: kf.truncated_normal(k, batch=(N // 4,), shape=(4,), lower=-1.0, upper=2.0,
                                                      portable=True),
}
"""The portable draws (``portable=True``: keyfan's own float32 arithmetic, the same on every CPU and
GPU) face the same checks as JAX's."""
CONTINUOUS.update({f"portable_{name}": (draw, *CONTINUOUS[name][1:]) for name, draw in PORTABLE.items()})


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", CONTINUOUS)
def test_continuous_sampler_has_its_distribution(name, seed):
    draw, dist, args, mean, var, kurt = CONTINUOUS[name]
    x = np.asarray(draw(kf.key(seed)))
    assert _ks(x, dist, *args) > P_MIN
    assert abs(_z_mean(x, float(mean), float(var))) < Z_MAX
    assert abs(_z_var(x, float(var), float(kurt))) < Z_MAX


def test_ks_rejects_a_shifted_normal():
    """Negative control: the same check on normals shifted by 0.02 sd fails."""
    x = np.asarray(kf.normal(kf.key(0), batch=(N // 4,), shape=(4,))) + 0.02
    assert abs(_z_mean(x, 0.0, 1.0)) > Z_MAX


def _chi2(counts, probs):
    return stats.chisquare(counts, np.asarray(probs) * counts.sum()).pvalue


@pytest.mark.parametrize("seed", SEEDS)
def test_discrete_samplers_have_their_distribution(seed):
    key = kf.key(seed)
    r = np.asarray(kf.randint(key, batch=(N // 4,), shape=(4,), minval=-3, maxval=7))
    assert _chi2(np.bincount(r.ravel() + 3, minlength=10), np.full(10, 0.1)) > P_MIN
    b = np.asarray(kf.bernoulli(kf.named(key, "b"), batch=(N // 4,), shape=(4,), p=0.3))
    assert abs(_z_mean(b, 0.3, 0.21)) < Z_MAX
    logits = jnp.log(jnp.array([0.1, 0.2, 0.3, 0.4]))
    c = np.asarray(kf.categorical(kf.named(key, "c"), batch=(N,), logits=logits))
    assert _chi2(np.bincount(c, minlength=4), [0.1, 0.2, 0.3, 0.4]) > P_MIN
    c = np.asarray(kf.categorical(kf.named(key, "c"), batch=(N,), logits=logits, portable=True))
    assert _chi2(np.bincount(c, minlength=4), [0.1, 0.2, 0.3, 0.4]) > P_MIN
    words = np.asarray(kf.bits(kf.named(key, "w"), batch=(N // 4,), shape=(4,)))
    bit_means = np.unpackbits(words.view(np.uint8)).reshape(-1, 32).mean(0)
    assert np.all(np.abs(bit_means - 0.5) / np.sqrt(0.25 / words.size) < Z_MAX)
    assert _ks(words.astype(np.float64) / 2**32, "uniform") > P_MIN


@pytest.mark.parametrize("portable", [False, True])
@pytest.mark.parametrize("lam", [3.0, 40.0])
def test_poisson_has_its_distribution(lam, portable):
    x = np.asarray(kf.poisson(kf.key(5), batch=(N // 8,), lam=lam, portable=portable))
    support = np.arange(int(lam + 8 * np.sqrt(lam)))
    counts = np.bincount(np.minimum(x, support[-1]), minlength=support.size)
    probs = stats.poisson.pmf(support, lam)
    probs[-1] += stats.poisson.sf(support[-1], lam)  # the last bin holds the tail
    keep = probs * x.size >= 5  # chi-square bins with enough expected counts; the rest pooled
    if not keep.all():
        counts, probs = np.append(counts[keep], counts[~keep].sum()), np.append(probs[keep], probs[~keep].sum())
    assert _chi2(counts, probs) > P_MIN


def _max_neighbour_z(rows):
    """Largest |z| of the Pearson correlation between row ``i`` and row ``i + 1`` (each pair of
    rows tested on its own, and all pairs pooled)."""
    rows = np.asarray(rows, np.float64)
    rows = (rows - rows.mean(1, keepdims=True)) / rows.std(1, keepdims=True)
    r = (rows[:-1] * rows[1:]).mean(1)
    n = rows.shape[1]
    pooled = r.mean() * np.sqrt(n * r.size)
    return max(np.abs(r).max() * np.sqrt(n), abs(pooled))


LENGTH = 4096
ROWS = 16
NEIGHBOURS = {
    "examples": lambda key: kf.normal(key, batch=(ROWS,), shape=(LENGTH,)),
    "nested_examples": lambda key: kf.normal(key, batch=(2, ROWS // 2), shape=(LENGTH,)).reshape(ROWS, LENGTH),
    "steps": lambda key: jnp.stack([jax.random.normal(kf.step(key, t), (LENGTH,)) for t in range(ROWS)]),
    "names": lambda key: jnp.stack([jax.random.normal(kf.named(key, f"layer{i}"), (LENGTH,)) for i in range(ROWS)]),
    "example_ids": lambda key: jax.vmap(lambda k: jax.random.normal(k, (LENGTH,)))(
        kf.example_keys(key, np.arange(ROWS) * 7919 + 5, step=3)),
    "uniform_examples": lambda key: kf.uniform(key, batch=(ROWS,), shape=(LENGTH,)),
    "bits_examples": lambda key: kf.bits(key, batch=(ROWS,), shape=(LENGTH,)).astype(jnp.float32),
    "portable_examples": lambda key: kf.normal(key, batch=(ROWS,), shape=(LENGTH,), portable=True),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", NEIGHBOURS)
def test_neighbouring_streams_are_uncorrelated(name, seed):
    # The per-row threshold accounts for ROWS - 1 pairs: still below P_MIN * 16 for any row.
    assert _max_neighbour_z(NEIGHBOURS[name](kf.key(seed))) < Z_MAX


def test_correlation_check_catches_a_broadcast_key():
    """Negative control: a key broadcast over the batch gives identical rows (z = sqrt(n))."""
    key = kf.key(0)
    rows = jax.vmap(lambda _: jax.random.normal(key, (LENGTH,)))(jnp.arange(ROWS))
    assert _max_neighbour_z(rows) > 60


def test_lagged_words_within_an_example_are_uncorrelated():
    """Word j and word j + 1 of the same example (the other direction of the column-wise layout)."""
    x = np.asarray(kf.normal(kf.key(3), batch=(64,), shape=(LENGTH,)), np.float64)
    r = (x[:, :-1] * x[:, 1:]).mean()
    assert abs(r) * np.sqrt(x[:, 1:].size) < Z_MAX
