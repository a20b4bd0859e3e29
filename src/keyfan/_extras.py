"""Optional dependencies: import one, or say which ``pip install 'keyfan[extra]'`` brings it.

The core (keys, samplers, ``kf.vmap``, transforms, audit) needs only jax and numpy. Ensembles and
Flax interop need the ``flax`` extra (flax, optax, orbax-checkpoint); the command line needs the
``cli`` extra (typer, rich, matplotlib).
"""

from __future__ import annotations

import importlib
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


def require(module: str, feature: str) -> ModuleType:
    """Imports ``module``, or raises an ImportError naming the extra that installs it.

    Args:
      module: a dotted module name whose top-level package is a key of ``EXTRAS``.
      feature: what needs it, for the message (``"keyfan.ensemble"``).

    Returns:
      The imported module.

    Raises:
      ImportError: ``module`` is not installed; the message names ``pip install 'keyfan[<extra>]'``.
    """
    top = module.partition(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or err.name.partition(".")[0] != top:
            raise  # the module exists but something it imports is missing: not ours to rename
        extra = EXTRAS[top]
        raise ImportError(f"{feature} needs {top}, which is not installed. Install it with "
                          f"pip install 'keyfan[{extra}]' (or 'keyfan[all]').", name=module) from err
