"""The certification policy as dates: how long a pass certifies.

Pure functions, no database: the ingest, the payment run and the reports share them.
"""

import calendar
import datetime as dt

from central.certification.settings import Policy


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
