"""keyfan's named random streams. The rest of keyfan never branches on a stream's name."""

from __future__ import annotations

from keyfan.streams._base import MAX_DRAW_SIZE as MAX_DRAW_SIZE
from keyfan.streams._base import MAX_FAN_OUT as MAX_FAN_OUT
from keyfan.streams._base import Stream as Stream
from keyfan.streams._base import Words as Words
from keyfan.streams._threefry2x32 import HASH_SCOPE as HASH_SCOPE  # read by the key-flow engine (keyfan._keyflow)
from keyfan.streams.threefry import ThreefryStream
from keyfan.streams.threefry_legacy import ThreefryLegacyStream

__all__ = ["DEFAULT_STREAM", "STREAMS", "Stream", "get_stream"]

STREAMS: dict[str, Stream] = {s.name: s for s in (ThreefryStream(), ThreefryLegacyStream())}
"""Every stream keyfan knows, by name."""

DEFAULT_STREAM = "threefry"
"""The stream of ``kf.key(seed)`` and of raw or JAX-typed keys when no ``stream=`` is given."""


def get_stream(stream: str | Stream) -> Stream:
    """The stream named ``stream``: one place that turns a name into a stream and checks it.

    Args:
      stream: a stream name (``"threefry"`` or ``"threefry-legacy"``), or a :class:`Stream`,
        returned as it is.

    Returns:
      The :class:`Stream` of that name.

    Raises:
      TypeError: ``stream`` is neither a string nor a stream.
      ValueError: no stream has that name (the message lists the names).

    Examples:
      >>> from keyfan.streams import get_stream
      >>> get_stream("threefry-legacy").size_dependent
      True
    """
    if isinstance(stream, Stream):
        return stream
    if not isinstance(stream, str):
        raise TypeError(f"stream must be a stream name (str), got {type(stream).__name__} {stream!r}.")
    try:
        return STREAMS[stream]
    except KeyError:
        names = ", ".join(repr(n) for n in STREAMS)
        raise ValueError(f"stream must be one of {names}; got {stream!r}.") from None
