"""Golden values: each stream's first words and each sampler's first values, pinned in
``golden_values.json`` across JAX, jaxlib and NumPy versions and across CPU instruction sets.

What keyfan computes itself never moves: its streams' words (keys, ``split``, ``fold_in``,
``bits``) and its portable draws (``portable=True``, contraction-proof float32 arithmetic).
They are in ``values`` and must hold on every machine. The samplers' default floats are JAX's
own arithmetic, whose last bits follow the CPU: XLA contracts multiply-adds into fused ones from
AVX2 on, and the linear-algebra samplers run LAPACK kernels chosen for the host CPU. Those
entries are listed in ``isa_dependent`` with the reason, and their values are recorded per ISA
(``values_by_isa``, under each ``--xla_cpu_max_isa`` setting on the recording machine): a test
process checks the values of the ISA XLA compiles for (the host's, capped by ``XLA_FLAGS``).
The LAPACK ones (``host_dependent``) are checked only on a host of the recording host's ISA:
``--xla_cpu_max_isa`` does not cap LAPACK, so no emulation reproduces another host's values.
A JAX upgrade may move a JAX sampler, as JAX's changelog announces. Where a sampler's values
differ on an older JAX of the supported range, the file's ``older_jax`` records hold them, each
with its JAX range, the reason and the ISA it was measured under (docs/compatibility.md lists
them); an ISA-dependent entry of such a record is checked under that ISA only. On a mismatch the
message names the entry, the stream, the ISA and both dependency versions.

File format (``golden_values.json``): ``{"versions", "recorded_on", "isa_dependent":
{entry: reason}, "host_dependent": [entry], "values": {stream: {seed: {entry: values}}},
"values_by_isa": {isa: {stream: {seed: {entry: values}}}}, "older_jax": [{"jax": range,
"measured_on": [version], "isa", "why", "values": {stream: {seed: {entry: values}}}}]}``;
integers as ints, floats as ``"dtype:hex bits"``, large draws as ``"sha256:..."`` of their bytes.

Regenerate (after checking why a value moved): ``python -m tests.streams.test_golden --write``
(it computes every entry under each ISA setting, in subprocesses, and keeps ``older_jax``).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import keyfan as kf
from tests.conformance.samplers import SAMPLERS
from tests.isa import EMULATED, effective_isa, host_isa, isa_env

GOLDEN = Path(__file__).with_name("golden_values.json")
ROOT = Path(__file__).resolve().parents[2]
SEEDS = (0, 42, 2**32 + 7)
STREAM_WORDS = ("key", "split(3)", "fold_in(7)", "bits(8)", "bits(5, uint8)")
SAMPLER_SEED = 42
"""Every public jax.random sampler and every portable draw is pinned at this seed; the stream
words and the portable normals at every seed."""
STREAMS = ("threefry", "threefry-legacy")
APPROXIMATE = {"gamma", "loggamma", "beta", "dirichlet", "chisquare", "f", "t", "generalized_normal", "ball"}
"""Built on JAX's gamma loop, whose last bits follow XLA's log/exp (see tests/conformance/test_samplers.py)."""
FMA = ("JAX's float arithmetic: XLA contracts its multiply-adds (and those of its log, exp and erf_inv "
       "polynomials) into fused multiply-adds on CPUs that have them (AVX2 on), so the last bits differ "
       "between SSE4_2/AVX and AVX2/AVX512")
HOST_DEPENDENT = {
    "jax.random.orthogonal": "a QR decomposition: jaxlib calls LAPACK (geqrf), whose kernels are chosen for "
                             "the host CPU at run time and are not capped by --xla_cpu_max_isa (on an AVX2-only "
                             "AMD EPYC its last bits differ from an AVX-512 host's at 4 positions)",
    "jax.random.multivariate_normal": "a Cholesky factorisation: LAPACK (potrf), chosen for the host CPU at run "
                                      "time like orthogonal's QR",
}
"""JAX samplers whose bits follow the host CPU beyond what --xla_cpu_max_isa emulates."""
PORTABLE_PREFIX = "kf.portable."


def _versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in ("jax", "jaxlib", "numpy")}


def _bits_of(x) -> list:
    """Exact values as JSON: integers as ints, floats (and bools) by their bit patterns."""
    a = np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
    if a.dtype.kind in "iub":
        return a.astype(np.int64 if a.dtype.kind != "u" else np.uint64).ravel().tolist()
    if a.dtype.kind == "c":
        a = a.view(np.dtype(f"float{a.dtype.itemsize * 4}"))
    width = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return [f"{a.dtype}:{v:x}" for v in a.view(width).ravel().tolist()]


def _digest(x) -> list:
    """A large draw as the SHA-256 of its dtype, shape and bytes."""
    a = np.asarray(x)
    return [f"sha256:{hashlib.sha256(f'{a.dtype}{a.shape}'.encode() + a.tobytes()).hexdigest()[:32]}"]


@functools.cache
def _jitted(name: str):
    draw = SAMPLERS[name][0]
    return jax.jit(lambda k: draw(k, None))


def _portable_entries(key) -> dict:
    """keyfan's portable draws: small ones value by value, large ones (every branch of the
    arithmetic, tails included) by digest."""
    small = {"batch": (2,), "shape": (3,)}
    logits = jnp.log(jnp.array([0.1, 0.2, 0.3, 0.4]))
    p = PORTABLE_PREFIX
    return {
        f"{p}uniform(-2, 3)": _bits_of(kf.uniform(key, **small, minval=-2.0, maxval=3.0, portable=True)),
        f"{p}truncated_normal(-1, 2)": _bits_of(kf.truncated_normal(key, **small, lower=-1.0, upper=2.0,
                                                                    portable=True)),
        f"{p}gumbel": _bits_of(kf.gumbel(key, **small, portable=True)),
        f"{p}normal(complex64)": _bits_of(kf.normal(key, batch=(2,), shape=(2,), dtype=jnp.complex64, portable=True)),
        f"{p}normal(bfloat16)": _bits_of(kf.normal(key, **small, dtype=jnp.bfloat16, portable=True)),
        f"{p}categorical": _bits_of(kf.categorical(key, batch=(8,), logits=logits, portable=True)),
        f"{p}poisson": _bits_of(kf.poisson(key, batch=(2,), lam=np.array([0.5, 4.0, 30.0, 1e3, 1e5]),
                                           shape=(5,), portable=True)),
        **_large_portable_entries(key),
    }


def _large_portable_entries(key) -> dict:
    """The large portable draws (every branch of the arithmetic, tails included), by digest."""
    big = {"batch": (4096,), "shape": (8,)}
    p = PORTABLE_PREFIX
    return {
        f"{p}normal(4096 x 8)": _digest(kf.normal(key, **big, portable=True)),
        f"{p}gumbel(4096 x 8)": _digest(kf.gumbel(key, **big, portable=True)),
        f"{p}uniform(-2, 3, 4096 x 8)": _digest(kf.uniform(key, **big, minval=-2.0, maxval=3.0, portable=True)),
        f"{p}truncated_normal(-1, 2, 4096 x 8)": _digest(kf.truncated_normal(key, **big, lower=-1.0, upper=2.0,
                                                                             portable=True)),
        f"{p}truncated_normal(2.5, inf, 4096 x 8)": _digest(kf.truncated_normal(key, **big, lower=2.5,
                                                                                upper=np.inf, portable=True)),
    }


def compute(keyfan_only: bool = False, streams: tuple[str, ...] = STREAMS) -> dict:
    """Every golden entry of ``streams``, computed now: ``{stream: {seed: {entry: values}}}``; with
    ``keyfan_only``, a quick check of keyfan's own values: the stream words, the portable normals
    at every seed and the large portable draws (every branch of their arithmetic) at one."""
    out: dict = {}
    for stream in streams:
        out[stream] = {}
        for seed in SEEDS:
            key = kf.key(seed, stream)
            if keyfan_only:
                entries = {"key": _bits_of(key), "split(3)": _bits_of(jax.random.split(key, 3)),
                           "fold_in(7)": _bits_of(jax.random.fold_in(key, 7)),
                           "bits(8)": _bits_of(jax.random.bits(key, (8,))),
                           "bits(5, uint8)": _bits_of(jax.random.bits(key, (5,), "uint8")),
                           f"{PORTABLE_PREFIX}normal(batch=2, shape=3)": _bits_of(
                               kf.normal(key, batch=(2,), shape=(3,), portable=True))}
                if seed == SAMPLER_SEED and stream == "threefry":  # the draws are stream-agnostic arithmetic
                    entries.update(_large_portable_entries(key))
                out[stream][str(seed)] = entries
                continue
            entries = {
                "key": _bits_of(key),
                "split(3)": _bits_of(jax.random.split(key, 3)),
                "fold_in(7)": _bits_of(jax.random.fold_in(key, 7)),
                "bits(8)": _bits_of(jax.random.bits(key, (8,))),
                "bits(5, uint8)": _bits_of(jax.random.bits(key, (5,), "uint8")),
                "kf.normal(batch=2, shape=3)": _bits_of(kf.normal(key, batch=(2,), shape=(3,))),
                f"{PORTABLE_PREFIX}normal(batch=2, shape=3)": _bits_of(kf.normal(key, batch=(2,), shape=(3,),
                                                                                 portable=True)),
                "kf.poisson(lam=[0.5, 4, 30])": _bits_of(
                    kf.poisson(key, batch=(), shape=(3,), lam=np.array([0.5, 4.0, 30.0]))),
            }
            if seed == SAMPLER_SEED:
                for name in sorted(set(SAMPLERS) - {"poisson"}):
                    entries[f"jax.random.{name}"] = _bits_of(_jitted(name)(key))
                entries.update(_portable_entries(key))
            out[stream][str(seed)] = entries
    return out


# -- Recording ------------------------------------------------------------------------------------

def _compute_under(isa: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "tests.streams.test_golden", "--compute"], cwd=ROOT,
                          env=isa_env(isa), capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def record(per_isa: dict[str, dict], host: str | None) -> dict:
    """The golden file from ``per_isa`` (``{isa: compute() under that ISA}``): entries equal under
    every ISA go to ``values``, the others (and the host-dependent ones) to ``values_by_isa``."""
    isas = list(per_isa)
    first = per_isa[isas[0]]
    values: dict = {}
    by_isa: dict = {isa: {} for isa in isas}
    dependent: dict[str, str] = {}
    for stream, seeds in first.items():
        for seed, entries in seeds.items():
            for entry, got in entries.items():
                same = all(per_isa[isa][stream][seed][entry] == got for isa in isas)
                if same and entry not in HOST_DEPENDENT:
                    values.setdefault(stream, {}).setdefault(seed, {})[entry] = got
                    continue
                dependent[entry] = HOST_DEPENDENT.get(entry, FMA)
                for isa in isas:
                    by_isa[isa].setdefault(stream, {}).setdefault(seed, {})[entry] = per_isa[isa][stream][seed][entry]
    return {"versions": _versions(), "recorded_on": host, "isa_dependent": dict(sorted(dependent.items())),
            "host_dependent": sorted(HOST_DEPENDENT), "values": values, "values_by_isa": by_isa}


# -- Checking -------------------------------------------------------------------------------------

def expected(stored: dict, isa: str | None, host: str | None,
             jax_version: str = jax.__version__) -> tuple[dict, list[str]]:
    """The entries a process compiling for ``isa`` on a ``host`` CPU with JAX ``jax_version`` (the
    installed one by default) must reproduce, and notes on the entries it cannot check (with the reason)."""
    out = copy.deepcopy(stored["values"])
    notes: list[str] = []
    if isa not in stored["values_by_isa"]:
        notes.append(f"ISA {isa!r} has no recorded values (an unknown or non-x86 CPU): the ISA-dependent "
                     f"entries {sorted(stored['isa_dependent'])} are not checked")
    else:
        skip = set()
        if host != stored["recorded_on"]:
            skip = set(stored["host_dependent"])
            notes.append(f"this host's ISA is {host}, the values were recorded on {stored['recorded_on']}: "
                         + "; ".join(f"{e} is not checked ({stored['isa_dependent'][e]})" for e in sorted(skip)))
        for stream, seeds in stored["values_by_isa"][isa].items():
            for seed, entries in seeds.items():
                for entry, values in entries.items():
                    if entry not in skip:
                        out.setdefault(stream, {}).setdefault(seed, {})[entry] = values
    notes += _apply_older_jax(out, stored, isa, jax_version)
    return out, notes


def _apply_older_jax(out: dict, stored: dict, isa: str | None, jax_version: str) -> list[str]:
    """Put the entries of each ``older_jax`` record whose ``jax`` range holds ``jax_version`` in
    ``out``'s place. An ISA-dependent entry holds under the record's ``isa`` only: elsewhere it
    is not checked (returned as a note)."""
    notes = []
    for record in stored.get("older_jax", ()):
        if Version(jax_version) not in SpecifierSet(record["jax"]):
            continue
        for stream, seeds in record["values"].items():
            for seed, entries in seeds.items():
                for entry, values in entries.items():
                    if entry in stored.get("isa_dependent", {}) and isa != record["isa"]:
                        out.get(stream, {}).get(seed, {}).pop(entry, None)
                        notes.append(f"{entry} on {stream!r}: JAX {jax_version}'s value was measured under ISA "
                                     f"{record['isa']} only (this process compiles for {isa}): not checked")
                    else:
                        out.setdefault(stream, {}).setdefault(seed, {})[entry] = values
    return notes


def _float_values(values: list) -> np.ndarray:
    dtype = np.dtype(values[0].split(":")[0]) if values and isinstance(values[0], str) else None
    if dtype is None:
        return np.asarray(values, np.float64)
    width = {2: np.uint16, 4: np.uint32, 8: np.uint64}[dtype.itemsize]
    raw = np.array([int(v.split(":")[1], 16) for v in values], width)
    return raw.view(dtype).astype(np.float64)


def _owner(entry: str, isa_dependent: dict) -> str:
    if entry in STREAM_WORDS:
        return "keyfan's stream itself (its words never depend on JAX or the CPU: a keyfan bug)"
    if entry.startswith(PORTABLE_PREFIX):
        return "keyfan's portable draw (it never depends on JAX or the CPU: a keyfan bug)"
    if entry in isa_dependent:
        return f"{entry}, whose bits follow the CPU ({isa_dependent[entry]}),"
    return f"JAX's sampler {entry}" if entry.startswith("jax.random.") else f"keyfan's {entry} (JAX's arithmetic)"


def mismatch_report(stored: dict, expected_values: dict, current: dict, now: dict[str, str],
                    isa: str | None) -> str | None:
    """None if ``current`` matches ``expected_values`` (from :func:`expected`); else a message
    naming every moved entry, its stream and seed, who owns it, the ISA and the dependency
    versions on both sides."""
    moved = []
    for stream, seeds in expected_values.items():
        for seed, entries in seeds.items():
            for entry, values in entries.items():
                got = current[stream][seed].get(entry)
                name = entry.removeprefix("jax.random.")
                same = got == values
                if not same and name in APPROXIMATE and got is not None and len(got) == len(values):
                    same = np.allclose(_float_values(got), _float_values(values), rtol=1e-5, atol=1e-6)
                if not same:
                    moved.append(f"  stream {stream!r}, seed {seed}, {entry}: "
                                 f"{_owner(entry, stored['isa_dependent'])} moved\n"
                                 f"    golden {values}\n    now    {got}")
    if not moved:
        return None
    return (f"{len(moved)} golden value(s) moved between the recorded dependencies {stored['versions']} and "
            f"the installed {now}, compiling for ISA {isa}:\n" + "\n".join(moved) + "\nIf a JAX sampler moved "
            "with a jax upgrade, say so in docs/compatibility.md and regenerate with "
            "`python -m tests.streams.test_golden --write`.")


@pytest.mark.slow  # JAX's samplers, a compile each; test_keyfan_golden_values keeps keyfan's own in the default tier
@pytest.mark.bitwise
@pytest.mark.parametrize("stream", STREAMS)  # one per stream: the ISA matrix reruns the "threefry" one
def test_golden_values(stream):
    stored = json.loads(GOLDEN.read_text())
    isa, host = effective_isa(), host_isa()
    values, notes = expected(stored, isa, host)
    assert set(values) == set(STREAMS), set(values)
    report = mismatch_report(stored, {stream: values[stream]}, compute(streams=(stream,)), _versions(), isa)
    assert report is None, report
    for note in notes:  # what this machine cannot check, and why (shown with -rA)
        print(note)


@pytest.mark.bitwise
def test_keyfan_golden_values():
    """keyfan's own values (stream words, portable draws), which hold on every ISA and every JAX:
    the quick check the ISA matrix's default tier runs (``test_golden_values`` checks every entry)."""
    stored = json.loads(GOLDEN.read_text())
    current = compute(keyfan_only=True)
    values = {stream: {seed: {e: v for e, v in entries.items() if e in current[stream][seed]}
                       for seed, entries in seeds.items()} for stream, seeds in stored["values"].items()}
    assert sum(len(e) for seeds in values.values() for e in seeds.values()) == \
        sum(len(e) for seeds in current.values() for e in seeds.values())
    report = mismatch_report(stored, values, current, _versions(), effective_isa())
    assert report is None, report


