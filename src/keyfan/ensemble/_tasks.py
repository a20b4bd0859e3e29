"""What an ensemble's members output: the one home of the task names and their check.

* ``"classification"``: logits ``(K, B, C)``;
* ``"regression"``: point predictions ``(K, B, ...)``;
* ``"gaussian"``: mean-variance pairs ``(K, B, 2)``.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["TASKS", "Task", "check_task"]

Task = Literal["regression", "gaussian", "classification"]

TASKS: tuple[Task, ...] = ("regression", "gaussian", "classification")
"""Every task, in the order error messages list them."""


def check_task(task: object, *, allowed: tuple[Task, ...] = TASKS, what: str = "") -> Task:
    """``task`` if it is one of ``allowed``, else a ``ValueError`` naming the choices.

    Args:
      task: the value received.
      allowed: the tasks accepted here (all three by default).
      what: where it is used, for the message (``" for a metrics report"``).

    Returns:
      ``task``, typed as a :data:`Task`.

    Raises:
      ValueError: ``task`` is not one of ``allowed``.
    """
    for name in allowed:
        if task == name:
            return name
    raise ValueError(f"task must be one of {', '.join(map(repr, allowed))}{what}, got {task!r}.")
