"""Stored runs on the versioned roster: a run keeps saying what it paid (lines, bank file,
reconciliation, diff, explain) after the roster moves on; runs made before migration 0005
keep working; SQLite and PostgreSQL."""

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.hazmat.primitives.asymmetric import ec

from central.certification.settings import Policy
from central.payments import bankfile, review, runs
from central.payments.period import Period
from central.people import roster
from central.store import db, schema
from common import idnumber

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 6, 2, 9, tzinfo=dt.UTC)
ENROLLED = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # the roster's first month: January
APRIL, MAY, JUNE = (Period.parse(p) for p in ("2026-04", "2026-05", "2026-06"))
_serials = iter(range(300, 999))


def person(**values: Any) -> dict[str, Any]:
    """A roster row with a fresh valid ID number, paid 1,000.xx and certified through 2026."""
    serial = next(_serials)
    number = idnumber.make("110105", dt.date(1950, 3, 7), serial)
    row = {
        "id_number": number,
        "name": f"Retiree {serial}",
        "sex": idnumber.sex(number),
        "birth_date": dt.date(1950, 3, 7),
        "monthly_amount_cents": 100_000 + serial,
        "bank_account": f"6222000000{serial:04d}",
        "account_name": f"Retiree {serial}",
        "status": "active",
        "certified_until": dt.date(2026, 12, 31),
    }
    return row | values


def enrol(engine: Any, *rows: dict[str, Any]) -> list[str]:
    roster.upsert(engine, rows, "test", ENROLLED)
    return [r["id_number"] for r in rows]


def enrol_at_0005(engine: Any, *rows: dict[str, Any]) -> list[str]:
    """Insert ``rows`` into a database at revision 0005, in its columns (today's roster
    code reads columns later revisions added)."""
    stamped = [r | {"created_at": ENROLLED, "updated_at": ENROLLED} for r in rows]
    table = sa.table("retirees", *(sa.column(c) for c in stamped[0]))
    with engine.begin() as conn:
        conn.execute(table.insert(), stamped)
    return [r["id_number"] for r in rows]


def certify(engine: Any, retiree: str, until: dt.date) -> None:
    """Move ``certified_until`` as an applied pass would (a roster never moves it)."""
    with engine.begin() as conn:
        conn.execute(
            schema.retirees.update()
            .where(schema.retirees.c.id_number == retiree)
            .values(certified_until=until)
        )


def run(engine: Any, period: Period) -> runs.RunSummary:
    return runs.run(engine, period, Policy(), now=NOW)


def every_line(engine: Any, period: Period) -> list[tuple[Any, ...]]:
    """A run's lines without the storage id (pay lines have none)."""
    return [tuple(row)[2:] for row in runs.lines(engine, period)]


def reads(engine: Any, period: Period, ids: list[str]) -> tuple[Any, ...]:
    """Everything a stored run says: lines, summary, diff, explain of each retiree."""
    with engine.connect() as conn:
        summary = runs.get_run(conn, period).summary
    found = review.diff(engine, period)
    why = [review.explain(engine, period, i, Policy()) for i in ids]
    return every_line(engine, period), summary, found.transitions, found.changes, why


