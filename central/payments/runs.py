"""The monthly payment run: pay, hold, stop or resume (with arrears) every retiree.

One set-based ``INSERT ... SELECT`` decides every retiree of a period from the
roster, the registries, open manual holds and unpaid arrears; the same statements
run on SQLite and PostgreSQL. Decisions, first matching rule wins:

1. died before the period (death registry)          -> stop ``deceased``
2. roster status ``deceased`` (no registry date)     -> stop ``deceased_roster``
3. roster status ``terminated``                      -> stop ``terminated``
4. retires after the period                          -> stop ``not_retired``
5. in prison on the period's first day               -> hold ``imprisoned``
6. roster status ``suspended``                       -> hold ``suspended``
7. an open manual hold                               -> hold ``manual``
8. no monthly amount or bank account                 -> hold ``incomplete``
9. certification not valid on the first day (grace)  -> hold ``certification_overdue``
10. otherwise pay; with unpaid arrears               -> ``resume`` (amount + arrears)

Only months held for rule 9 become arrears, back-paid by the first later run that
pays the retiree. Like prison and death (read from the registries each month), a
certification hold is derived by each run from ``certified_until`` and recorded only as
the run's line: the ``holds`` table keeps staff decisions (``manual``), and a pass needs
nothing released: it moves ``certified_until``, and the next run pays with the arrears.
A run is stored per period; running a period again (until its bank file is made)
recomputes it from the same data and gives the same lines, and the latest run, until
then, can be discarded (``discard``, with an event). A run is for a month near today
(``[payments] months_ahead``/``months_back``) and not before the roster's first month
(that of the earliest retiree's ``created_at``: the first roster import).
Arrears are stored lines too: each ``certification_overdue`` hold line is a month owed,
and every stored line carries what the retiree is owed after it (``owed_cents``), which
the next run reads from the previous run's lines.

A run stores its hold, stop and resume lines (about one retiree in eight) and the
roster revision it read; its ``pay`` lines are implied: every retiree of the roster as
it was at that revision (``schema.roster_versions``) without a stored line, paid their
monthly amount. ``run_lines`` joins the two; everything that reads a run goes through it.
"""

import datetime as dt
import zoneinfo
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.certification.settings import Policy
from central.payments.period import Period, overdue_cutoff
from central.payments.settings import PaymentSettings
from central.people import registries
from central.store import schema
from common.errors import LifecertError

_r, _reg, _h = schema.retirees, schema.registry_records, schema.holds
_runs, _lines, _v = schema.payment_runs, schema.payment_lines, schema.roster_versions
_clock = schema.roster_clock


class Decision(StrEnum):
    """What a run does for one retiree."""

    PAY = "pay"
    RESUME = "resume"
    HOLD = "hold"
    STOP = "stop"


class Reason(StrEnum):
    """Why a retiree is not simply paid (``payment_lines.reason``)."""

    DECEASED = "deceased"
    DECEASED_ROSTER = "deceased_roster"
    TERMINATED = "terminated"
    NOT_RETIRED = "not_retired"
    IMPRISONED = "imprisoned"
    SUSPENDED = "suspended"
    MANUAL = "manual"
    INCOMPLETE = "incomplete"
    CERTIFICATION_OVERDUE = "certification_overdue"


# temp_store MEMORY; a 128 MiB page cache; the file read through a memory map (up to
# 1 GiB of address space: pages come from the OS cache without a copy each)
_ROOMY = {"temp_store": 2, "cache_size": -131_072, "mmap_size": 1 << 30}
STOPS = (Reason.DECEASED, Reason.DECEASED_ROSTER, Reason.TERMINATED, Reason.NOT_RETIRED)


class RunError(LifecertError, ValueError):
    """A run cannot be made or changed; the message says why and what to do."""


