"""Payment months (``YYYY-MM``) and when a certification is overdue for one.

Pure functions, no database.
"""

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from central.certification.policy import add_months
from central.certification.settings import Policy
from common.errors import LifecertError

_PERIOD_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class PeriodError(LifecertError, ValueError):
    """A payment period is not ``YYYY-MM``."""


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
