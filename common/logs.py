"""Structured logs: one JSON object per line on stdout (journald keeps it)."""

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


def setup(level: str = "INFO", json: bool = True, service: str = "lifecert") -> None:
    """Configure the root logger once for a service process."""
    handler = logging.StreamHandler(sys.stdout)
    if json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
