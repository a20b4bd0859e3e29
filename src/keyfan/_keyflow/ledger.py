"""Which keys a traced function consumes, and where it consumes one twice.

A key is *consumed* by a draw (``random_bits``, ``random_gamma``, the bits of keyfan's inlined
hash) or by ``random_split``, as in JAX's key-reuse checker; ``fold_in`` derives a new key without
consuming its parent, so folding distinct data into one key many times is fine. Unlike JAX's
checker, a key that is both consumed and used as a ``fold_in`` parent is a reuse when the two can
meet: under the partitionable Threefry (keyfan's ``"threefry"``, JAX's default) ``fold_in(key, d)``
hashes the counter ``(0, d)`` under ``key``, which is exactly ``split(key, n)[d]`` for ``d < n``
and the hash behind value ``d`` of a draw from ``key`` (:meth:`Use.overlaps_fold`).

Keys are identified by value number (:class:`~keyfan._keyflow.values.Numbering`),
so a typed key and its raw data, or two identical derivations, are one key. The ledger records
the first use of every key and an :class:`Event` for every second one.

Uses inside one library call made from one source line (``jax.random.poisson`` and
``binomial`` compute two algorithms from one key and select between them) are the library's
business and never conflict with each other (:meth:`Use.same_library_call`).

Branches of a ``cond`` are alternatives: each runs on a :meth:`Ledger.fork` and the forks are
merged back, so a key drawn in both branches is drawn once.
"""

from __future__ import annotations

import dataclasses

from keyfan._keyflow.values import Numbering

__all__ = ["Event", "Ledger", "Use"]


@dataclasses.dataclass(frozen=True)
class Use:
    """One consumption (or derivation) of a key."""

    how: str
    """``"draw"``, ``"split"``, ``"bits"`` (keyfan's hash) or ``"fold_in"``."""
    location: str
    """``file:line (function)`` of the user's code, or ``""``."""
    name_stack: str
    api: str = ""
    """The random API the user called (``jax.random.normal``), or ``""``."""
    call: tuple[tuple[int, ...], int] | None = None
    """The call into a library the use happens in: the outermost equation around it (itself
    included) made from its own source line, as the call sites above it and its instance
    (``_source.call_instance``)."""
    count: int | None = None
    """Counters a split or draw hashes under the key (children, or values drawn); None if unknown."""
    data: int | None = None
    """The constant a ``fold_in`` folds in, or None if it is traced."""
    draw: int | None = None
    """The id of the draw this use is (``DrawSite.id``), or None for a split or a fold."""
    library: str = ""
    """The installed package whose code makes the use (``"diffrax"``), or ``""`` for the user's
    code (JAX's own functions count as the caller's)."""

    def overlaps_fold(self, fold: Use) -> bool:
        """True if this split or draw can hash the counter that ``fold`` (a ``fold_in`` of the same
        key) hashes: ``fold_in(key, d)`` is counter ``(0, d)``, as are child ``d`` of a split and
        value ``d`` of a draw. A constant ``d`` at or past the counters used cannot meet them
        (Flax folds 32-bit path hashes into the key it is given); a traced one may."""
        return fold.data is None or self.count is None or fold.data < self.count

    def same_library_call(self, other: Use) -> bool:
        """True if both uses happen inside one call into a library (``jax.random.poisson`` and
        ``binomial`` run two algorithms on one key and select per element); two calls from one
        line, as in ``normal(k) + normal(k)``, are two calls."""
        return self.call is not None and self.call == other.call and self.location == other.location


@dataclasses.dataclass(frozen=True)
class Event:
    """A misuse found by the ledger."""

    kind: str
    """``"key-reuse"``, ``"split-then-reuse"``, ``"fold-in-twice"``, ``"broadcast-key"`` or
    ``"loop-reuse"`` (a key consumed on every iteration of a loop)."""
    use: Use
    """The offending use."""
    first: Use | None = None
    """The earlier use of the same key, if any."""
    loop: str = ""
    """For ``"loop-reuse"``: the user's source line that made the loop."""


def _meets_more(fold: Use, than: Use) -> bool:
    """True if ``fold`` meets more counters of its parent than the fold ``than`` does: a traced
    datum may meet any, a constant ``d`` meets those from ``d`` up."""
    if than.data is None:
        return False
    return fold.data is None or fold.data < than.data


class Ledger:
    """First uses of keys, by value number, and the events found so far."""

    def __init__(self, numbering: Numbering, events: list[Event] | None = None) -> None:
        self.numbering = numbering
        self.uses: dict[int, Use] = {}
        self.folds: dict[int, Use] = {}
        self.parents: dict[int, Use] = {}
        """The ``fold_in`` on each parent key most likely to meet a split or draw of it (a traced
        datum, else the smallest constant), by the parent's value number."""
        self.events: list[Event] = [] if events is None else events
        self.log: list[tuple[str, int, Use]] = []
        """Every use recorded on this ledger, in order: ``(table, value number, use)``."""
        self.duplicates: set[int] = set()
        """Keys derived twice: their reuse is reported once, as the derivation."""

    def consume(self, vn: int, use: Use) -> bool:
        """Records that ``use`` consumes the key numbered ``vn``; True if it was used before
        (by a separate call)."""
        first = self.uses.get(vn)
        self.log.append(("uses", vn, use))
        if first is None:
            self.uses[vn] = use
            fold = self.parents.get(vn)
            if (fold is not None and use.overlaps_fold(fold) and not use.same_library_call(fold)
                    and not self._derived_twice(vn)):
                self.events.append(Event("key-reuse", use, fold))
            return False
        if use.same_library_call(first):
            return False  # jax.random.poisson runs two algorithms on one key and picks per element
        if not self._derived_twice(vn):
            kind = "split-then-reuse" if first.how == "split" else "key-reuse"
            self.events.append(Event(kind, use, first))
        return True

    def _derived_twice(self, vn: int) -> bool:
        return self.numbering.derives_from(vn, self.duplicates)

    def fold(self, vn: int, use: Use, parent: int | None = None) -> None:
        """Records that ``use`` derives the key numbered ``vn`` with ``fold_in`` from the key
        numbered ``parent``."""
        first = self.folds.get(vn)
        if first is None:
            self.folds[vn] = use
        elif not use.same_library_call(first):
            self.duplicates.add(vn)
            self.events.append(Event("fold-in-twice", use, first))
        self.log.append(("folds", vn, use))
        if parent is None:
            return
        known = self.parents.get(parent)
        if known is not None and not _meets_more(use, known):
            return  # the fold on record meets every counter this one could
        self.parents[parent] = use
        self.log.append(("parents", parent, use))
        consumed = self.uses.get(parent)
        if (consumed is not None and consumed.overlaps_fold(use) and not use.same_library_call(consumed)
                and not self._derived_twice(parent)):
            self.events.append(Event("key-reuse", use, consumed))

    def report(self, kind: str, use: Use, first: Use | None = None, loop: str = "") -> None:
        self.events.append(Event(kind, use, first, loop))

    def fork(self) -> Ledger:
        """A ledger for one alternative branch: the same history, its own new uses."""
        child = Ledger(self.numbering, self.events)
        child.uses = dict(self.uses)
        child.folds = dict(self.folds)
        child.parents = dict(self.parents)
        child.duplicates = self.duplicates
        return child

    def merge(self, branches: list[Ledger]) -> None:
        """Adopts the uses of alternative branches (each forked from this ledger)."""
        for branch in branches:
            for table, vn, use in branch.log:
                getattr(self, table).setdefault(vn, use)
                self.log.append((table, vn, use))