@dataclass(frozen=True)
class RunSummary:
    """Counts and totals of one run."""

    run_id: int
    period: str
    decisions: dict[str, int]
    reasons: dict[str, int]
    payable_cents: int
    arrears_cents: int
    # The roster at the run's revision: retirees and their monthly amounts (None: a run
    # made before migration 0005). The next run starts from these.
    roster_retirees: int | None = None
    roster_amount_cents: int | None = None
    recomputed: bool = False

    def as_json(self) -> dict[str, Any]:
        stored = {
            "decisions": self.decisions,
            "reasons": self.reasons,
            "payable_cents": self.payable_cents,
            "arrears_cents": self.arrears_cents,
        }
        if self.roster_retirees is not None:
            stored["roster"] = {
                "retirees": self.roster_retirees,
                "amount_cents": self.roster_amount_cents,
            }
        return stored


def _exceptions(period: Period, previous: int | None) -> sa.Select[Any]:
    """One row per retiree with anything beside the roster: death date, prison start,
    open manual holds, unpaid arrears (``owed_cents`` of run ``previous``'s lines; a few
    percent of the roster).

    The four sources are stacked and grouped into one small table so the scan over the
    roster probes one lookup per retiree instead of four.
    """
    p0 = period.first_day
    no_date, no_int = sa.null().cast(sa.Date), sa.null().cast(sa.BigInteger)
    died = sa.select(
        _reg.c.retiree_id,
        _reg.c.start_date.label("died"),
        no_date.label("jailed"),
        no_int.label("manual"),
        no_int.label("owed"),
    ).where(_reg.c.kind == schema.RegistryKind.DEATH.value, _reg.c.retiree_id.is_not(None))
    jailed = sa.select(_reg.c.retiree_id, no_date, _reg.c.start_date, no_int, no_int).where(
        _reg.c.kind == schema.RegistryKind.PRISON.value,
        _reg.c.retiree_id.is_not(None),
        _reg.c.start_date <= p0,
        sa.or_(_reg.c.end_date.is_(None), _reg.c.end_date > p0),
    )
    manual = sa.select(
        _h.c.retiree_id, no_date, no_date, sa.literal(1, sa.BigInteger), no_int
    ).where(_h.c.reason == schema.HoldReason.MANUAL.value, _h.c.released_at.is_(None))
    owed = sa.select(_lines.c.retiree_id, no_date, no_date, no_int, _lines.c.owed_cents).where(
        _lines.c.run_id == previous, _lines.c.owed_cents > 0
    )
    each = sa.union_all(died, jailed, manual, owed).subquery("each")
    c = each.c
    return sa.select(
        c.retiree_id,
        sa.func.min(c.died).label("died"),
        sa.func.min(c.jailed).label("jailed"),
        sa.func.max(c.manual).label("manual"),
        sa.func.sum(c.owed).label("owed"),
    ).group_by(c.retiree_id)


def _reason(c: Any, period: Period, policy: Policy) -> sa.Case[Any]:
    """The first rule (module docstring) a candidate row ``c`` falls under, else NULL."""
    p0, p1 = period.first_day, period.last_day
    return sa.case(
        (c.died < p0, Reason.DECEASED.value),
        (
            sa.and_(c.died.is_(None), c.status == schema.RetireeStatus.DECEASED.value),
            Reason.DECEASED_ROSTER.value,
        ),
        (c.status == schema.RetireeStatus.TERMINATED.value, Reason.TERMINATED.value),
        (c.retirement_date > p1, Reason.NOT_RETIRED.value),
        (c.jailed.is_not(None), Reason.IMPRISONED.value),
        (c.status == schema.RetireeStatus.SUSPENDED.value, Reason.SUSPENDED.value),
        (c.manual.is_not(None), Reason.MANUAL.value),
        (
            sa.or_(c.monthly_amount_cents.is_(None), c.bank_account.is_(None)),
            Reason.INCOMPLETE.value,
        ),
        (
            sa.or_(
                c.certified_until.is_(None),
                c.certified_until < overdue_cutoff(period, policy),
            ),
            Reason.CERTIFICATION_OVERDUE.value,
        ),
        else_=sa.null(),
    )


