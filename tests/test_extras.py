"""keyfan._extras: an optional dependency older than keyfan's declared floor is refused up front.

``kf.Ensemble`` and ``keyfan.ensemble`` need the ``flax`` extra at its declared versions
(``pyproject.toml``: ``flax>=0.12.6``); an older Flax (pip picks flax 0.10.6 next to JAX 0.5.3)
used to fail deep inside (no ``nnx.view``). Importing them now raises one ImportError naming the
floor and the installed version. On the lowest set (``python3 dev.py test --compat``) this runs
against the real old Flax.
"""

from __future__ import annotations

import importlib.metadata
import re

import pytest

import keyfan as kf
from keyfan import _extras


def _floor_is_met(distribution: str) -> bool:
    floor = _extras.declared_floor(distribution)
    return _extras._release(importlib.metadata.version(distribution)) >= _extras._release(floor)


@pytest.mark.compat
def test_the_floors_are_the_declared_ones():
    requirements = importlib.metadata.requires("keyfan")
    for distribution in ("flax", "optax", "orbax-checkpoint", "jax", "numpy"):
        floor = _extras.declared_floor(distribution)
        assert any(r.startswith(distribution) and f">={floor}" in r for r in requirements), (distribution, floor)


@pytest.mark.compat
def test_kf_ensemble_works_or_names_the_flax_floor():
    floor = _extras.declared_floor("flax")
    assert floor is not None
    installed = importlib.metadata.version("flax")
    if _floor_is_met("flax") and _floor_is_met("optax"):
        assert kf.Ensemble.__name__ == "Ensemble"
        return
    expected = (re.escape(f"keyfan.ensemble needs flax>={floor}") + r".*"
                + re.escape(f"the installed flax is {installed}"))
    for get in (lambda: kf.Ensemble, lambda: kf.shared_vmap, lambda: importlib.import_module("keyfan.ensemble")):
        with pytest.raises(ImportError, match=expected):
            get()


@pytest.mark.parametrize(("distribution", "module"), [("flax", "flax.linen"), ("optax", "optax"),
                                                      ("orbax-checkpoint", "orbax.checkpoint")])
def test_a_version_below_the_floor_is_refused_naming_both(monkeypatch, distribution, module):
    floor = _extras.declared_floor(distribution)
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.0.1" if name == distribution else real(name))
    with pytest.raises(ImportError) as info:
        _extras.require(module, "keyfan.ensemble", at_floor=True)
    message = str(info.value)
    assert message.startswith(f"keyfan.ensemble needs {distribution}>={floor} ")
    assert f"the installed {distribution} is 0.0.1" in message
    assert "pip install 'keyfan[flax]'" in message
    assert info.value.name == module
    # Teaching code that asks for no floor (keyfan.recipes' plain flax.linen) still gets the module.
    if distribution == "flax":
        assert _extras.require(module, "keyfan.recipes").__name__ == module


def test_a_version_at_the_floor_or_a_later_prerelease_is_accepted(monkeypatch):
    floor = _extras.declared_floor("flax")
    real = importlib.metadata.version
    for version in (floor, floor + ".post1", "0.13.0rc1", "1.0"):
        monkeypatch.setattr(importlib.metadata, "version", lambda name, v=version: v if name == "flax" else real(name))
        _extras.check_floor("flax", "keyfan.ensemble")


@pytest.mark.parametrize(("text", "expected"), [("0.12.6", (0, 12, 6)), ("0.10", (0, 10)), ("1.0rc1", (1, 0)),
                                                ("2.4.6.post1", (2, 4, 6)), ("dev", ())])
def test_release_numbers(text, expected):
    assert _extras._release(text) == expected
