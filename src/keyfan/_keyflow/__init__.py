"""The key-flow engine: which random draws of a JAX program are the same for every example.

One engine with three thin users: ``kf.audit`` (a static report of a whole program),
``kf.vmap(randomness="error")`` (one check per signature) and ``kf.sanitize()`` (every vmap of a
running program, checked where JAX batches it). One concept per module:

* ``args``: a call's arguments flattened and resolved against ``in_axes`` (the one resolver);
* ``example``: the jaxpr of ONE example of a function (the one "trace one example" function);
* ``values``, ``ledger``, ``hashes``, ``rules``, ``loops``, ``flow``: the analysis of a jaxpr
  (marks and value numbers, key consumption, keyfan's inlined hash, the rule table, loops, the
  loop over equations);
* ``draws``: the one-level view used by ``kf.vmap``;
* ``batching``: the interposition in JAX's batching machinery used by ``kf.sanitize`` and by
  whole-program audits (a draw whose key is not mapped over the vmap it sits in);
* ``source``: the user's source line of an equation or a frame;
* ``primitives``: the one table of draw primitives and what declares a draw shared;
* ``findings``: the one finding type (``kf.AuditFinding``) and the wording of every rule.

Users import what they need from these modules; the package itself exports only the one-level
view that ``kf.vmap`` uses.
"""

from keyfan._keyflow.draws import draws as draws