def test_a_stored_run_keeps_what_it_paid_after_the_roster_moves_on(central_engine: Any) -> None:
    moved, closed, certified, late, stays = enrol(
        central_engine,
        person(),
        person(),
        person(certified_until=dt.date(2026, 5, 31)),
        person(certified_until=dt.date(2026, 4, 10)),  # overdue from May: held
        person(),
    )
    ids = [moved, closed, certified, late, stays]
    run(central_engine, APRIL)
    run(central_engine, MAY)
    before = {p: reads(central_engine, p, ids) for p in (APRIL, MAY)}
    may = {line[0]: line for line in before[MAY][0]}
    assert may[late][1:3] == ("hold", "certification_overdue")
    assert may[moved][1:7] == ("pay", None, may[moved][3], 0, may[moved][3], dt.date(2026, 12, 31))

    newcomer, *_ = enrol(
        central_engine,
        person(),
        {
            "id_number": moved,
            "monthly_amount_cents": 250_000,
            "bank_account": "6222999999999999",
            "name": "Renamed Person",
            "account_name": "Renamed Person",
        },
        {"id_number": closed, "status": "terminated"},
    )
    certify(central_engine, certified, dt.date(2027, 6, 30))
    with central_engine.begin() as conn:  # by hand, beside the import: versioned all the same
        conn.execute(
            schema.retirees.update()
            .where(schema.retirees.c.id_number == stays)
            .values(monthly_amount_cents=123_400)
        )
    for period in (APRIL, MAY):
        assert reads(central_engine, period, ids) == before[period]
    with pytest.raises(runs.RunError, match="not in the run"):
        review.explain(central_engine, MAY, newcomer, Policy())

    june = run(central_engine, JUNE)
    lines = {line[0]: line for line in every_line(central_engine, JUNE)}
    assert lines[moved][1:5] == ("pay", None, 250_000, 0)
    assert lines[closed][1:3] == ("stop", "terminated")
    assert lines[newcomer][1] == "pay" and lines[stays][3] == 123_400
    assert lines[certified][6] == dt.date(2027, 6, 30)  # basis_date of a pay line
    assert june.decisions == {"pay": 4, "hold": 1, "stop": 1}
    assert june.payable_cents == sum(line[5] for line in lines.values())
    found = review.diff(central_engine, JUNE)
    assert found.transitions == {
        "(none) -> pay": 1,
        "pay -> pay": 2,
        "pay -> stop:terminated": 1,
    }
    assert {c["retiree_id"] for c in found.changes} == {moved, stays, closed, newcomer}
    assert reads(central_engine, MAY, ids) == before[MAY]  # June's run changed nothing of May


def test_recomputing_gives_the_same_lines_and_sees_later_changes(central_engine: Any) -> None:
    paid, held = enrol(central_engine, person(), person(certified_until=dt.date(2026, 2, 1)))
    first = run(central_engine, APRIL)
    lines = every_line(central_engine, APRIL)
    again = run(central_engine, APRIL)
    assert again.recomputed and every_line(central_engine, APRIL) == lines
    assert (again.decisions, again.reasons, again.payable_cents) == (
        first.decisions,
        first.reasons,
        first.payable_cents,
    )
    enrol(central_engine, {"id_number": paid, "monthly_amount_cents": 55_500})
    run(central_engine, APRIL)  # the latest run, not filed: recomputed from today's roster
    amounts = {line[0]: line[3] for line in every_line(central_engine, APRIL)}
    assert amounts == {paid: 55_500, held: next(x[3] for x in lines if x[0] == held)}


def roster_totals(engine: Any, period: Period) -> tuple[dict[str, Any], dict[str, int]]:
    """A run's stored roster totals, and the same counted from the roster at its revision."""
    with engine.connect() as conn:
        stored = runs.get_run(conn, period)
        at = runs.roster_at(stored.roster_revision)
        count, amount = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(at.c.monthly_amount_cents), 0))
        ).one()
    return stored.summary["roster"], {"retirees": count, "amount_cents": amount}


def test_a_run_counts_the_roster_from_the_previous_runs_totals(central_engine: Any) -> None:
    changed, gone, certified, *_ = enrol(
        central_engine, person(), person(), person(), person(monthly_amount_cents=None), person()
    )
    run(central_engine, APRIL)
    stored, counted = roster_totals(central_engine, APRIL)
    assert stored == counted == {"retirees": 5, "amount_cents": counted["amount_cents"]}
    added, brief = enrol(central_engine, person(monthly_amount_cents=7), person())
    enrol(central_engine, {"id_number": changed, "monthly_amount_cents": 1_000})
    enrol(central_engine, {"id_number": changed, "monthly_amount_cents": 2_000})  # same revision
    certify(central_engine, certified, dt.date(2027, 1, 31))
    with central_engine.begin() as conn:
        r = schema.retirees
        conn.execute(r.delete().where(r.c.id_number.in_([gone, brief])))
    may = run(central_engine, MAY)
    stored, counted = roster_totals(central_engine, MAY)
    assert stored == counted and counted["retirees"] == 5
    lines = every_line(central_engine, MAY)
    assert (sum(may.decisions.values()), may.payable_cents) == (5, sum(x[5] for x in lines))
    enrol(central_engine, {"id_number": added, "monthly_amount_cents": 9}, person())
    again = run(central_engine, MAY)  # from April's totals again, two revisions on
    stored, counted = roster_totals(central_engine, MAY)
    assert again.recomputed and stored == counted and counted["retirees"] == 6
    assert again.payable_cents == sum(x[5] for x in every_line(central_engine, MAY))
    run(central_engine, JUNE)
    stored, counted = roster_totals(central_engine, JUNE)
    assert stored == counted


