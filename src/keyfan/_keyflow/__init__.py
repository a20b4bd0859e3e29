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
* ``wording``: how findings are worded and fixed.
"""

from keyfan._keyflow.args import Bound as Bound
from keyfan._keyflow.args import Leaf as Leaf
from keyfan._keyflow.args import arg_name as arg_name
from keyfan._keyflow.args import bind as bind
from keyfan._keyflow.args import check_axes as check_axes
from keyfan._keyflow.args import check_key_argnums as check_key_argnums
from keyfan._keyflow.args import is_typed_key as is_typed_key
from keyfan._keyflow.args import leaf_axes as leaf_axes
from keyfan._keyflow.args import parameter_names as parameter_names
from keyfan._keyflow.draws import Draw as Draw
from keyfan._keyflow.draws import draws as draws
from keyfan._keyflow.flow import Analysis as Analysis
from keyfan._keyflow.flow import DrawSite as DrawSite
from keyfan._keyflow.flow import analyze as analyze
from keyfan._keyflow.hashes import HASH_SCOPE as HASH_SCOPE
from keyfan._keyflow.ledger import Event as Event
from keyfan._keyflow.ledger import Use as Use
from keyfan._keyflow.source import in_scope as in_scope
from keyfan._keyflow.values import key_like as key_like
