"""Key flow for ``kf.vmap(randomness="error")``: which draws are the same for every example.

A one-level view of the audit engine (:mod:`keyfan._keyflow.flow`). Given the jaxpr of ONE
example (``jax.make_jaxpr`` on per-example abstract values) and, for each input, whether it is
mapped over the batch, :func:`draws` lists every random draw (the engine's
:class:`~keyfan._keyflow.flow.DrawSite`) with

* ``sources``: the inputs its key derives from (data dependence, through any primitive), and
* ``levels``: ``{0}`` if its key depends on a mapped input, i.e. differs between examples.

A draw whose levels are empty is shared by the whole batch: the broadcast-key bug when it was not
meant (``kf.vmap(..., randomness="error")`` raises on it), intended sharing when it is traced
inside ``kf.shared_randomness()`` (its ``name_stack`` says so). See the engine's docstring for
what counts as a draw and how calls, ``cond``, ``scan`` and ``while`` are followed; a draw in a
loop varies only if its key varies in every iteration, iteration 0 (the initial key) included.
"""

from __future__ import annotations

from collections.abc import Sequence

from keyfan._jaxinternals import core
from keyfan._keyflow.flow import DrawSite, analyze

__all__ = ["draws"]


def draws(jaxpr: core.ClosedJaxpr, varying: Sequence[bool], *,
          axis_names: Sequence[object] = ()) -> list[DrawSite]:
    """Every random draw of ``jaxpr``, with the inputs its key derives from.

    Args:
      jaxpr: the closed jaxpr of one example.
      varying: one flag per input of ``jaxpr``: True for inputs mapped over the batch.
      axis_names: names of the batch axes, whose ``axis_index`` varies per example.

    Returns:
      The draws in program order; ``0 in draw.levels`` when its key varies per example.
    """
    if len(varying) != len(jaxpr.jaxpr.invars):
        raise ValueError(f"varying has {len(varying)} flags for {len(jaxpr.jaxpr.invars)} inputs.")
    mapped = frozenset({0})
    analysis = analyze(jaxpr, [mapped if v else frozenset() for v in varying],
                       axis_levels={name: mapped for name in axis_names}, ledger=False)
    return list(analysis.sites)
