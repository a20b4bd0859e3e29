"""Optional dependencies: import one, or say which ``pip install 'keyfan[extra]'`` brings it.

The core (keys, samplers, ``kf.vmap``, transforms, audit) needs only jax and numpy. Ensembles and
Flax interop need the ``flax`` extra (flax, optax, orbax-checkpoint); the command line needs the
``cli`` extra (typer, rich, matplotlib).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
from types import ModuleType

EXTRAS: dict[str, str] = {
    "flax": "flax",
    "optax": "flax",
    "orbax": "flax",
    "typer": "cli",
    "rich": "cli",
    "matplotlib": "cli",
}
"""Top-level module -> the keyfan extra that installs it."""

DISTRIBUTIONS: dict[str, str] = {"orbax": "orbax-checkpoint"}
"""Top-level module -> its distribution's name on the package index, where the two differ."""


def _release(version: str) -> tuple[int, ...]:
    """The release numbers of a version string (``"0.12.6"`` -> ``(0, 12, 6)``; ``"1.0rc1"`` -> ``(1, 0)``)."""
    found = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in found.group().split(".")) if found else ()


def declared_floor(distribution: str) -> str | None:
    """The lowest version of ``distribution`` that keyfan's package metadata (``pyproject.toml``)
    declares (``"0.12.6"`` for flax), or None if it declares none or keyfan is not installed."""
    try:
        requirements = importlib.metadata.requires("keyfan") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        if name is None or name.group().lower().replace("_", "-") != distribution:
            continue
        floor = re.search(r">=\s*([0-9][^,;\s]*)", requirement)
        if floor is not None:
            return floor.group(1)
    return None


def check_floor(module: str, feature: str) -> None:
    """Raises an ImportError if the installed distribution of ``module`` is older than keyfan
    declares (``flax>=0.12.6`` for the ``flax`` extra): such a version fails deep inside, so it
    is refused up front, naming the floor and the installed version. Not installed: no error
    (:func:`require` says which extra installs it)."""
    top = module.partition(".")[0]
    distribution = DISTRIBUTIONS.get(top, top)
    floor = declared_floor(distribution)
    try:
        installed = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return
    if floor is not None and _release(installed) < _release(floor):
        extra = EXTRAS.get(top, top)
        raise ImportError(
            f"{feature} needs {distribution}>={floor} (the lowest version keyfan supports); the installed "
            f"{distribution} is {installed}. Upgrade it with pip install 'keyfan[{extra}]' (or "
            f"pip install '{distribution}>={floor}').", name=module)


def require(module: str, feature: str, *, at_floor: bool = False) -> ModuleType:
    """Imports ``module``, or raises an ImportError naming the extra that installs it.

    Args:
      module: a dotted module name whose top-level package is a key of ``EXTRAS``.
      feature: what needs it, for the message (``"keyfan.ensemble"``).
      at_floor: also refuse a version older than keyfan's declared floor (:func:`check_floor`):
        for features that need the extra at its declared versions (``keyfan.ensemble``), not
        for teaching code that runs on older ones (``keyfan.recipes``' plain ``flax.linen``).

    Returns:
      The imported module.

    Raises:
      ImportError: ``module`` is not installed (the message names ``pip install 'keyfan[<extra>]'``),
        or (``at_floor``) its version is older than keyfan's declared floor (the message names
        the floor and the installed version; see :func:`check_floor`).
    """
    top = module.partition(".")[0]
    if at_floor:
        check_floor(module, feature)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or err.name.partition(".")[0] != top:
            raise  # the module exists but something it imports is missing: not ours to rename
        extra = EXTRAS[top]
        raise ImportError(f"{feature} needs {top}, which is not installed. Install it with "
                          f"pip install 'keyfan[{extra}]' (or 'keyfan[all]').", name=module) from err