def test_golden_file_keeps_keyfan_values_on_every_isa():
    """Stream words and portable draws are never ISA-dependent; JAX's float samplers are."""
    stored = json.loads(GOLDEN.read_text())
    keyfan_entries = [e for e in stored["isa_dependent"] if e in STREAM_WORDS or e.startswith(PORTABLE_PREFIX)]
    assert not keyfan_entries, f"keyfan's own values recorded as ISA-dependent: {keyfan_entries}"
    assert set(stored["values_by_isa"]) == set(EMULATED)
    assert set(HOST_DEPENDENT) <= set(stored["isa_dependent"])
    common = stored["values"]["threefry"][str(SAMPLER_SEED)]
    assert all(e in common for e in STREAM_WORDS) and f"{PORTABLE_PREFIX}normal(4096 x 8)" in common


def test_mismatch_report_names_stream_entry_isa_and_versions():
    stored = json.loads(GOLDEN.read_text())
    values, _ = expected(stored, "AVX2", stored["recorded_on"])
    current = copy.deepcopy(values)
    current["threefry-legacy"]["42"]["jax.random.uniform"][0] = "float32:0"
    current["threefry"]["0"]["split(3)"][0] += 1
    current["threefry"]["42"][f"{PORTABLE_PREFIX}gumbel"][0] = "float32:0"
    report = mismatch_report(stored, values, current, {"jax": "9.9.9", "jaxlib": "9.9.9", "numpy": "3.0"}, "AVX2")
    assert "3 golden value(s) moved" in report and "compiling for ISA AVX2" in report
    assert "stream 'threefry-legacy', seed 42, jax.random.uniform: jax.random.uniform, whose bits follow the CPU" \
        in report
    assert "stream 'threefry', seed 0, split(3): keyfan's stream itself" in report
    assert f"seed 42, {PORTABLE_PREFIX}gumbel: keyfan's portable draw" in report
    assert "'jax': '9.9.9'" in report and f"'jax': '{stored['versions']['jax']}'" in report
    assert mismatch_report(stored, values, values, _versions(), "AVX2") is None