def _decided(c: SimpleNamespace, period: Period, policy: Policy) -> list[Any]:
    """The columns of one candidate ``c`` (roster and exception columns) a line is made of:
    retiree, reason (NULL: paid), amount, owed before the run, and the basis dates."""
    return [
        c.id_number,
        _reason(c, period, policy).label("reason"),
        sa.func.coalesce(c.monthly_amount_cents, 0).label("amount"),
        sa.func.coalesce(c.owed, 0).label("owed"),
        c.died.label("died"),
        c.jailed.label("jailed"),
        c.retirement_date,
        c.certified_until,
    ]


def _decisions_select(period: Period, policy: Policy, previous: int | None) -> sa.Select[Any]:
    """retiree, decision, reason, amount, arrears, payable, basis_date, owed of every
    retiree of ``period`` not simply paid (hold, stop, resume); the others are the implied
    pay lines. ``previous``: the run of the month before (its lines say what is owed).

    Candidates: every retiree with an exception row, and the roster rows failing a plain
    column test (status, retirement, amount, account, certification) without one; only
    the latter are looked up in the exceptions, so most of the roster costs one scan and
    no probe.
    """
    p1 = period.last_day
    ex = _exceptions(period, previous).cte("ex").prefix_with("MATERIALIZED")
    roster = {
        name: _r.c[name]
        for name in (
            "id_number",
            "status",
            "retirement_date",
            "monthly_amount_cents",
            "bank_account",
            "certified_until",
        )
    }
    none_date, none_int = sa.null().cast(sa.Date), sa.null().cast(sa.BigInteger)
    with_exceptions = sa.select(
        *_decided(
            SimpleNamespace(
                **roster, died=ex.c.died, jailed=ex.c.jailed, manual=ex.c.manual, owed=ex.c.owed
            ),
            period,
            policy,
        )
    ).join_from(ex, _r, _r.c.id_number == ex.c.retiree_id)
    roster_only = sa.select(
        *_decided(
            SimpleNamespace(
                **roster, died=none_date, jailed=none_date, manual=none_int, owed=none_int
            ),
            period,
            policy,
        )
    ).where(
        sa.or_(
            _r.c.status != schema.RetireeStatus.ACTIVE.value,
            _r.c.retirement_date > p1,
            _r.c.monthly_amount_cents.is_(None),
            _r.c.bank_account.is_(None),
            _r.c.certified_until.is_(None),
            _r.c.certified_until < overdue_cutoff(period, policy),
        ),
        _r.c.id_number.not_in(sa.select(ex.c.retiree_id)),
    )
    # Each branch computes its reason once per row and the union is read as it comes (not
    # materialised, not flattened into the columns below): measured 8 % faster than a
    # materialised step after the union, which was itself 1.8x faster than the reason
    # inlined into each column below (SQLite then evaluates the whole CASE for each).
    decided = (
        sa.union_all(with_exceptions, roster_only).cte("decided").prefix_with("NOT MATERIALIZED")
    )
    d = decided.c
    paid = d.reason.is_(None)
    decision = sa.case(
        (d.reason.in_([s.value for s in STOPS]), Decision.STOP.value),
        (d.reason.is_not(None), Decision.HOLD.value),
        (d.owed > 0, Decision.RESUME.value),
        else_=Decision.PAY.value,
    )
    basis = sa.case(
        (d.reason == Reason.DECEASED.value, d.died),
        (d.reason == Reason.IMPRISONED.value, d.jailed),
        (d.reason == Reason.NOT_RETIRED.value, d.retirement_date),
        else_=d.certified_until,
    )
    owed_after = sa.case(
        (paid, 0),
        (d.reason == Reason.CERTIFICATION_OVERDUE.value, d.owed + d.amount),
        else_=d.owed,
    )
    select = sa.select(
        d.id_number,
        decision,
        d.reason,
        d.amount,
        sa.case((paid, d.owed), else_=0),
        sa.case((paid, d.amount + d.owed), else_=0),
        basis,
        owed_after,
    ).where(sa.or_(d.reason.is_not(None), d.owed > 0))
    # In retiree order: the (run, retiree) index is appended to, not written all over.
    return select.order_by(d.id_number)


