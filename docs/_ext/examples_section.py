"""A griffe extension for the API reference: keyfan's docstrings head their doctests with Google
style's ``Example:``, which griffe reads as an admonition (markdown, so ``>>>`` became quotes);
this makes it the ``Examples:`` section, rendered as code."""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


class ExampleSections(griffe.Extension):
    """Renames every docstring's ``Example:`` heading to ``Examples:``."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