def test_expected_values_per_isa_and_host():
    stored = json.loads(GOLDEN.read_text())
    recorded = stored["recorded_on"]
    # The JAX the values were recorded with: the ISA and host rules alone (an older JAX adds its own
    # notes, tested in test_older_jax_records_apply_in_their_range_only).
    recorded_jax = stored["versions"]["jax"]
    same_host, notes = expected(stored, "SSE4_2", recorded, recorded_jax)
    assert not notes and same_host["threefry"]["42"]["jax.random.orthogonal"] == \
        stored["values_by_isa"]["SSE4_2"]["threefry"]["42"]["jax.random.orthogonal"]
    other = "AVX2" if recorded != "AVX2" else "AVX512"
    other_host, notes = expected(stored, "AVX2", other, recorded_jax)
    assert "jax.random.orthogonal" not in other_host["threefry"]["42"]
    assert "jax.random.normal" in other_host["threefry"]["42"] and "not checked (a QR decomposition" in notes[0]
    unknown, notes = expected(stored, None, None, recorded_jax)
    assert "jax.random.normal" not in unknown["threefry"]["42"] and "not checked" in notes[0]


@pytest.mark.bitwise
@pytest.mark.parametrize("stream", STREAMS)
def test_golden_values_do_not_depend_on_the_global_flag(stream):
    values, _ = expected(json.loads(GOLDEN.read_text()), effective_isa(), host_isa())
    stored = values[stream]["42"]
    key = kf.key(42, stream)
    for flag in (True, False):
        with jax.threefry_partitionable(flag):
            assert _bits_of(jax.random.split(key, 3)) == stored["split(3)"]
            assert _bits_of(jax.random.bits(key, (8,))) == stored["bits(8)"]
            if "jax.random.normal" in stored:
                assert _bits_of(_jitted("normal")(key)) == stored["jax.random.normal"]