def roster_at(
    revision: int,
    retiree_ids: Sequence[str] | sa.Select[Any] | sa.CompoundSelect[Any] | None = None,
) -> sa.Subquery:
    """``retiree_id`` and the payable columns of every retiree as they were at roster
    ``revision`` (of ``retiree_ids`` only, when given)."""
    current = sa.select(
        _r.c.id_number.label("retiree_id"), *(_r.c[c] for c in schema.PAYABLE)
    ).where(_r.c.roster_rev <= revision)
    earlier = sa.select(_v.c.retiree_id, *(_v.c[c] for c in schema.PAYABLE)).where(
        _v.c.valid_from <= revision, _v.c.valid_to > revision
    )
    if retiree_ids is not None:
        current = current.where(_r.c.id_number.in_(retiree_ids))
        earlier = earlier.where(_v.c.retiree_id.in_(retiree_ids))
    return sa.union_all(current, earlier).subquery("roster_at")


def run_lines(
    run: Any,
    *,
    retiree_ids: Sequence[str] | sa.Select[Any] | sa.CompoundSelect[Any] | None = None,
    stored_only: bool = False,
) -> sa.Subquery:
    """Every line of ``run`` (a ``payment_runs`` row), the columns of ``payment_lines`` plus
    the retiree's ``name``, ``bank_account`` and ``account_name`` as the run read them.

    Stored lines as they are; the implied ``pay`` lines (``id`` NULL) from the roster at the
    run's revision: the monthly amount, no arrears, ``basis_date`` = certified until.
    ``stored_only`` leaves the pay lines out (a run's holds, stops and resumes).
    """
    legacy = run.roster_revision is None  # made before migration 0005: every line stored
    v = roster_at(0 if legacy else run.roster_revision, retiree_ids)
    named = (v.c.name, v.c.bank_account, v.c.account_name)
    if legacy or stored_only:
        query = sa.select(*_lines.c, *named).join_from(
            _lines, v, v.c.retiree_id == _lines.c.retiree_id
        )
        query = query.where(_lines.c.run_id == run.id)
        if retiree_ids is not None:
            query = query.where(_lines.c.retiree_id.in_(retiree_ids))
        return query.subquery("run_lines")
    line = _lines.c
    implied = line.retiree_id.is_(None)
    amount = sa.func.coalesce(v.c.monthly_amount_cents, 0)
    query = sa.select(
        line.id,
        sa.literal(run.id, sa.BigInteger).label("run_id"),
        v.c.retiree_id,
        sa.func.coalesce(line.decision, Decision.PAY.value).label("decision"),
        line.reason,
        sa.func.coalesce(line.amount_cents, amount).label("amount_cents"),
        sa.func.coalesce(line.arrears_cents, 0).label("arrears_cents"),
        sa.func.coalesce(line.payable_cents, amount).label("payable_cents"),
        sa.case((implied, v.c.certified_until), else_=line.basis_date).label("basis_date"),
        sa.func.coalesce(line.owed_cents, 0).label("owed_cents"),
        *named,
    ).join_from(
        v, _lines, sa.and_(line.run_id == run.id, line.retiree_id == v.c.retiree_id), isouter=True
    )
    return query.subquery("run_lines")


def _check_month(
    conn: Connection, period: Period, window: PaymentSettings, timezone: str, now: dt.datetime
) -> None:
    """``RunError`` unless ``period`` is within ``window`` of the month ``now`` falls in
    (in ``timezone``) and not before the roster's first month.

    The roster's first month is that of the earliest ``retirees.created_at``; the test is
    whether a retiree was added before the month after ``period`` (one row read, no scan,
    whenever the answer is yes)."""
    zone = zoneinfo.ZoneInfo(timezone)
    this = Period.of(now.astimezone(zone).date())
    if period > (last := this.shift(window.months_ahead)):
        raise RunError(
            f"{period} is after {last}, the last month a run may be for now (this month "
            f"{this} + [payments] months_ahead {window.months_ahead}): check the month"
        )
    if period < (first := this.shift(-window.months_back)):
        raise RunError(
            f"{period} is before {first}, the first month a run may be for now (this month "
            f"{this} - [payments] months_back {window.months_back}): check the month, or "
            "raise months_back to catch up"
        )
    start = period.shift(1).first_day
    after = dt.datetime(start.year, start.month, 1, tzinfo=zone).astimezone(dt.UTC)
    if conn.execute(sa.select(_r.c.id_number).where(_r.c.created_at < after).limit(1)).first():
        return
    earliest = conn.scalar(sa.select(sa.func.min(_r.c.created_at)))
    if earliest is None:
        raise RunError("the roster is empty: import it first (`lifecert-central roster import`)")
    raise RunError(
        f"{period} is before {Period.of(earliest.astimezone(zone).date())}, the roster's first "
        "month (its first import): check the month"
    )


