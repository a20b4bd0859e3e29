"""What the key-flow analysis knows about one value of a traced function.

Each value of the jaxpr carries two facts, computed together in one pass:

* a :class:`Mark`: the vmap levels the value varies over, the function inputs and closed-over
  keys it derives from, and the random draws whose results flow into it (data dependence);
* a value number (an ``int`` from :class:`Numbering`): two values with the same number are equal
  in every run, because they are the same deterministic function of the same inputs. Value
  numbers are what make key reuse visible: ``random_wrap(raw)`` and ``raw``, or two
  ``fold_in(key, 1)``, have one number, so two draws from them are two draws from one key.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable
from typing import Any, NamedTuple

import jax
import numpy as np

from keyfan._checks import is_typed_key
from keyfan._jaxinternals import core

__all__ = ["EMPTY", "Mark", "Numbering", "Val", "content_key", "join", "key_like"]

_MAX_CONTENT = 4096
"""Constants up to this many elements are numbered by content."""


class Mark(NamedTuple):
    """Data-dependence facts about one value; every field only grows along the data flow."""

    levels: frozenset[int] = frozenset()
    """vmap levels (0 = outermost) over which the value differs between examples."""
    sources: frozenset[int] = frozenset()
    """Indices of the traced function inputs it derives from."""
    consts: frozenset[int] = frozenset()
    """Ids of closed-over key-like constants it derives from."""
    draws: frozenset[int] = frozenset()
    """Ids of the random draws whose results it derives from."""


EMPTY = Mark()


def join(marks: Iterable[Mark]) -> Mark:
    """The mark of a value computed from values with these marks (fieldwise union)."""
    marks = list(marks)
    if not marks:
        return EMPTY
    if len(marks) == 1:
        return marks[0]
    return Mark(*(frozenset().union(*field) for field in zip(*marks, strict=True)))


class Val(NamedTuple):
    """One value: its mark and its value number."""

    mark: Mark
    vn: int


class Numbering:
    """Value numbering by hash-consing: an expression seen twice gets the same number.

    Numbers are small ints, and the expression of a number refers to its inputs by number, so
    hashing stays shallow however deep the computation (the 20 inlined Threefry rounds).
    """

    def __init__(self) -> None:
        self._ids: dict[Hashable, int] = {}
        self.inputs: list[tuple[int, ...]] = []
        """The input numbers of each number's expression (empty for leaves)."""
        self.copies: set[int] = set()
        """Numbers of arrays whose elements are copies of one another (a broadcast key)."""

    def intern(self, key: Hashable, inputs: Iterable[int] = ()) -> int:
        """The number of the expression ``key`` whose operands are the numbers ``inputs``."""
        vn = self._ids.get(key)
        if vn is None:
            vn = self._ids[key] = len(self.inputs)
            self.inputs.append(tuple(inputs))
        return vn

    def fresh(self, inputs: Iterable[int] = ()) -> int:
        """A number equal to no other."""
        self.inputs.append(tuple(inputs))
        return len(self.inputs) - 1

    def literal(self, literal: core.Literal) -> int:
        """Equal literals (same dtype, shape and bits) get one number."""
        try:
            value = np.asarray(literal.val)
            return self.intern(("literal", str(literal.aval), value.tobytes()))
        except (TypeError, ValueError):
            return self.fresh()

    def derives_from(self, vn: int, targets: Collection[int]) -> bool:
        """True if the expression of ``vn`` contains one of ``targets``."""
        if not targets:
            return False
        seen: set[int] = set()
        todo = [vn]
        while todo:
            v = todo.pop()
            if v in targets:
                return True
            if v not in seen:
                seen.add(v)
                todo.extend(self.inputs[v])
        return False


def key_like(aval: Any) -> bool:
    """A typed key array, or uint32 data whose last axis has the two words of a raw key."""
    dtype = getattr(aval, "dtype", None)
    if dtype is None:
        return False
    if is_typed_key(aval):
        return True
    return np.dtype(dtype) == np.uint32 and tuple(getattr(aval, "shape", ()))[-1:] == (2,)


def content_key(value: Any) -> Hashable | None:
    """A constant's dtype, shape and bytes (key data for typed keys), or None if too large."""
    try:
        if is_typed_key(value):
            data = np.asarray(jax.random.key_data(value))
            return ("const-key", str(value.dtype), data.shape, data.tobytes())
        array = np.asarray(value)
    except (TypeError, ValueError):
        return None
    if array.size > _MAX_CONTENT or array.dtype == object:
        return None
    return ("const-value", str(array.dtype), array.shape, array.tobytes())
