"""Certification reminders: before the due date, on it, and when a payment run holds payment.

A retiree's due date is ``certified_until``; one due cycle is one value of it (a pass
moves it, and a new cycle starts). On a date ``D`` (in the policy's time zone) the stages
are:

- ``before<N>`` for each N of ``[notify.reminders] days_before``: the due date is within
  N days, and no nearer stage applies (due in ``(D + next smaller N, D + N]``), so a run
  missed for a few days still sends the nearest reminder and never a stale one;
- ``due``: the due date is today, or up to ``CATCH_UP_DAYS`` ago (a missed day caught up);
- ``hold``: a stored payment run for ``D``'s month or the next holds the retiree for
  ``certification_overdue`` and they have not certified since.

Only active retirees who have not opted out and have a phone (SMS), else an e-mail
address, else a next of kin's phone. The outbox key ``reminder:<stage>:<due>:<id>`` makes
a stage go out at most once per retiree per due cycle, however often this runs; each
message enqueued is recorded in ``reminders`` (same transaction) for the coordinator's
report: who was reminded, and who has not certified since.

Texts are files, ``templates/<stage>.<language>.txt`` (stage ``before``, ``due``,
``hold``; first line the subject, the rest the body; ``$name``, ``$due_date``, ``$days``,
``$period``), overridable per file from ``[notify.reminders] templates_dir``.
"""

import datetime as dt
import string
import threading
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.certification.settings import Policy
from central.notify import outbox
from central.notify.base import Message
from central.notify.settings import ReminderSettings
from central.payments.period import Period, overdue_cutoff
from central.people.contacts import Language
from central.store import schema
from common.errors import LifecertError

CATCH_UP_DAYS = 7
CHUNK = 2_000
STAGES = ("before", "due", "hold")
_r, _lines, _runs = schema.retirees, schema.payment_lines, schema.payment_runs

reminders = sa.Table(
    "reminders",
    schema.metadata,
    sa.Column("key", sa.String(outbox.MAX_KEY), primary_key=True),  # = the outbox key
    sa.Column("retiree_id", sa.String(18), nullable=False, index=True),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("reminded_on", sa.Date, nullable=False, index=True),
    sa.Column("channel", sa.String(16), nullable=False),
)


class TemplateError(LifecertError, ValueError):
    """A reminder template is missing or broken; the message names the file."""


@dataclass(frozen=True)
class Template:
    """One stage in one language: a subject line and a body."""

    subject: string.Template
    body: string.Template

    def render(self, **values: str) -> tuple[str, str]:
        try:
            return self.subject.substitute(values), self.body.substitute(values)
        except (KeyError, ValueError) as exc:
            raise TemplateError(f"template placeholder {exc} unknown") from None


def load_templates(override: Path | None = None) -> dict[tuple[str, str], Template]:
    """Every (stage, language) template: the shipped files, each overridable from
    ``override``; ``TemplateError`` naming a file that is missing, empty or unreadable."""
    shipped = resources.files("central.notify") / "templates"
    found: dict[tuple[str, str], Template] = {}
    for stage in STAGES:
        for language in Language:
            name = f"{stage}.{language.value}.txt"
            path = override / name if override and (override / name).exists() else None
            try:
                text = path.read_text("utf-8") if path else (shipped / name).read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise TemplateError(f"reminder template {path or name}: {exc}") from None
            subject, _, body = text.strip().partition("\n")
            if not subject.strip() or not body.strip() or len(subject) > 200:
                raise TemplateError(
                    f"reminder template {path or name}: write a subject line (<= 200 "
                    "characters), then the body"
                )
            found[stage, language.value] = Template(
                string.Template(subject.strip()), string.Template(body.strip())
            )
    for template in found.values():  # every placeholder known: fail now, not mid-run
        template.render(name="x", due_date="x", days="1", period="x")
    return found


@dataclass(frozen=True)
class Summary:
    """What one reminders run did, per stage: retirees not yet reminded for it (``seen``)
    and messages newly enqueued."""

    on: dt.date
    seen: dict[str, int]
    enqueued: dict[str, int]


def today(policy: Policy) -> dt.date:
    """Today in the policy's time zone."""
    return dt.datetime.now(zoneinfo.ZoneInfo(policy.timezone)).date()


def _reachable() -> sa.ColumnElement[bool]:
    return sa.and_(
        _r.c.status == schema.RetireeStatus.ACTIVE.value,
        sa.func.coalesce(_r.c.reminders_opt_out, sa.false()) == sa.false(),
        sa.or_(_r.c.phone.is_not(None), _r.c.email.is_not(None), _r.c.kin_phone.is_not(None)),
    )


@dataclass(frozen=True)
class _Stage:
    name: str  # the key's stage: before30, due, hold
    template: str  # before, due, hold
    where: sa.ColumnElement[bool]
    period: sa.ColumnElement[Any] | None = None  # hold: the run's period


def _stages(on: dt.date, settings: ReminderSettings, policy: Policy) -> list[_Stage]:
    days = sorted(set(settings.days_before), reverse=True)
    stages = []
    for i, n in enumerate(days):
        nearer = days[i + 1] if i + 1 < len(days) else 0
        window = sa.and_(
            _r.c.certified_until > on + dt.timedelta(days=nearer),
            _r.c.certified_until <= on + dt.timedelta(days=n),
        )
        stages.append(_Stage(f"before{n}", "before", window))
    due = sa.and_(
        _r.c.certified_until <= on, _r.c.certified_until > on - dt.timedelta(days=CATCH_UP_DAYS)
    )
    stages.append(_Stage("due", "due", due))
    held = []
    for period in (Period.of(on), Period.of(on).shift(1)):
        line = (
            sa.exists()
            .where(
                _lines.c.run_id == _runs.c.id,
                _runs.c.period == str(period),
                _lines.c.retiree_id == _r.c.id_number,
                _lines.c.decision == "hold",
                _lines.c.reason == "certification_overdue",
            )
            .correlate(_r)
        )
        still = _r.c.certified_until < overdue_cutoff(period, policy)  # not certified since
        held.append((sa.and_(line, still), str(period)))
    held_in = sa.case(*held, else_=sa.null())
    stages.append(_Stage("hold", "hold", held_in.is_not(None), held_in))
    return stages


