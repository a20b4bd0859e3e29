"""A checkpoint write that fails on the disk is reported once, by the exception :func:`save` raises.

A full disk or a directory made read-only fails more than the save: orbax's writer threads,
its asyncio tasks and tensorstore's completion callbacks fail with it, and each reports its
own copy of the error on stderr, before or after the save's one-line error:

- a writer thread's exception (``threading.excepthook``) or its ``absl`` log record;
- tensorstore's callbacks into orbax's event loop, which has closed by then: ``RuntimeError:
  Event loop is closed`` through ``sys.unraisablehook`` (14-18 of them per failed save);
- a task whose exception nobody retrieved: asyncio's ``Task exception was never retrieved``
  log record, written when the task is collected (at interpreter exit when the save's
  exception keeps its frames alive).

:func:`reported_once` silences these echoes while the save runs and, on failure, lets the
threads the save started end and collects the abandoned tasks before the error propagates;
:func:`silence_echoes_for_the_process` keeps them silent until the process exits (for a
command line tool that has printed the error and is ending). Only echoes are dropped: a disk
error (errno ENOSPC, EROFS, EACCES or EDQUOT, itself, chained, or named in the message) or
the closed-loop ``RuntimeError``; any other exception or log record goes through as before.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["os_error", "reported_once", "silence_echoes_for_the_process"]

_DISK_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT)
_LOGGERS = ("absl", "asyncio")


def os_error(err: BaseException | None) -> OSError | None:
    """The disk's ``OSError`` behind ``err``: ``err`` itself when it is an ``OSError``, else the
    first one in its ``__cause__``/``__context__`` chain, else an ``OSError`` built from the first
    message in the chain that names ENOSPC, EROFS, EACCES or EDQUOT (orbax and tensorstore wrap
    a full disk in a ``ValueError`` whose message carries the errno); None if there is none."""
    for cause in _chain(err):
        if isinstance(cause, OSError):
            return cause
        text = str(cause)
        for code in _DISK_ERRNOS:
            if errno.errorcode[code] in text or os.strerror(code) in text:
                return OSError(code, os.strerror(code))
    return None


def _chain(err: BaseException | None) -> Iterator[BaseException]:
    """``err``, then its ``__cause__`` (else ``__context__``), and so on, each once."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _is_echo(exc: BaseException | None) -> bool:
    """``exc`` is a disk error or a callback's wake-up of orbax's closed event loop."""
    if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
        return True
    return os_error(exc) is not None


def _not_an_echo(record: logging.LogRecord) -> bool:
    """A logging filter: drops a record that carries (or, without ``exc_info``, names) an echo."""
    err = record.exc_info[1] if record.exc_info else None
    return not _is_echo(err if err is not None else Exception(record.getMessage()))


def _silence() -> Callable[[], None]:
    """Installs the filters on the three channels; returns the function that removes them."""
    thread_hook, unraisable_hook = threading.excepthook, sys.unraisablehook

    def on_thread_exception(args: threading.ExceptHookArgs) -> None:
        if not _is_echo(args.exc_value):
            thread_hook(args)

    def on_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
        if not _is_echo(unraisable.exc_value):
            unraisable_hook(unraisable)

    threading.excepthook, sys.unraisablehook = on_thread_exception, on_unraisable
    for name in _LOGGERS:
        logging.getLogger(name).addFilter(_not_an_echo)

    def restore() -> None:
        threading.excepthook, sys.unraisablehook = thread_hook, unraisable_hook
        for name in _LOGGERS:
            logging.getLogger(name).removeFilter(_not_an_echo)

    return restore


@contextmanager
def reported_once(settle_s: float = 30.0) -> Iterator[None]:
    """While the block (an orbax save) runs, its echoes are silent. If it raises: the threads it
    started get up to ``settle_s`` seconds to end (they end within a second on an idle machine;
    5 s was once too short under a load of 5-7 on two cores, and the wait costs nothing but on
    failure), the locals of the failed frames are cleared (the traceback keeps its file and line
    names) and the garbage collector runs, so abandoned tasks log their echo now, silenced,
    rather than at interpreter exit; then the exception propagates."""
    before = set(threading.enumerate())
    restore = _silence()
    try:
        yield
    except BaseException as exc:
        deadline = time.monotonic() + settle_s
        for thread in set(threading.enumerate()) - before:
            if thread is not threading.current_thread():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for cause in _chain(exc):
            traceback.clear_frames(cause.__traceback__)
        gc.collect()
        raise
    finally:
        restore()


_silenced_for_the_process = False


def silence_echoes_for_the_process() -> None:
    """Silences the echoes of a failed save until the process exits: for a command line tool
    that has reported the error in one line and is ending (callbacks and collected tasks can
    still echo it during interpreter exit). Calling it again does nothing."""
    global _silenced_for_the_process
    if not _silenced_for_the_process:
        _silence()
        _silenced_for_the_process = True
