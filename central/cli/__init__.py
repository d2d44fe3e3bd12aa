"""``lifecert-central``: a thin click layer over central's Python API, one module of commands
per room (``certification``, ``store``, ``people``, ``payments``, ``fraud``) assembled by
``root``."""

from central.cli.root import main

__all__ = ["main"]
