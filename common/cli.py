"""Shared CLI plumbing: user mistakes become one clear line and a non-zero exit."""

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from common.errors import ConfigError, LifecertError

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Turn ``LifecertError`` into ``error: ...`` on stderr, exit 2 for config, 1 otherwise."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except LifecertError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
