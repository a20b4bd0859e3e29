"""Run in a fresh process (XLA_FLAGS set by the caller: an ISA setting and 4 CPU devices): train
8 members on every arrangement and layout and print, as JSON, a digest of each result, for
tests/test_ensemble_arrangements.py.

    python -m tests._ensemble_isa
"""

from __future__ import annotations

import json

ARRANGEMENTS = {"default": {}, "member_group=2": {"member_group": 2}, "member_group=4": {"member_group": 4},
                "mesh 4x1": {"mesh": (4, 1)}, "mesh 2x2": {"mesh": (2, 2)}, "mesh 1x4": {"mesh": (1, 4)}}
"""Settings (beside the defaults) that must all give the bits of one device's default: 8 members
one per loop step, two or four per step, and 2 members on each of 4 devices, 4 on each of 2 with
the data on 2, all 8 on each of 4 with the data on 4 (4 chunks throughout)."""


def run(hidden: int, **settings) -> str:
    from tests._ensemble_layout import run as train

    mesh = settings.pop("mesh", (1, 1))
    digests = train(4, mesh[0], mesh[1], 4, hidden=hidden, **settings)
    digests.pop("products")  # the form asked for (or the rule's choice): a setting, not a result
    return json.dumps(digests, sort_keys=True)


PRODUCTS = ("elementwise", "gemm")
"""Both forms of the layout-invariant step (``Trainer(products=...)``; the rule picks elementwise
for both widths here), each checked across every arrangement."""

ON_THE_LAYOUT_TEST = (32, "elementwise", ("mesh 4x1", "mesh 2x2", "mesh 1x4"))
"""Width, products and arrangements this process leaves to tests/test_ensemble_layout.py, which
runs them under the same ISA settings (it is a ``bitwise`` test: natively and in the ISA matrix)
with the same model, data, chunks and steps (``tests._ensemble_layout.run``): the member x data
layouts 4x1, 2x2 and 1x4 of its 8-device process, at the width 32 where the rule of
``products="auto"`` runs ``"elementwise"`` (that test asserts the choice). Compiling them here
again cost 38 CPU-s per ISA setting."""


def cases() -> list[tuple[int, str, str]]:
    """``(hidden, products, arrangement)`` of every run of this process."""
    hidden, products, left = ON_THE_LAYOUT_TEST
    return [(h, p, name) for h in (32, 256) for p in PRODUCTS for name in ARRANGEMENTS
            if not (h == hidden and p == products and name in left)]


if __name__ == "__main__":
    out = {f"hidden={h} products={p} {name}": run(h, products=p, **dict(ARRANGEMENTS[name])) for h, p, name in cases()}
    print(json.dumps(out))