def _check_order(conn: Connection, period: Period) -> int | None:
    """The id of an existing, still changeable run of ``period`` (None: a new one)."""
    rows = conn.execute(
        sa.select(_runs.c.id, _runs.c.period, _runs.c.status).order_by(_runs.c.period.desc())
    ).all()
    if not rows:
        return None
    latest = rows[0]
    mine = next((row for row in rows if row.period == str(period)), None)
    if mine is not None:
        if mine.id != latest.id:
            raise RunError(
                f"{period} is not the latest run ({latest.period}): earlier runs cannot change"
            )
        if mine.status != "computed":
            raise RunError(
                f"the run for {period} is {mine.status} (its bank file exists): it cannot change"
            )
        return int(mine.id)
    fix = ""
    if latest.status == "computed":
        fix = (
            f"; if {latest.period} is wrong: `lifecert-central payments discard "
            f"{latest.period} --reason ...`"
        )
    try:
        expected = Period.parse(latest.period).shift(1)
    except ValueError:  # 9999-12, stored before runs had limits: only discarding helps
        raise RunError(
            f"the latest run is for {latest.period}, which has no next month{fix}"
        ) from None
    if period != expected:
        raise RunError(f"the next run is {expected} (latest is {latest.period}), not {period}{fix}")
    return None


def _discard(conn: Connection, run_id: int) -> None:
    """Undo a computed run: its lines (arrears held or settled in it with them)."""
    conn.execute(_lines.delete().where(_lines.c.run_id == run_id))
    conn.execute(_runs.delete().where(_runs.c.id == run_id))


def discard(
    engine: Engine, period: Period, reason: str, actor: str, now: dt.datetime | None = None
) -> int:
    """Remove the run of ``period``, which must be the latest and still unfiled (no bank
    file), with a ``payment_run_discarded`` event keeping ``reason`` and its summary; the
    run's id. The month can then be run again, or the month before continued from."""
    if not reason.strip():
        raise RunError("say why the run is discarded (--reason): it is kept in the event")
    now = now or dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        mine = conn.execute(
            sa.select(_runs).where(_runs.c.period == str(period)).with_for_update()
        ).first()
        if mine is None:
            raise RunError(f"no payment run for {period}: nothing to discard")
        latest = conn.scalar(sa.select(sa.func.max(_runs.c.period)))
        if mine.period != latest:
            raise RunError(
                f"{period} is not the latest run ({latest}): discard {latest} first, "
                "runs are undone newest first"
            )
        if mine.status != "computed":
            raise RunError(
                f"the run for {period} is {mine.status} (its bank file is made): it stands; "
                "correct it in the next month's run"
            )
        _discard(conn, mine.id)
        conn.execute(
            schema.events.insert().values(
                at=now,
                kind="payment_run_discarded",
                actor=actor,
                detail={
                    "period": mine.period,
                    "run_id": mine.id,
                    "reason": reason.strip(),
                    "summary": mine.summary,
                },
            )
        )
    return int(mine.id)


