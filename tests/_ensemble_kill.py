"""Run ``keyfan ensemble`` in a child process with a pause or a signal at a chosen moment, for the
kill tests (tests/test_ensemble_kill.py); the parent kills it with SIGKILL or changes its disk.

    python -m tests._ensemble_kill MODE MARKER [keyfan ensemble options...]

MODE ``save``: the second checkpoint's data is written but not committed (orbax's rename of its
temporary directory) when the child writes MARKER and waits to be killed. MODE ``saved``: the
child writes MARKER after the N-th checkpoint (N = the MODE's suffix, ``saved1``, ``saved2``)
and goes on (``saved1pause``: once MARKER.go exists). Nothing else is changed: the run is the CLI's own.
"""

from __future__ import annotations

import pathlib
import sys
import time


def main(mode: str, marker: str, args: list[str]) -> None:
    import keyfan.ensemble._run as run

    signal = pathlib.Path(marker)
    if mode == "save":
        from orbax.checkpoint._src.path import atomicity

        finalize = atomicity.AtomicRenameTemporaryPath.finalize
        calls = []

        async def paused(self, *a, **k):
            if "default" not in str(self.get().name):  # the step's directory, not its item's
                calls.append(self)
                if len(calls) == 2:
                    signal.write_text(str(self.get()))
                    time.sleep(600)
            return await finalize(self, *a, **k)

        atomicity.AtomicRenameTemporaryPath.finalize = paused
    elif mode.startswith("saved"):
        after, save, count = int(mode[5:].removesuffix("pause")), run.save, []

        def counted(*a, **k):
            out = save(*a, **k)
            count.append(out)
            if len(count) == after:
                signal.write_text(str(out))
                go = signal.with_name(signal.name + ".go")
                while mode.endswith("pause") and not go.exists():  # the parent changes the disk meanwhile
                    time.sleep(0.05)
            return out

        run.save = counted
    from keyfan.cli import app

    sys.argv = ["keyfan", "ensemble", *args]
    app()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
