"""Command-line arguments of ``keyfan audit``, parsed into what :func:`keyfan.audit` takes.

* a target ``path/to/file.py:function`` (or ``file.py:Class.method``);
* ``--arg`` specs, one per positional argument, with per-example shapes: ``float32[8,3]``,
  ``int32[]`` (a scalar), ``key`` (a typed key), ``key[4]`` (an array of keys), ``rawkey``
  (``uint32[2]`` key data), ``rawkey[4]``;
* ``--in-axes`` specs, one per vmap level, outermost first, as Python literals: ``0``,
  ``"0,None"``, ``"(None, {'w': 0})"``, or ``none`` for no vmap.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from keyfan._keyflow.args import check_axes

__all__ = ["load_function", "parse_arg", "parse_in_axes"]

_SPEC = re.compile(r"^\s*(?P<kind>[A-Za-z][A-Za-z0-9_]*)\s*(?:\[(?P<shape>[0-9,\s]*)\])?\s*$")
_ARG_RULE = ("an --arg is a dtype with a per-example shape, e.g. float32[8,3] or int32[] (a scalar), "
             "or key, key[4] (typed keys), rawkey, rawkey[4] (uint32 key data)")


def parse_arg(spec: str) -> jax.ShapeDtypeStruct:
    """The abstract per-example argument described by ``spec``."""
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(f"--arg {spec!r} is not understood: {_ARG_RULE}.")
    kind, shape_text = match["kind"], match["shape"]
    shape = tuple(int(s) for s in shape_text.split(",") if s.strip()) if shape_text else ()
    if kind == "key":
        return jax.ShapeDtypeStruct(shape, jax.random.key(0).dtype)
    if kind == "rawkey":
        return jax.ShapeDtypeStruct((*shape, 2), np.uint32)
    if shape_text is None:
        raise ValueError(f"--arg {spec!r} has no shape: {_ARG_RULE}; write {kind}[] for a scalar.")
    try:
        dtype = np.dtype(kind)
    except TypeError as err:
        raise ValueError(f"--arg {spec!r}: {kind!r} is not a NumPy dtype; {_ARG_RULE}.") from err
    return jax.ShapeDtypeStruct(shape, dtype)


def parse_in_axes(specs: Sequence[str]) -> Any:
    """``in_axes`` for :func:`keyfan.audit`: 0 when none is given, one level per spec."""
    if not specs:
        return 0
    if len(specs) == 1 and specs[0].strip().lower() == "none":
        return None
    levels = []
    for spec in specs:
        try:
            value = ast.literal_eval(spec.strip()) if spec.strip().lower() != "none" else None
        except (ValueError, SyntaxError) as err:
            raise ValueError(
                f"--in-axes {spec!r} is not a Python literal; write it as for jax.vmap, e.g. 0, "
                f"\"0,None\" or \"(None, {{'w': 0}})\" (repeat --in-axes for nested vmaps)."
            ) from err
        levels.append(check_axes("--in-axes", value))
    return levels[0] if len(levels) == 1 else levels


def load_function(target: str) -> Callable[..., Any]:
    """The function named by ``path/to/file.py:function`` (the file is imported as a module)."""
    path_text, sep, attr = target.rpartition(":")
    if not sep or not path_text or not attr:
        raise ValueError(f"target {target!r} must be path/to/file.py:function, e.g. model.py:loss.")
    path = Path(path_text)
    if not path.is_file():
        raise ValueError(f"target {target!r}: no file {str(path)!r}; give the path of a Python file.")
    name = f"_keyfan_audit_target_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"target {target!r}: {str(path)!r} cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.resolve().parent))
    found: Any = module
    for part in attr.split("."):
        if not hasattr(found, part):
            raise ValueError(f"target {target!r}: {str(path)!r} has no attribute {attr!r}.")
        found = getattr(found, part)
    if not callable(found):
        raise ValueError(f"target {target!r}: {attr!r} is a {type(found).__name__}, not a function.")
    return found