def test_older_jax_records_apply_in_their_range_only():
    by_isa = {isa: {"threefry": {"42": {"jax.random.normal": [2, isa]}}} for isa in ("AVX2", "AVX512")}
    stored = {"values": {"threefry": {"42": {"jax.random.cauchy": [1]}}}, "isa_dependent": {"jax.random.normal": "x"},
              "host_dependent": [], "recorded_on": "AVX512", "values_by_isa": by_isa,
              "older_jax": [{"jax": "<0.7", "why": "a test", "isa": "AVX512",
                             "values": {"threefry": {"42": {"jax.random.cauchy": [3], "jax.random.normal": [4]}}}}]}
    old, _ = expected(stored, "AVX512", "AVX512", "0.6.2")
    assert old["threefry"]["42"] == {"jax.random.cauchy": [3], "jax.random.normal": [4]}
    new, notes = expected(stored, "AVX512", "AVX512", "0.7.0")
    assert new["threefry"]["42"] == {"jax.random.cauchy": [1], "jax.random.normal": [2, "AVX512"]} and not notes
    other, notes = expected(stored, "AVX2", "AVX512", "0.6.2")  # an ISA-dependent entry of another ISA
    assert other["threefry"]["42"] == {"jax.random.cauchy": [3]} and "jax.random.normal" in notes[0]
    assert stored["values"]["threefry"]["42"]["jax.random.cauchy"] == [1]  # the stored file is not changed