def _analyse(conn: Connection, *tables: str) -> None:
    """PostgreSQL: fresh statistics for tables a run just filled, so the statements that
    read them next get fitting plans (with stale "empty table" statistics a join over a
    run's lines once took minutes)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {', '.join(tables)}")


@contextmanager
def _roomy(conn: Connection) -> Iterator[None]:
    """SQLite: the run's joins, groupings and temporary tables in memory, a larger page
    cache (measured: the decision insert ~20 % faster than with temporary files), the
    roster scans through a memory map; set outside the transaction (SQLite refuses
    ``temp_store`` inside one) and restored after, as the connection goes back to the pool."""
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.driver_connection  # no autobegin: pragmas outside the transaction
    assert raw is not None
    saved = {name: raw.execute(f"PRAGMA {name}").fetchone()[0] for name in _ROOMY}
    for name, value in _ROOMY.items():
        raw.execute(f"PRAGMA {name} = {value}")
    try:
        yield
    finally:
        for name, value in saved.items():
            raw.execute(f"PRAGMA {name} = {value}")


def _roster_totals(conn: Connection, revision: int, base: Any) -> tuple[int, int]:
    """How many retirees the roster held at ``revision`` and their monthly amounts, while
    ``revision`` is the open one (the table itself; no row is newer).

    From ``base`` (an earlier run, a ``payment_runs`` row or None) when its summary kept
    its own: those, less the versions valid at its revision that ended since (changed or
    deleted rows), plus the rows written since (changed or added); two short index ranges.
    Else one scan of the roster.
    """
    amount = sa.func.coalesce(sa.func.sum(_r.c.monthly_amount_cents), 0)
    kept = None if base is None or base.roster_revision is None else base.summary.get("roster")
    if kept is None:
        everyone, total = conn.execute(
            sa.select(sa.func.count(), amount).where(_r.c.roster_rev <= revision)
        ).one()
        return int(everyone), int(total)
    since = base.roster_revision
    came, came_cents = conn.execute(
        sa.select(sa.func.count(), amount).where(
            _r.c.roster_rev > since, _r.c.roster_rev <= revision
        )
    ).one()
    went, went_cents = conn.execute(
        sa.select(
            sa.func.count(), sa.func.coalesce(sa.func.sum(_v.c.monthly_amount_cents), 0)
        ).where(_v.c.valid_to > since, _v.c.valid_to <= revision, _v.c.valid_from <= since)
    ).one()
    return (
        kept["retirees"] + int(came) - int(went),
        kept["amount_cents"] + int(came_cents) - int(went_cents),
    )


def summarise(conn: Connection, run: Any, base: Any = None) -> RunSummary:
    """Counts per decision and reason, and totals, of one run (a ``payment_runs`` row).

    Called by the run, when the roster at its revision is the table itself (earlier
    versions are not valid at the open revision). The stored lines are grouped; the implied
    pay lines are the roster less the stored lines (whose ``amount_cents`` is the roster
    amount, 0 when none): the roster's totals from ``base``'s (the previous run) and what
    changed since, else one scan; no join.
    """
    rows = conn.execute(
        sa.select(
            _lines.c.decision,
            _lines.c.reason,
            sa.func.count(),
            sa.func.sum(_lines.c.payable_cents),
            sa.func.sum(_lines.c.arrears_cents),
            sa.func.sum(_lines.c.amount_cents),
        )
        .where(_lines.c.run_id == run.id)
        .group_by(_lines.c.decision, _lines.c.reason)
    ).all()
    decisions: dict[str, int] = {}
    reasons: dict[str, int] = {}
    payable = arrears = stored = stored_amount = 0
    for decision, reason, n, pay, back, amount in rows:
        decisions[decision] = decisions.get(decision, 0) + n
        if reason:
            reasons[reason] = n
        payable += int(pay or 0)
        arrears += int(back or 0)
        stored += n
        stored_amount += int(amount or 0)
    if run.roster_revision is None:
        return RunSummary(run.id, run.period, decisions, reasons, payable, arrears)
    everyone, amount = _roster_totals(conn, run.roster_revision, base)
    if implied := everyone - stored:
        decisions[Decision.PAY.value] = decisions.get(Decision.PAY.value, 0) + implied
    payable += amount - stored_amount
    return RunSummary(run.id, run.period, decisions, reasons, payable, arrears, everyone, amount)


def run(
    engine: Engine,
    period: Period,
    policy: Policy,
    *,
    actor: str = "payment-run",
    now: dt.datetime | None = None,
    window: PaymentSettings | None = None,
) -> RunSummary:
    """Compute (or recompute) the run of ``period`` in one transaction and store it.

    ``RunError`` when ``period`` is outside ``window`` around ``now`` (default: the
    defaults of ``[payments]``), before the roster's first month, or out of order."""
    now = now or dt.datetime.now(dt.UTC)
    with engine.connect() as conn, _roomy(conn), conn.begin():
        if conn.dialect.name == "postgresql":  # ingest waits for us: no pass slips between
            conn.exec_driver_sql("LOCK TABLE retirees IN SHARE MODE")
        _check_month(conn, period, window or PaymentSettings(), policy.timezone, now)
        old = _check_order(conn, period)
        before = conn.execute(
            sa.select(_runs).where(_runs.c.period == str(period.shift(-1)))
        ).first()
        registries.match(conn, now)  # retirees added since the registries were imported
        if old is not None:
            _discard(conn, old)
        # Read the open revision and open the next: later roster writes never look valid here.
        revision = (
            conn.execute(
                _clock.update().values(revision=_clock.c.revision + 1).returning(_clock.c.revision)
            ).scalar_one()
            - 1
        )
        run_id = conn.execute(
            _runs.insert()
            .values(
                period=str(period),
                created_at=now,
                actor=actor,
                policy=policy.model_dump(mode="json"),
                status="computed",
                summary={},
                roster_revision=revision,
            )
            .returning(_runs.c.id)
        ).scalar_one()
        columns = [
            "retiree_id",
            "decision",
            "reason",
            "amount_cents",
            "arrears_cents",
            "payable_cents",
            "basis_date",
            "owed_cents",
        ]
        select = _decisions_select(period, policy, before.id if before else None)
        conn.execute(
            _lines.insert().from_select(
                ["run_id", *columns],
                select.with_only_columns(sa.literal(run_id, sa.Integer), *select.selected_columns),
            )
        )
        _analyse(conn, "payment_lines")
        summary = summarise(conn, get_run(conn, period), before)
        conn.execute(_runs.update().where(_runs.c.id == run_id).values(summary=summary.as_json()))
    return RunSummary(**{**summary.__dict__, "recomputed": old is not None})