def _pages(engine: Engine, stage: _Stage) -> Iterator[list[Any]]:
    """The stage's candidates in ``CHUNK``s by ID number (each page its own short read)."""
    columns: list[sa.ColumnElement[Any]] = [
        _r.c.id_number,
        _r.c.name,
        _r.c.phone,
        _r.c.email,
        _r.c.kin_phone,
        _r.c.language,
        _r.c.certified_until,
    ]
    if stage.period is not None:
        columns.append(stage.period.label("period"))
    last = ""
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(*columns)
                .where(_reachable(), _r.c.certified_until.is_not(None), stage.where)
                .where(~_sent(stage.name), _r.c.id_number > last)
                .order_by(_r.c.id_number)
                .limit(CHUNK)
            ).all()
        if not rows:
            return
        last = rows[-1].id_number
        yield list(rows)


def _sent(stage: str) -> sa.ColumnElement[bool]:
    """This stage of the retiree's current due cycle is in ``reminders`` already."""
    return (
        sa.exists()
        .where(
            reminders.c.retiree_id == _r.c.id_number,
            reminders.c.stage == stage,
            reminders.c.due_date == _r.c.certified_until,
        )
        .correlate(_r)
    )


def _address(row: Any) -> tuple[str, str]:
    if row.phone:
        return "sms", row.phone
    if row.email:
        return "email", row.email
    return "sms", row.kin_phone


def count(engine: Engine, on: dt.date, settings: ReminderSettings, policy: Policy) -> int:
    """How many candidates a run on ``on`` looks at (for a progress bar)."""
    total = 0
    with engine.connect() as conn:
        for stage in _stages(on, settings, policy):
            total += int(
                conn.scalar(
                    sa.select(sa.func.count()).where(
                        _reachable(),
                        _r.c.certified_until.is_not(None),
                        stage.where,
                        ~_sent(stage.name),
                    )
                )
                or 0
            )
    return total


def run(
    engine: Engine,
    on: dt.date,
    settings: ReminderSettings,
    policy: Policy,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> Summary:
    """Enqueue every reminder due on ``on`` (see the module docstring); ``progress`` is told
    how many candidates each chunk covered; a set ``stop`` ends it between chunks."""
    templates = load_templates(settings.templates_dir)
    seen: dict[str, int] = {}
    enqueued: dict[str, int] = {}
    now = dt.datetime.now(dt.UTC)
    for stage in _stages(on, settings, policy):
        seen[stage.name] = enqueued[stage.name] = 0
        for rows in _pages(engine, stage):
            if stop is not None and stop.is_set():  # what is enqueued stays; the rest next run
                return Summary(on, seen, enqueued)
            messages, records = [], {}
            for row in rows:
                language = row.language or Language.ZH.value
                due: dt.date = row.certified_until
                subject, body = templates[stage.template, language].render(
                    name=row.name,
                    due_date=due.isoformat(),
                    days=str((due - on).days),
                    period=(row.period if stage.period is not None else "") or "",
                )
                channel, recipient = _address(row)
                key = f"reminder:{stage.name}:{due.isoformat()}:{row.id_number}"
                messages.append(Message(channel, recipient, subject, body, key, language))
                records[key] = {
                    "key": key,
                    "retiree_id": row.id_number,
                    "stage": stage.name,
                    "due_date": due,
                    "reminded_on": on,
                    "channel": channel,
                }
            with engine.begin() as conn:
                new = outbox.enqueue_many(conn, messages, now)
                if new:
                    conn.execute(reminders.insert(), [records[k] for k in new])
            seen[stage.name] += len(rows)
            enqueued[stage.name] += len(new)
            if progress:
                progress(len(rows))
    return Summary(on, seen, enqueued)


def report(
    conn: Connection,
    since: dt.date,
    not_reacted_only: bool = False,
    limit: int = 10_000,
    communities: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    """Reminders sent on or after ``since``: who, which stage, delivery, and whether they
    reacted (certified since: ``certified_until`` moved past the reminder's due date);
    only retirees of ``communities`` when given (a coordinator's)."""
    o = outbox.outbox
    reacted = sa.func.coalesce(_r.c.certified_until > reminders.c.due_date, sa.false())
    query = (
        sa.select(
            reminders.c.retiree_id,
            _r.c.name,
            _r.c.community,
            reminders.c.stage,
            reminders.c.due_date,
            reminders.c.reminded_on,
            reminders.c.channel,
            o.c.status.label("delivery"),
            _r.c.certified_until,
            reacted.label("reacted"),
        )
        .join(_r, _r.c.id_number == reminders.c.retiree_id)
        .outerjoin(o, o.c.key == reminders.c.key)
        .where(reminders.c.reminded_on >= since)
        .order_by(_r.c.community, reminders.c.retiree_id, reminders.c.reminded_on)
        .limit(limit)
    )
    if not_reacted_only:
        query = query.where(~reacted)
    if communities is not None:
        query = query.where(_r.c.community.in_(sorted(communities)))
    return [dict(row._mapping) | {"reacted": bool(row.reacted)} for row in conn.execute(query)]
