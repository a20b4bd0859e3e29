"""``python -m keyfan`` and the ``keyfan`` script: the command line, or one line naming the extra
it needs when that extra is not installed."""

from __future__ import annotations

import sys


def main() -> None:
    """Runs the ``keyfan`` command line; without the ``cli`` extra, exits 1 with one line."""
    from keyfan._extras import EXTRAS

    try:
        from keyfan.cli import main as run
    except ModuleNotFoundError as err:
        top = (err.name or "").partition(".")[0]
        if top not in EXTRAS:
            raise
        sys.exit(f"keyfan: the command line needs the '{EXTRAS[top]}' extra ({top} is not installed): "
                 f"pip install 'keyfan[{EXTRAS[top]}]'")
    run()


if __name__ == "__main__":
    main()
