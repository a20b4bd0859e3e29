"""keyfan: per-example randomness in JAX that is correct, reproducible and fast.

``import keyfan as kf`` needs only jax and numpy. ``kf.Ensemble``, ``kf.shared_vmap`` and
``kf.ensemble`` load Flax, Optax and Orbax on first use (``pip install 'keyfan[flax]'``).
"""

from typing import TYPE_CHECKING

from keyfan import transforms as transforms
from keyfan._audit import AuditFinding as AuditFinding
from keyfan._audit import AuditKind as AuditKind
from keyfan._audit import AuditReport as AuditReport
from keyfan._audit import AuditTraceError as AuditTraceError
from keyfan._audit import IndependenceReport as IndependenceReport
from keyfan._audit import audit as audit
from keyfan._audit import check_independent as check_independent
from keyfan._keyflow.errors import SharedRandomnessError as SharedRandomnessError
from keyfan._keyflow.errors import SharedRandomnessWarning as SharedRandomnessWarning
from keyfan._sanitize import sanitize as sanitize
from keyfan._sanitize import sanitize_from_environment as _sanitize_from_environment
from keyfan._version import __version__ as __version__
from keyfan._vmap import Randomness as Randomness
from keyfan._vmap import vmap as vmap
from keyfan.keys import at as at
from keyfan.keys import example_keys as example_keys
from keyfan.keys import fan_out as fan_out
from keyfan.keys import key as key
from keyfan.keys import named as named
from keyfan.keys import step as step
from keyfan.keys import stream_of as stream_of
from keyfan.sample import bernoulli as bernoulli
from keyfan.sample import bits as bits
from keyfan.sample import categorical as categorical
from keyfan.sample import gumbel as gumbel
from keyfan.sample import normal as normal
from keyfan.sample import poisson as poisson
from keyfan.sample import randint as randint
from keyfan.sample import truncated_normal as truncated_normal
from keyfan.sample import uniform as uniform
from keyfan.scopes import shared_randomness as shared_randomness
from keyfan.transforms import dropout as dropout

if TYPE_CHECKING:  # what the lazy names below are, for type checkers (nothing is imported at run time)
    from keyfan import ensemble as ensemble
    from keyfan.ensemble import Ensemble as Ensemble
    from keyfan.ensemble import shared_vmap as shared_vmap

# Names served by the optional ``flax`` extra, loaded on first use (PEP 562).
_LAZY = {"ensemble": None, "Ensemble": "Ensemble", "shared_vmap": "shared_vmap"}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'keyfan' has no attribute {name!r}")
    import importlib

    module = importlib.import_module("keyfan.ensemble")
    attribute = _LAZY[name]
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


# The eager, core names. ``Ensemble``, ``shared_vmap`` and ``ensemble`` stay out of it, so that
# ``from keyfan import *`` works without Flax; they are documented beside it.
__all__ = [
    "AuditFinding",
    "AuditKind",
    "AuditReport",
    "AuditTraceError",
    "IndependenceReport",
    "Randomness",
    "SharedRandomnessError",
    "SharedRandomnessWarning",
    "at",
    "audit",
    "bernoulli",
    "bits",
    "categorical",
    "check_independent",
    "dropout",
    "example_keys",
    "fan_out",
    "gumbel",
    "key",
    "named",
    "normal",
    "poisson",
    "randint",
    "sanitize",
    "shared_randomness",
    "step",
    "stream_of",
    "transforms",
    "truncated_normal",
    "uniform",
    "vmap",
]

_sanitize_from_environment()