def _keys() -> tuple[ec.EllipticCurvePrivateKey, ec.EllipticCurvePrivateKey]:
    return ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())


def test_bank_file_and_reconciliation_of_an_old_run_after_the_roster_changed(
    central_engine: Any, tmp_path: Path
) -> None:
    rows = [person(), person(), person(account_name="Someone Else")]
    first, second, withheld = enrol(central_engine, *rows)
    april = run(central_engine, APRIL)
    run(central_engine, MAY)
    enrol(
        central_engine,
        {"id_number": first, "bank_account": "6222777777777777", "monthly_amount_cents": 1},
        {"id_number": second, "name": "New Name", "account_name": "New Name"},
        {"id_number": withheld, "account_name": rows[2]["name"]},  # fixed, but after April
        person(),
    )
    central_key, bank_key = _keys()
    made = bankfile.make(
        central_engine, APRIL, "LIFECERT", tmp_path, central_key, bank_key.public_key(), NOW
    )
    data = bankfile.open_sealed(made.path.read_text(), bank_key, central_key.public_key())
    expected = [
        bankfile.Record(
            i, r["id_number"], r["bank_account"], r["account_name"], r["monthly_amount_cents"]
        )
        for i, r in enumerate(rows[:2], start=1)
    ]
    assert data == bankfile.render("LIFECERT", APRIL, april.run_id, NOW, expected)
    assert [w["id_number"] for w in made.withheld] == [withheld]

    def returned(account: str) -> bytes:
        records = [
            bankfile.Returned(2, 1, first, account, expected[0].amount_cents, "paid", ""),
            bankfile.Returned(
                3, 2, second, rows[1]["bank_account"], expected[1].amount_cents, "paid", ""
            ),
        ]
        return bankfile.render_return("LIFECERT", APRIL, april.run_id, records)

    rec = bankfile.reconcile(central_engine, APRIL, returned(rows[0]["bank_account"]), NOW)
    assert rec.payable_cents == rec.paid_cents + rows[2]["monthly_amount_cents"]
    assert [d["kind"] for d in rec.differences] == ["withheld"]
    rec = bankfile.reconcile(central_engine, APRIL, returned("6222777777777777"), NOW)
    assert [(d["kind"], d["id_number"]) for d in rec.differences] == [
        ("account_differs", first),  # paid to today's account, not the one April paid
        ("withheld", withheld),
    ]


def test_deleted_retiree_stays_in_the_runs_that_paid_them(central_engine: Any) -> None:
    gone, kept = enrol(central_engine, person(), person())
    run(central_engine, APRIL)
    lines = every_line(central_engine, APRIL)
    with central_engine.begin() as conn:
        conn.execute(schema.retirees.delete().where(schema.retirees.c.id_number == gone))
    assert every_line(central_engine, APRIL) == lines
    run(central_engine, MAY)
    assert [line[0] for line in every_line(central_engine, MAY)] == [kept]
    assert review.diff(central_engine, MAY).transitions == {"(left the roster)": 1}


