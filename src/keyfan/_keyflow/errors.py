"""The error and the warning raised for a random draw shared by every example of a batch."""

from __future__ import annotations

__all__ = ["SharedRandomnessError", "SharedRandomnessWarning"]


class SharedRandomnessError(ValueError):
    """A random draw is the same for every example of a batch: its key is not mapped over a vmap
    it sits in (``kf.vmap(..., randomness="error")``, ``kf.sanitize()``)."""


class SharedRandomnessWarning(UserWarning):
    """``kf.sanitize(action="warn")``: a random draw is the same for every example of a batch."""


# Shown as users import them (``keyfan.SharedRandomnessError`` in pytest's summary line), not as
# the private module that defines them.
SharedRandomnessError.__module__ = "keyfan"
SharedRandomnessWarning.__module__ = "keyfan"
