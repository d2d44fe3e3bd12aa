"""The certification policy as dates: how long a pass certifies, when a month is due.

Pure functions, no database: the payment run, the ingest and the reports share them.
"""

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from central.config import Policy
from common.errors import LifecertError

_PERIOD_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class PeriodError(LifecertError, ValueError):
    """A payment period is not ``YYYY-MM``."""


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus ``months`` calendar months, clamped to the month's end (Feb 29 -> Feb 28)."""
    year, month0 = divmod(day.month - 1 + months, 12)
    year += day.year
    return day.replace(
        year=year, month=month0 + 1, day=min(day.day, calendar.monthrange(year, month0 + 1)[1])
    )


def birthday_in(year: int, born: dt.date) -> dt.date:
    """The birthday in ``year`` (Feb 29 falls on Feb 28 in common years)."""
    return born.replace(year=year, day=min(born.day, calendar.monthrange(year, born.month)[1]))


def certified_until(passed_on: dt.date, born: dt.date, policy: Policy) -> dt.date:
    """The last day a pass on ``passed_on`` keeps a retiree certified (inclusive).

    Default: ``passed_on`` + ``validity_months``. Birthday-anchored: the first birthday
    after the reminder window (``passed_on`` + ``reminder_days``), plus
    ``validity_months`` - 12, so passing anywhere inside the window before a birthday
    covers the year up to the next one.
    """
    if not policy.birthday_anchored:
        return add_months(passed_on, policy.validity_months)
    floor = passed_on + dt.timedelta(days=policy.reminder_days)
    anchor = birthday_in(floor.year, born)
    if anchor <= floor:
        anchor = birthday_in(floor.year + 1, born)
    extra_years = policy.validity_months // 12 - 1
    return birthday_in(anchor.year + extra_years, born)


@dataclass(frozen=True, order=True)
class Period:
    """A payment month."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> "Period":
        """``YYYY-MM`` -> ``Period``; ``PeriodError`` naming the fix otherwise."""
        match = _PERIOD_RE.match(text.strip())
        if not match:
            raise PeriodError(f"period {text!r} is not YYYY-MM: write e.g. 2026-04")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def of(cls, day: dt.date) -> "Period":
        """The month ``day`` falls in."""
        return cls(day.year, day.month)

    @property
    def first_day(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def last_day(self) -> dt.date:
        return dt.date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    def shift(self, months: int) -> "Period":
        """The period ``months`` later (earlier when negative)."""
        return Period.of(add_months(self.first_day, months))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def overdue_cutoff(period: Period, policy: Policy) -> dt.date:
    """A retiree certified until before this date is held in ``period``.

    A certification must still be valid on the period's first day, give or take
    ``grace_days``: certified until 03-31 is held in April, until 04-01 is paid.
    """
    return period.first_day - dt.timedelta(days=policy.grace_days)
