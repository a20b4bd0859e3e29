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
    return json.dumps(digests, sort_keys=True)


PRODUCTS = ("elementwise", "gemm")
"""Both forms of the layout-invariant step (``Trainer(products=...)``; the rule picks elementwise
for both widths here), each checked across every arrangement."""

if __name__ == "__main__":
    out = {f"hidden={h} products={p} {name}": run(h, products=p, **dict(s))
           for h in (32, 256) for p in PRODUCTS for name, s in ARRANGEMENTS.items()}
    print(json.dumps(out))
