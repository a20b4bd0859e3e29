"""A save that fails on the disk is reported once: its echoes (a writer thread's exception, a
callback's "Event loop is closed", an abandoned task's "Task exception was never retrieved")
are silent during and after the save, anything else still prints, and the hooks come back.

The full-disk and read-only runs of the real CLI are in tests/test_ensemble_kill.py (they need
root to mount a small tmpfs); these tests make each echo the way orbax's machinery does."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import subprocess
import sys
import threading

import pytest

from keyfan.ensemble._disk_errors import os_error, reported_once

FULL = "RESOURCE_EXHAUSTED: Error writing \"opt_state.0.nu/0.0\": No space left on device [os_error_code='28']"
"""What tensorstore raises on a full disk (a ValueError naming the errno, measured on a 420 KiB tmpfs)."""


class ClosedLoopCallback:
    """Raises, while being collected, what tensorstore's callbacks raise into orbax's closed loop."""

    def __init__(self, message: str = "Event loop is closed") -> None:
        self.message = message

    def __del__(self) -> None:
        raise RuntimeError(self.message)


def failing_write(loop: asyncio.AbstractEventLoop) -> None:
    """A save that fails as orbax's does: a task failed and nobody retrieved its exception (the
    task stays alive in this frame, which the raised error's traceback holds), a writer thread
    failed with the disk, a callback raised into a closed loop."""

    async def write() -> None:
        raise ValueError(FULL)

    task = loop.create_task(write())
    loop.run_until_complete(asyncio.sleep(0.01))
    assert task.done()
    writer = threading.Thread(target=lambda: (_ for _ in ()).throw(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    writer.start()
    ClosedLoopCallback()
    raise ValueError(FULL)


@pytest.fixture
def reached():
    """What reaches the thread and unraisable hooks installed before the save (stand-ins for
    Python's, which print): the exceptions' reprs, in order (not the exceptions, whose frames
    would keep the failed save's task alive)."""
    seen: list[str] = []
    hooks = threading.excepthook, sys.unraisablehook
    threading.excepthook = lambda args: seen.append(repr(args.exc_value))
    sys.unraisablehook = lambda unraisable: seen.append(repr(unraisable.exc_value))
    yield seen
    threading.excepthook, sys.unraisablehook = hooks


def test_a_failed_save_propagates_its_error_and_nothing_else_reaches_the_hooks(reached, caplog):
    hooks = threading.excepthook, sys.unraisablehook
    loop = asyncio.new_event_loop()
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(ValueError, match="No space left on device") as raised, reported_once(settle_s=10):
            failing_write(loop)
        del raised
        gc.collect()  # a task still alive would log "Task exception was never retrieved" here
    finally:
        loop.close()
    assert (threading.excepthook, sys.unraisablehook) == hooks
    assert reached == []
    assert [r.getMessage() for r in caplog.records if r.name in ("asyncio", "absl")] == []


def test_other_errors_still_reach_the_hooks_during_a_save(reached, caplog):
    def other() -> None:
        raise KeyError("not a disk error")

    with reported_once(settle_s=10):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        ClosedLoopCallback("a callback's own bug")
        logging.getLogger("asyncio").error("an unrelated asyncio error")
    assert reached == ["KeyError('not a disk error')", "RuntimeError(\"a callback's own bug\")"]
    assert "an unrelated asyncio error" in [r.getMessage() for r in caplog.records]


def test_without_the_guard_the_echoes_reach_the_hooks(reached, caplog):
    """The control: the same failing write outside reported_once echoes three times."""
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError) as raised:
            failing_write(loop)
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join(timeout=10)
        del raised
        gc.collect()
    finally:
        loop.close()
    assert sorted(reached) == ["OSError(28, 'No space left on device')", "RuntimeError('Event loop is closed')"]
    assert [r.getMessage().splitlines()[0] for r in caplog.records if r.name == "asyncio"] == [
        "Task exception was never retrieved"]


def test_a_command_line_tool_keeps_the_echoes_silent_until_it_exits():
    program = (
        "import errno, os, threading\n"
        "from keyfan.ensemble._disk_errors import silence_echoes_for_the_process\n"
        "from tests.test_ensemble_disk_errors import ClosedLoopCallback\n"
        "silence_echoes_for_the_process(); silence_echoes_for_the_process()\n"
        "print('keyfan ensemble: the one line', file=os.sys.stderr)\n"
        "t = threading.Thread(target=lambda: (_ for _ in ()).throw(OSError(errno.EROFS, 'Read-only file system')))\n"
        "t.start(); t.join()\n"
        "kept = ClosedLoopCallback()\n"  # collected at interpreter exit, after the line
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.join(root, "src"), root])}
    done = subprocess.run([sys.executable, "-c", program], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["keyfan ensemble: the one line"]


@pytest.mark.parametrize(("err", "code"), [
    (ValueError(FULL), errno.ENOSPC),
    (OSError(errno.EROFS, "Read-only file system"), errno.EROFS),
    (RuntimeError("wrapped"), None),
])
def test_os_error_finds_the_disk_error_behind_a_wrapper(err, code):
    found = os_error(err)
    assert (found.errno if found is not None else None) == code
    wrapper = RuntimeError("orbax: the save failed")
    wrapper.__cause__ = err
    found = os_error(wrapper)
    assert (found.errno if found is not None else None) == code
