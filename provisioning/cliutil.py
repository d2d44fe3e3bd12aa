"""Plumbing shared by the ``lifecert fleet`` command modules."""

import functools
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from common.cli import friendly_errors
from provisioning.errors import ProvisioningError

F = TypeVar("F", bound=Callable[..., Any])

DIR_HELP = "fleet directory (env LIFECERT_FLEET_DIR)"


def fleet_dir(func: F) -> F:
    """The ``--dir`` option (env ``LIFECERT_FLEET_DIR``)."""
    return click.option(
        "--dir",
        "directory",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("fleet"),
        envvar="LIFECERT_FLEET_DIR",
        show_default=True,
        help=DIR_HELP,
    )(func)


def os_errors(func: F) -> F:
    """File-system failures become one clear line (via ``friendly_errors``)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OSError as exc:
            raise ProvisioningError(
                f"{exc.strerror or exc} ({exc.filename or 'file system'}): "
                "check the path and its permissions"
            ) from None

    return wrapper  # type: ignore[return-value]


def command(group: click.Group, name: str) -> Callable[[F], F]:
    """Register ``func`` as ``group``'s command ``name`` with friendly errors."""

    def decorate(func: F) -> F:
        return group.command(name)(friendly_errors(os_errors(func)))  # type: ignore[return-value]

    return decorate


def script_argv(name: str) -> list[str]:
    """The argv prefix for one of our console scripts (falls back to ``python -m``)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return [found]
    module = {"lifecert-central": "central", "lifecert-edge": "edge"}[name]
    return [sys.executable, "-m", module]
