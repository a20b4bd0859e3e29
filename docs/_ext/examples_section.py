"""A griffe extension for the API reference, so that docstrings written for ``help()`` and an
IDE also render cleanly on the site:

* Google style's ``Example:`` heading, which griffe reads as an admonition (markdown, so ``>>>``
  became quotes), becomes the ``Examples:`` section, rendered as code;
* Sphinx roles (``:func:`keyfan.at```, ``:class:`~keyfan.AuditReport```), which markdown prints
  as raw text, become inline code (``keyfan.at``, ``AuditReport``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)
_ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|exc|obj):`~?([^`]+)`")


def _role(match: re.Match[str]) -> str:
    target = match.group(1)
    shown = target.rsplit(".", 1)[-1] if match.group(0).split("`")[1].startswith("~") else target
    return f"`{shown}`"


def clean(text: str) -> str:
    """The docstring as the site renders it: ``Examples:`` sections, roles as inline code."""
    return _ROLE.sub(_role, _EXAMPLE.sub(r"\1Examples:", text))


class ExampleSections(griffe.Extension):
    """Applies :func:`clean` to every docstring griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = clean(obj.docstring.value)
