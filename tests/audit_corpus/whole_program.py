"""Whole programs audited as users run them (``in_axes=None``): the broadcast key hides in a vmap
inside the step -- ``jax.vmap`` in a jitted step, linen ``nn.vmap``, ``nnx.vmap``,
``eqx.filter_vmap``, three nested levels, the recipes' patterns -- beside each program's fix
and other correct real programs (``tests/_real_programs.py``, written for keyfan's tests)."""

import jax
import jax.numpy as jnp

from tests._real_programs import BUGGY, CORRECT
from tests.audit_corpus._case import CASES, KEY, Case, bug, noisy

XS = jnp.zeros((4, 3))


@bug(XS, KEY, in_axes=None, kinds=("shared-draw",),
     why="A broadcast key inside a jax.vmap that is part of the audited program.")
def inner_vmap_with_broadcast_key(xs, key):
    return jax.vmap(noisy, in_axes=(0, None))(xs, key)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").replace("__", "_")


for _name, _build in BUGGY.items():
    _f, _args = _build()
    CASES.append(Case(f"whole_program.bug_{_slug(_name)}", _f, _args, None, True,
                      f"{_name}: the key is not mapped over a vmap inside the step.", frozenset({"shared-draw"})))
for _name, _build in CORRECT.items():
    _f, _args = _build()
    CASES.append(Case(f"whole_program.ok_{_slug(_name)}", _f, _args, None, False,
                      f"{_name}: every per-example draw has its own key, or the sharing is declared."))
