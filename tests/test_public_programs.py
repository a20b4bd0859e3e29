"""The sanitizer and the whole-program audit on programs no one here wrote
(``tests/_public_programs.py``): no miss, no false alarm, no crash, and the same bits with the
check on."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import keyfan as kf
from tests._public_programs import PROGRAMS


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree) if isinstance(x, jax.Array)]


@pytest.mark.bitwise
@pytest.mark.slow  # 34 programs, several with NUTS, SDE solves and Flax/Haiku models: about 2 CPU-minutes
@pytest.mark.parametrize("program", PROGRAMS, ids=[p.name for p in PROGRAMS])
def test_sanitizer_on_public_programs(program):
    fn, args = program.build()
    if program.sanitize:
        with pytest.raises(kf.SharedRandomnessError) as info, kf.sanitize():
            fn(*args)
        assert "draws the same values for every example" in str(info.value)
        return
    expected = _leaves(fn(*args))
    fn, args = program.build()
    with kf.sanitize():
        got = _leaves(fn(*args))
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("program", PROGRAMS, ids=[p.name for p in PROGRAMS])
def test_whole_program_audit_on_public_programs(program):
    fn, args = program.build()
    report = kf.audit(fn, *args, in_axes=None)
    assert {f.kind.value for f in report.problems} == set(program.audit), report


def test_the_corpus_is_large_and_public():
    public = [p for p in PROGRAMS if p.source.startswith("https://")]
    assert len(public) >= 25
    assert sum(p.sanitize for p in PROGRAMS) >= 8 and sum(not p.sanitize and not p.audit for p in PROGRAMS) >= 15
