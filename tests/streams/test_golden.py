"""Golden values: each stream's first words and each sampler's first values, pinned in
``golden_values.json`` across JAX, jaxlib and NumPy versions.

keyfan computes its streams itself (``keyfan.streams``), so their words (``split``,
``fold_in``, ``bits``) must never move; the samplers on top are JAX's own code
(``jax.random.<name>`` on a keyfan key), so a JAX upgrade may move one, as JAX's changelog
announces. On a mismatch the message names the entry, the stream and both dependency versions.
Where a sampler's values differ on an older JAX of the supported range, the file's ``older_jax``
records hold them, each with its JAX range and the reason (docs/compatibility.md lists them).

Regenerate (after checking why a value moved): ``python -m tests.streams.test_golden --write``.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import keyfan as kf
from tests.conformance.samplers import SAMPLERS

GOLDEN = Path(__file__).with_name("golden_values.json")
SEEDS = (0, 42, 2**32 + 7)
STREAM_WORDS = ("key", "split(3)", "fold_in(7)", "bits(8)", "bits(5, uint8)")
SAMPLER_SEED = 42
"""Every public jax.random sampler is pinned at this seed; the stream words at every seed."""
STREAMS = ("threefry", "threefry-legacy")
APPROXIMATE = {"gamma", "loggamma", "beta", "dirichlet", "chisquare", "f", "t", "generalized_normal", "ball"}
"""Built on JAX's gamma loop, whose last bits follow XLA's log/exp (see tests/conformance/test_samplers.py)."""


def _versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in ("jax", "jaxlib", "numpy")}


def _bits_of(x) -> list:
    """Exact values as JSON: integers as ints, floats (and bools) by their bit patterns."""
    a = np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
    if a.dtype.kind in "iub":
        return a.astype(np.int64 if a.dtype.kind != "u" else np.uint64).ravel().tolist()
    width = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return [f"{a.dtype}:{v:x}" for v in a.view(width).ravel().tolist()]


@functools.cache
def _jitted(name: str):
    draw = SAMPLERS[name][0]
    return jax.jit(lambda k: draw(k, None))


def compute() -> dict:
    """Every golden entry, computed now: ``{stream: {seed: {entry: values}}}``."""
    out: dict = {}
    for stream in STREAMS:
        out[stream] = {}
        for seed in SEEDS:
            key = kf.key(seed, stream)
            entries = {
                "key": _bits_of(key),
                "split(3)": _bits_of(jax.random.split(key, 3)),
                "fold_in(7)": _bits_of(jax.random.fold_in(key, 7)),
                "bits(8)": _bits_of(jax.random.bits(key, (8,))),
                "bits(5, uint8)": _bits_of(jax.random.bits(key, (5,), "uint8")),
                "kf.normal(batch=2, shape=3)": _bits_of(kf.normal(key, batch=(2,), shape=(3,))),
                "kf.poisson(lam=[0.5, 4, 30])": _bits_of(
                    kf.poisson(key, batch=(), shape=(3,), lam=np.array([0.5, 4.0, 30.0]))),
            }
            if seed == SAMPLER_SEED:
                for name in sorted(set(SAMPLERS) - {"poisson"}):
                    entries[f"jax.random.{name}"] = _bits_of(_jitted(name)(key))
            out[stream][str(seed)] = entries
    return out


def _float_values(values: list) -> np.ndarray:
    dtype = np.dtype(values[0].split(":")[0]) if values and isinstance(values[0], str) else None
    if dtype is None:
        return np.asarray(values, np.float64)
    width = {2: np.uint16, 4: np.uint32, 8: np.uint64}[dtype.itemsize]
    raw = np.array([int(v.split(":")[1], 16) for v in values], width)
    return raw.view(dtype).astype(np.float64)


def expected_values(stored: dict, jax_version: str) -> dict:
    """The golden values on JAX ``jax_version``: ``stored["values"]``, with the entries of each
    ``older_jax`` record whose ``jax`` range holds that version in their place."""
    values = copy.deepcopy(stored["values"])
    for record in stored.get("older_jax", ()):
        if Version(jax_version) in SpecifierSet(record["jax"]):
            for stream, seeds in record["values"].items():
                for seed, entries in seeds.items():
                    values[stream][seed].update(entries)
    return values


def mismatch_report(stored: dict, current: dict, now: dict[str, str]) -> str | None:
    """None if ``current`` matches the golden file ``stored``; else a message naming every moved
    entry, its stream and seed, who owns it (keyfan's stream or a JAX sampler), and the
    dependency versions on both sides."""
    moved = []
    for stream, seeds in stored["values"].items():
        for seed, entries in seeds.items():
            for entry, values in entries.items():
                got = current[stream][seed].get(entry)
                name = entry.removeprefix("jax.random.")
                same = got == values
                if not same and name in APPROXIMATE and got is not None and len(got) == len(values):
                    same = np.allclose(_float_values(got), _float_values(values), rtol=1e-5, atol=1e-6)
                if not same:
                    who = ("keyfan's stream itself (its words never depend on JAX: a keyfan bug)"
                           if entry in STREAM_WORDS else
                           f"JAX's sampler {entry}" if entry.startswith("jax.random.") else f"keyfan's {entry}")
                    moved.append(f"  stream {stream!r}, seed {seed}, {entry}: {who} moved\n"
                                 f"    golden {values}\n    now    {got}")
    if not moved:
        return None
    return (f"{len(moved)} golden value(s) moved between the recorded dependencies {stored['versions']} and "
            f"the installed {now}:\n" + "\n".join(moved) + "\nIf a JAX sampler moved with a jax upgrade, say so "
            "in the README and regenerate with `python -m tests.streams.test_golden --write`.")


def test_golden_values():
    stored = json.loads(GOLDEN.read_text())
    stored["values"] = expected_values(stored, jax.__version__)
    report = mismatch_report(stored, compute(), _versions())
    assert report is None, report


def test_mismatch_report_names_stream_entry_and_versions():
    stored = json.loads(GOLDEN.read_text())
    current = json.loads(GOLDEN.read_text())["values"]
    current["threefry-legacy"]["42"]["jax.random.uniform"][0] = "float32:0"
    current["threefry"]["0"]["split(3)"][0] += 1
    report = mismatch_report(stored, current, {"jax": "9.9.9", "jaxlib": "9.9.9", "numpy": "3.0"})
    assert "2 golden value(s) moved" in report
    assert "stream 'threefry-legacy', seed 42, jax.random.uniform: JAX's sampler jax.random.uniform moved" in report
    assert "stream 'threefry', seed 0, split(3): keyfan's stream itself" in report
    assert "'jax': '9.9.9'" in report and f"'jax': '{stored['versions']['jax']}'" in report
    assert mismatch_report(stored, stored["values"], _versions()) is None


@pytest.mark.parametrize("stream", STREAMS)
def test_golden_values_do_not_depend_on_the_global_flag(stream):
    stored = json.loads(GOLDEN.read_text())["values"][stream]["42"]
    key = kf.key(42, stream)
    for flag in (True, False):
        with jax.threefry_partitionable(flag):
            assert _bits_of(jax.random.split(key, 3)) == stored["split(3)"]
            assert _bits_of(jax.random.bits(key, (8,))) == stored["bits(8)"]
            assert _bits_of(_jitted("normal")(key)) == stored["jax.random.normal"]


def test_older_jax_records_apply_in_their_range_only():
    stored = {"values": {"threefry": {"42": {"jax.random.cauchy": [1], "jax.random.normal": [2]}}},
              "older_jax": [{"jax": "<0.7", "why": "a test",
                             "values": {"threefry": {"42": {"jax.random.cauchy": [3]}}}}]}
    assert expected_values(stored, "0.6.2")["threefry"]["42"] == {"jax.random.cauchy": [3], "jax.random.normal": [2]}
    assert expected_values(stored, "0.7.0")["threefry"]["42"] == {"jax.random.cauchy": [1], "jax.random.normal": [2]}
    assert stored["values"]["threefry"]["42"]["jax.random.cauchy"] == [1]  # the stored file is not changed


def test_older_jax_records_name_only_jax_samplers_with_a_reason():
    """keyfan's own words and draws never move with JAX: only JAX's samplers may have records."""
    stored = json.loads(GOLDEN.read_text())
    for record in stored.get("older_jax", ()):
        assert record["why"] and SpecifierSet(record["jax"])
        for stream, seeds in record["values"].items():
            for seed, entries in seeds.items():
                for entry in entries:
                    assert entry.startswith("jax.random.") and entry in stored["values"][stream][seed], entry


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.streams.test_golden --write")
    kept = {k: v for k, v in json.loads(GOLDEN.read_text()).items() if k not in ("versions", "values")}
    GOLDEN.write_text(json.dumps({"versions": _versions(), "values": compute(), **kept}, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