def test_runs_made_before_the_migration_keep_their_lines(db_url: str, tmp_path: Path) -> None:
    engine = db.create_engine(db_url)
    db.upgrade(engine, "0004")
    rows = [person(), person(certified_until=dt.date(2026, 1, 31))]
    paid, held = (r["id_number"] for r in rows)
    amount = rows[0]["monthly_amount_cents"]
    with engine.begin() as conn:  # a roster and an April run as the code before 0005 stored them
        conn.execute(
            sa.insert(schema.retirees), [r | {"created_at": NOW, "updated_at": NOW} for r in rows]
        )
        legacy = conn.execute(
            sa.insert(schema.payment_runs)
            .values(
                period="2026-04",
                created_at=NOW,
                actor="test",
                policy={},
                status="computed",
                summary={"decisions": {"pay": 1, "hold": 1}},
            )
            .returning(schema.payment_runs.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(schema.payment_lines),
            [
                {
                    "run_id": legacy,
                    "retiree_id": paid,
                    "decision": "pay",
                    "reason": None,
                    "amount_cents": amount,
                    "arrears_cents": 0,
                    "payable_cents": amount,
                    "basis_date": dt.date(2026, 12, 31),
                },
                {
                    "run_id": legacy,
                    "retiree_id": held,
                    "decision": "hold",
                    "reason": "certification_overdue",
                    "amount_cents": rows[1]["monthly_amount_cents"],
                    "arrears_cents": 0,
                    "payable_cents": 0,
                    "basis_date": dt.date(2026, 1, 31),
                },
            ],
        )
    db.upgrade(engine)
    april = every_line(engine, APRIL)
    assert [(line[0], line[1]) for line in april] == [(paid, "pay"), (held, "hold")]
    newcomer, _ = enrol(engine, person(), {"id_number": paid, "bank_account": "6222888888888888"})
    assert every_line(engine, APRIL) == april  # the newcomer is not in the old run
    central_key, bank_key = _keys()
    made = bankfile.make(engine, APRIL, "LIFECERT", tmp_path, central_key, bank_key.public_key())
    data = bankfile.open_sealed(made.path.read_text(), bank_key, central_key.public_key())
    assert [(r.id_number, r.bank_account) for r in bankfile.parse(data)[1]] == [
        (paid, rows[0]["bank_account"])  # the account as it was when the database upgraded
    ]
    may = run(engine, MAY)
    assert may.decisions == {"pay": 2, "hold": 1}
    assert review.diff(engine, MAY).transitions == {"(none) -> pay": 1}

    command.downgrade(db.alembic_config(engine), "0004")  # pay lines written back
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(schema.payment_lines.c.retiree_id, schema.payment_lines.c.decision)
            .where(schema.payment_lines.c.run_id == may.run_id)
            .order_by(schema.payment_lines.c.retiree_id)
        ).all()
    assert sorted(stored) == sorted([(paid, "pay"), (held, "hold"), (newcomer, "pay")])
    engine.dispose()


