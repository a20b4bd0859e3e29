"""keyfan's version, the single source: ``pyproject.toml`` reads it, ``keyfan.__version__`` and
``keyfan --version`` show it. Releases follow the compatibility policy in ``docs/compatibility.md``."""

__version__ = "0.1.0"
