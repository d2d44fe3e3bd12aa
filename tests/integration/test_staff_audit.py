"""The audit chain on SQLite and PostgreSQL: changed, removed, reordered or inserted
entries and events are detected; concurrent appends keep the chain linear."""

import datetime as dt
import itertools
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from central.staff import audit
from central.staff.identity import Actor, Role
from central.staff.tables import audit_log
from central.store.schema import events
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

CLERK = Actor("li.na", frozenset({Role.ENTRY_CLERK}), via="console", address="10.1.2.3")


def _event(conn: Any, kind: str, retiree: str = "110105195003071242") -> None:
    conn.execute(
        events.insert().values(
            at=dt.datetime.now(dt.UTC),
            kind=kind,
            retiree_id=retiree,
            actor="device:t-1",
            detail={"score": 0.91, "note": "ünïcode"},
        )
    )


def _chain(engine: Engine, entries: int = 6) -> None:
    """``entries`` staff actions with two events in between."""
    with engine.begin() as conn:
        for n in range(entries):
            if n == 2:
                _event(conn, "result_applied")
                _event(conn, "hold_released")
            audit.record(conn, CLERK, "proposal.enter", f"retiree:{n}", {"n": n}, {"n": n + 1})


def _tamper(engine: Engine, *statements: str) -> None:
    """Run SQL past the append-only triggers, as someone with the database's keys would."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
            conn.exec_driver_sql("DROP TRIGGER audit_log_no_delete")
        for statement in statements:
            conn.exec_driver_sql(statement)


def _broken_at(engine: Engine, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(audit.ChainError) as caught:
        audit.verify(engine, **kwargs)
    return caught.value.entry_id, caught.value.problem


def test_an_intact_chain_verifies_and_seals_events(staff_engine: Engine) -> None:
    assert tuple(audit_log.c.keys()) == audit.COLUMNS  # verify reads rows by position
    _chain(staff_engine)
    verified = audit.verify(staff_engine)
    assert verified.entries == 8 and verified.unsealed_events == 0
    with staff_engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log).order_by(audit_log.c.id)).all()
    assert [r.action for r in rows[2:4]] == ["event.result_applied", "event.hold_released"]
    assert rows[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    first = rows[0]
    assert (first.staff_id, first.roles, first.via, first.address) == (
        "li.na",
        "entry_clerk",
        "console",
        "10.1.2.3",
    )
    assert (first.before, first.after) == ('{"n":0}', '{"n":1}')
    with staff_engine.begin() as conn:
        _event(conn, "late")
    assert audit.verify(staff_engine).unsealed_events == 1
    with staff_engine.begin() as conn:
        assert audit.seal_events(conn) == 1
    assert audit.verify(staff_engine).entries == 9


def test_the_database_refuses_to_change_the_log(staff_engine: Engine) -> None:
    _chain(staff_engine, 2)
    for statement in ("UPDATE audit_log SET target = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), staff_engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert audit.verify(staff_engine).entries == 2


def test_a_changed_entry_is_detected(staff_engine: Engine) -> None:
    _chain(staff_engine)
    _tamper(staff_engine, """UPDATE audit_log SET after = '{"n":99}' WHERE id = 5""")
    assert _broken_at(staff_engine) == (5, "its content does not match its hash (changed)")


def test_a_removed_entry_is_detected(staff_engine: Engine) -> None:
    _chain(staff_engine)
    _tamper(staff_engine, "DELETE FROM audit_log WHERE id = 2")
    entry, problem = _broken_at(staff_engine)
    assert entry == 2 and "removed" in problem


def test_reordered_entries_are_detected(staff_engine: Engine) -> None:
    _chain(staff_engine)
    _tamper(
        staff_engine,
        "UPDATE audit_log SET id = -1 WHERE id = 5",
        "UPDATE audit_log SET id = 5 WHERE id = 6",
        "UPDATE audit_log SET id = 6 WHERE id = -1",
    )
    entry, problem = _broken_at(staff_engine)
    assert entry == 5 and "reordered" in problem


def test_an_inserted_entry_is_detected(staff_engine: Engine) -> None:
    """Make room after entry 4, insert a forged entry that chains onto it correctly, and
    point the next entry at it (``prev_hash`` is unique: no two entries follow one)."""
    _chain(staff_engine)
    with staff_engine.connect() as conn:
        after = conn.execute(sa.select(audit_log).where(audit_log.c.id == 4)).one()
    forged = audit._make(
        (4, after.hash),
        at=dt.datetime.now(dt.UTC),
        staff_id="mallory",
        roles="approver",
        action="proposal.approve",
        target="run:2026-12",
        before=None,
        after=None,
        address=None,
        cert_serial=None,
        via="console",
        event_id=None,
    )
    _tamper(
        staff_engine,
        *(f"UPDATE audit_log SET id = {n + 100} WHERE id = {n}" for n in range(8, 4, -1)),
        *(f"UPDATE audit_log SET id = {n - 99} WHERE id = {n}" for n in range(105, 109)),
        f"UPDATE audit_log SET prev_hash = '{forged.hash}' WHERE id = 6",
    )
    with staff_engine.begin() as conn:
        conn.execute(audit_log.insert(), [audit._values(forged)])
    entry, problem = _broken_at(staff_engine)
    assert entry == 6 and "changed" in problem


def test_a_rewritten_chain_is_caught_by_an_anchor(staff_engine: Engine) -> None:
    """Someone recomputes every hash after changing entry 1: only an anchor kept outside
    the database catches that."""
    _chain(staff_engine)
    anchor = audit.head(staff_engine)
    with staff_engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(audit_log).order_by("id"))]
    rows[0]["target"] = "retiree:forged"
    prev = audit.GENESIS
    for row in rows:
        row["prev_hash"] = prev
        row["hash"] = prev = audit.entry_hash(audit.Entry(**row))
    _tamper(staff_engine, "DELETE FROM audit_log")
    with staff_engine.begin() as conn:
        conn.execute(audit_log.insert(), rows)
    assert audit.verify(staff_engine).entries == 8
    assert _broken_at(staff_engine, expect=anchor) == (
        8,
        "hash differs from the anchor (chain rewritten)",
    )


def test_changed_or_removed_events_are_detected(staff_engine: Engine) -> None:
    _chain(staff_engine)
    with staff_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE events SET retiree_id = '310104194811300031' WHERE id = 1")
    assert _broken_at(staff_engine) == (3, "event 1 it seals was changed")
    with staff_engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM events WHERE id = 2")
        conn.exec_driver_sql("UPDATE events SET retiree_id = '110105195003071242' WHERE id = 1")
    assert _broken_at(staff_engine) == (4, "event 2 it seals was removed")


def test_concurrent_appends_keep_one_linear_chain(staff_engine: Engine) -> None:
    workers, each = 4, 15
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def append(worker: int) -> None:
        try:
            start.wait()
            for n in range(each):
                with staff_engine.begin() as conn:
                    audit.record(conn, CLERK, "proposal.enter", f"w{worker}:{n}")
                    if n % 5 == 0:
                        _event(conn, f"w{worker}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with staff_engine.begin() as conn:
        audit.seal_events(conn)
    verified = audit.verify(staff_engine)
    assert verified.entries == workers * each + workers * 3
    assert verified.unsealed_events == 0


def test_sealing_goes_in_batches_and_finds_late_commits(
    staff_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "_BATCH", 2)
    monkeypatch.setattr(audit, "_EVENT_WINDOW", 3)
    with staff_engine.begin() as conn:
        for n in range(5):
            _event(conn, f"e{n}")
        conn.execute(
            events.insert().values(  # an event committed late with a low id
                id=100, at=dt.datetime.now(dt.UTC), kind="far", actor="x", detail={}
            )
        )
        assert audit.seal_events(conn) == 6
        conn.execute(
            events.insert().values(
                id=50, at=dt.datetime.now(dt.UTC), kind="late", actor="x", detail={}
            )
        )
        assert audit.seal_events(conn) == 0  # further back than the window
        assert audit.seal_events(conn, everything=True) == 1
    with staff_engine.connect() as conn:
        sealed = conn.scalars(sa.select(audit_log.c.event_id).order_by(audit_log.c.id)).all()
    assert sealed == [1, 2, 3, 4, 5, 100, 50]
    assert audit.verify(staff_engine).entries == 7


def test_the_service_seals_events_as_they_come(staff_engine: Engine) -> None:
    stop = threading.Event()
    sealer = threading.Thread(target=audit.seal_until, args=(staff_engine, stop, 0.05))
    sealer.start()
    try:
        with staff_engine.begin() as conn:
            _event(conn, "result_applied")
        wait_until(lambda: audit.verify(staff_engine).entries == 1, timeout=10)
    finally:
        stop.set()
        sealer.join(5)
    assert not sealer.is_alive()
    assert audit.verify(staff_engine).unsealed_events == 0