def get_run(conn: Connection, period: Period, lock: bool = False) -> Any:
    """The ``payment_runs`` row of ``period`` (``lock``: locked for this transaction on
    PostgreSQL; SQLite's transactions here are serialised anyway); ``RunError`` when there
    is none."""
    select = sa.select(_runs).where(_runs.c.period == str(period))
    row = conn.execute(select.with_for_update() if lock else select).first()
    if row is None:
        raise RunError(f"no payment run for {period}: run `lifecert-central payments run {period}`")
    return row


def latest_line(engine: Engine, retiree_id: str) -> dict[str, Any] | None:
    """What the latest run decided for a retiree: period, decision, reason, payable and
    arrears cents (None: no run yet, or not on the roster then). A hold for a missed
    certification is only this: no row of ``holds``."""
    with engine.connect() as conn:
        run = conn.execute(sa.select(_runs).order_by(_runs.c.period.desc()).limit(1)).first()
        if run is None:
            return None
        every = run_lines(run, retiree_ids=[retiree_id])
        line = conn.execute(
            sa.select(
                every.c.decision, every.c.reason, every.c.payable_cents, every.c.arrears_cents
            )
        ).first()
    return None if line is None else {"period": run.period, **line._mapping}


def lines(engine: Engine, period: Period, *, decision: str | None = None) -> Iterator[Any]:
    """The lines of a run in ID order (streamed), the columns of ``payment_lines``."""
    with engine.connect() as conn:
        run = get_run(conn, period)
        every = run_lines(run, stored_only=decision not in (None, Decision.PAY.value))
        query = sa.select(*(every.c[c.name] for c in _lines.c)).order_by(every.c.retiree_id)
        if decision:
            query = query.where(every.c.decision == decision)
        yield from conn.execute(query, execution_options={"yield_per": 10_000})
