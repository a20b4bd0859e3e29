"""``python -m keyfan`` runs the ``keyfan`` command line."""

from keyfan.cli import main

main()