def test_arrears_rows_become_the_lines_owed_and_come_back_on_downgrade(db_url: str) -> None:
    """0005 kept one arrears row per held month; 0006 carries them on the lines."""
    engine = db.create_engine(db_url)
    db.upgrade(engine, "0005")
    rows = [person(certified_until=dt.date(2026, 2, 28)), person()]  # the second certified
    owes, settled = enrol_at_0005(engine, *rows)
    a, b = (r["monthly_amount_cents"] for r in rows)
    line_columns = ("run_id", "retiree_id", "decision", "reason", "amount_cents")
    lines_0005 = sa.table(
        "payment_lines",
        *(sa.column(c) for c in (*line_columns, "arrears_cents", "payable_cents")),
    )
    arrears_columns = ("retiree_id", "period", "amount_cents", "held_in_run", "settled_in_run")
    arrears_0005 = sa.table("arrears", *(sa.column(c) for c in arrears_columns))
    with engine.begin() as conn:  # March and April as the code before 0006 stored them
        conn.execute(schema.roster_clock.update().values(revision=3))
        march, april = (
            conn.execute(
                sa.insert(schema.payment_runs)
                .values(
                    period=period,
                    created_at=NOW,
                    actor="test",
                    policy={},
                    status="computed",
                    summary={},
                    roster_revision=revision,
                )
                .returning(schema.payment_runs.c.id)
            ).scalar_one()
            for period, revision in (("2026-03", 1), ("2026-04", 2))
        )
        stored = [
            (march, owes, "hold", "certification_overdue", a, 0, 0),
            (march, settled, "hold", "certification_overdue", b, 0, 0),
            (april, owes, "hold", "certification_overdue", a, 0, 0),
            (april, settled, "resume", None, b, b, 2 * b),
        ]
        conn.execute(
            lines_0005.insert(),
            [dict(zip(lines_0005.c.keys(), line, strict=True)) for line in stored],
        )
        before = [
            (owes, "2026-03", a, march, None),
            (owes, "2026-04", a, april, None),
            (settled, "2026-03", b, march, april),
        ]
        conn.execute(
            arrears_0005.insert(),
            [dict(zip(arrears_columns, row, strict=True)) for row in before],
        )
    db.upgrade(engine)

    def arrears() -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            found = conn.execute(sa.text(f"SELECT {', '.join(arrears_columns)} FROM arrears"))
            return sorted(tuple(r) for r in found)

    assert arrears() == sorted(before)
    with engine.connect() as conn:
        owed = conn.execute(
            sa.select(
                schema.payment_lines.c.run_id,
                schema.payment_lines.c.retiree_id,
                schema.payment_lines.c.owed_cents,
            )
        ).all()
    assert sorted(owed) == sorted(
        [(march, owes, a), (march, settled, b), (april, owes, 2 * a), (april, settled, 0)]
    )
    again = run(engine, Period.parse("2026-04"))  # recomputed from March's lines: the same
    assert (again.decisions, again.arrears_cents) == ({"hold": 1, "resume": 1}, b)
    certify(engine, owes, dt.date(2027, 4, 30))
    may = run(engine, MAY)
    assert may.arrears_cents == 2 * a
    assert "2 month(s) held only for a missed certification (2026-03, 2026-04)" in (
        review.explain(engine, MAY, owes, Policy())
    )
    after = [
        (owes, "2026-03", a, march, may.run_id),
        (owes, "2026-04", a, again.run_id, may.run_id),
        (settled, "2026-03", b, march, again.run_id),
    ]
    assert arrears() == sorted(after)

    command.downgrade(db.alembic_config(engine), "0005")  # the table again, same rows
    assert arrears() == sorted(after)
    engine.dispose()


def test_open_certification_holds_are_released_by_the_migration(db_url: str) -> None:
    engine = db.create_engine(db_url)
    db.upgrade(engine, "0008")
    rows = [person(certified_until=dt.date(2026, 1, 31)), person()]
    late, kept = (r["id_number"] for r in rows)
    with engine.begin() as conn:  # holds as runs and staff placed them before 0009
        conn.execute(
            sa.insert(schema.retirees),
            [r | {"created_at": ENROLLED, "updated_at": ENROLLED} for r in rows],
        )
        conn.execute(
            sa.insert(schema.holds),
            [
                {"retiree_id": late, "reason": "certification_overdue", "since": NOW},
                {"retiree_id": kept, "reason": "manual", "since": NOW},
            ],
        )
        conn.execute(  # released before: left as it is
            sa.insert(schema.holds).values(
                retiree_id=kept,
                reason="certification_overdue",
                since=NOW - dt.timedelta(days=400),
                released_at=NOW - dt.timedelta(days=300),
            )
        )
    db.upgrade(engine)
    with engine.connect() as conn:
        holds = conn.execute(
            sa.select(
                schema.holds.c.retiree_id, schema.holds.c.reason, schema.holds.c.released_at
            ).order_by(schema.holds.c.id)
        ).all()
        events = conn.execute(
            sa.select(schema.events.c.retiree_id, schema.events.c.kind, schema.events.c.actor)
        ).all()
    assert holds[0][:2] == (late, "certification_overdue") and holds[0][2] > NOW
    assert holds[1] == (kept, "manual", None)  # staff holds stay open
    assert holds[2][2] == NOW - dt.timedelta(days=300)  # released ones keep their date
    assert events == [(late, "hold_released", "migration 0009")]
    run(engine, Period(2026, 4))  # still held: by the run's line now
    assert review.explain(engine, Period(2026, 4), late, Policy()).startswith(
        "2026-04 " + late + ": hold (certification_overdue)"
    )
    engine.dispose()
