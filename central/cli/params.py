"""Click callbacks checking arguments the same way in every command: a month, an ID
number, printable text."""

from typing import Any

import click

from central.payments.period import Period, PeriodError
from common import idnumber


def check_period(_ctx: click.Context, _param: click.Parameter, value: str) -> Period:
    try:
        return Period.parse(value)
    except PeriodError as exc:
        raise click.BadParameter(str(exc)) from None


def check_id_number(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return idnumber.validate(value)
    except idnumber.IdNumberError as exc:
        raise click.BadParameter(f"{value!r} is not an ID number: {exc}") from None


def check_printable(limit: int, least: int = 0) -> Any:
    """A click callback: text of ``least``-``limit`` printable characters (it goes into
    events; PostgreSQL refuses NUL, a terminal acts on control characters)."""

    def check(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
        if not least <= len(value) <= limit or not value.isprintable():
            raise click.BadParameter(
                f"{least}-{limit} printable characters (no tabs, newlines or control characters)"
            )
        return value

    return check