def test_older_jax_records_name_only_jax_samplers_with_a_reason():
    """keyfan's own words and draws never move with JAX: only JAX's samplers may have records,
    each with the ISA its values were measured under."""
    stored = json.loads(GOLDEN.read_text())
    for record in stored.get("older_jax", ()):
        assert record["why"] and SpecifierSet(record["jax"]) and record["isa"] in stored["values_by_isa"]
        for stream, seeds in record["values"].items():
            for seed, entries in seeds.items():
                for entry in entries:
                    assert entry.startswith("jax.random."), entry
                    assert entry in stored["values"][stream][seed] or entry in stored["isa_dependent"], entry


if __name__ == "__main__":
    if sys.argv[1:] == ["--compute"]:
        print(json.dumps(compute()))
    elif sys.argv[1:] == ["--write"]:
        if host_isa() != "AVX512":  # a setting above the host's ISA is the host's: it cannot be recorded here
            sys.exit(f"record the golden values on an AVX-512 host (this one: {host_isa()})")
        golden = record({isa: _compute_under(isa) for isa in EMULATED}, host_isa())
        kept = {k: v for k, v in json.loads(GOLDEN.read_text()).items() if k not in golden}  # older_jax
        GOLDEN.write_text(json.dumps({**golden, **kept}, indent=1) + "\n")
        print(f"wrote {GOLDEN}: {len(golden['isa_dependent'])} ISA-dependent entries")
    else:
        sys.exit("usage: python -m tests.streams.test_golden --write | --compute")
