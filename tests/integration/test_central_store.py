"""Central's store on SQLite and PostgreSQL: migrations, roster import, CLI read side."""

import datetime as dt
import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner

from central.cli import main
from central.payments import holds
from central.people import roster
from central.store import db, schema
from common import idnumber
from tests.fixtures.proposals import staff_cli

pytestmark = pytest.mark.integration

WANG = idnumber.make("110105", dt.date(1950, 3, 7), 124)  # F
LI = idnumber.make("310104", dt.date(1948, 11, 30), 31)  # M
HEADER = "id_number,name,sex,birth_date,community,monthly_amount,status,certified_until\n"


def _csv(tmp_path: Path, body: str, name: str = "roster.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def _retirees(engine: Any) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(sa.select(schema.retirees).order_by(schema.retirees.c.id_number)).all()


def test_migrations_match_the_tables_and_repeat_safely(db_url: str) -> None:
    engine = db.create_engine(db_url)
    assert db.current_revision(engine) is None
    assert db.upgrade(engine) == db.head_revision(engine)
    assert db.upgrade(engine) == db.head_revision(engine)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), schema.metadata
        )
    assert diff == []
    engine.dispose()


def test_a_database_at_any_old_revision_upgrades(db_url: str) -> None:
    """The shipped revision ids are kept wherever the migrations live: a database at each of
    them is found at that revision and upgrades from it, one step at a time, to the head."""
    engine = db.create_engine(db_url)
    script = ScriptDirectory.from_config(db.alembic_config(engine))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert revisions[:9] == [f"{n:04d}" for n in range(1, 10)]
    for revision in revisions:
        assert db.upgrade(engine, revision) == revision
        assert db.current_revision(engine) == revision
    assert revisions[-1] == db.head_revision(engine)
    engine.dispose()


def _upgrade(url: str) -> str | None:
    engine = db.create_engine(url)
    try:
        return db.upgrade(engine)
    finally:
        engine.dispose()


def test_concurrent_upgrades_do_not_collide(db_url: str) -> None:
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        revisions = pool.map(_upgrade, [db_url] * 3)
    assert len(set(revisions)) == 1 and revisions[0] is not None


def test_good_roster_imports_and_reimport_updates(central_engine: Any, tmp_path: Path) -> None:
    first = _csv(
        tmp_path,
        f"{WANG},Wang Fang,F,1950-03-07,Chaoyang,3200.50,,\n{LI},Li Wei,m,1948-11-30,,,,\n",
    )
    report = roster.import_csv(central_engine, first)
    assert (report.added, report.updated, report.unchanged) == (2, 0, 0)
    rows = _retirees(central_engine)
    assert sorted(r.name for r in rows) == ["Li Wei", "Wang Fang"]
    wang = next(r for r in rows if r.id_number == WANG)
    assert wang.monthly_amount_cents == 320050 and wang.status == "active"
    assert wang.sex == "F" and wang.birth_date == dt.date(1950, 3, 7)

    second = _csv(
        tmp_path,
        f"{WANG},Wang Fang,F,1950-03-07,Haidian,3300,suspended,2027-01-31\n"
        f"{LI},Li Wei,M,1948-11-30,,,,\n",
        "second.csv",
    )
    report = roster.import_csv(central_engine, second)
    assert (report.added, report.updated, report.unchanged) == (0, 1, 1)
    wang = next(r for r in _retirees(central_engine) if r.id_number == WANG)
    assert (wang.community, wang.monthly_amount_cents, wang.status) == (
        "Haidian",
        330000,
        "suspended",
    )
    # a roster never moves a known retiree's certification, forwards or backwards
    assert wang.certified_until is None and report.ignored_certified_until == 1
    older = _csv(
        tmp_path, f"{WANG},Wang Fang,F,1950-03-07,Haidian,3300,suspended,2026-01-31\n", "o.csv"
    )
    assert roster.import_csv(central_engine, older).unchanged == 1
    with central_engine.connect() as conn:
        kinds = conn.scalars(sa.select(schema.events.c.kind).order_by(schema.events.c.id)).all()
        detail = conn.scalar(
            sa.select(schema.events.c.detail).where(schema.events.c.kind == "roster_updated")
        )
    assert kinds == ["roster_added", "roster_added", "roster_updated"]
    assert detail["community"] == ["Chaoyang", "Haidian"]


def test_bad_rows_reported_by_line_and_field_nothing_written(
    central_engine: Any, tmp_path: Path
) -> None:
    wrong_check = WANG[:-1] + ("0" if WANG[-1] != "0" else "1")
    path = _csv(
        tmp_path,
        f"{LI},Li Wei,M,1948-11-30,,,,\n"  # line 2: good
        f"{wrong_check},Bad Check,F,1950-03-07,,,,\n"  # line 3
        f"{WANG},Wang Fang,F,1950-03-08,,,,\n"  # line 4: birth date mismatch
        f"{WANG},Wang Fang,M,1950-03-07,,12.345,retired,2026-02-30\n"  # line 5
        f",No Id,F,1950-03-07,,,,\n",  # line 6
    )
    with pytest.raises(roster.RosterError) as err:
        roster.import_csv(central_engine, path)
    found = {(e.line, e.field) for e in err.value.errors}
    assert found == {
        (3, "id_number"),
        (4, "birth_date"),
        (5, "sex"),
        (5, "monthly_amount"),
        (5, "status"),
        (5, "certified_until"),
        (6, "id_number"),
    }
    text = str(err.value)
    assert f"line 3, field id_number: '{wrong_check}' is not a valid ID number: check digit" in text
    assert "line 4, field birth_date: 1950-03-08 but the ID number says 1950-03-07" in text
    assert _retirees(central_engine) == []

    report = roster.import_csv(central_engine, path, partial=True)
    assert report.added == 1 and {e.line for e in report.errors} == {3, 4, 5, 6}
    assert [r.id_number for r in _retirees(central_engine)] == [LI]


def test_header_problems_refuse_even_partial(central_engine: Any, tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("id_number,name,birthdate\n", encoding="utf-8")
    with pytest.raises(roster.RosterError) as err:
        roster.import_csv(central_engine, path, partial=True)
    assert {(e.line, e.field) for e in err.value.errors} == {
        (1, "sex,birth_date"),
        (1, "birthdate"),
    }


def test_duplicate_ids_in_one_file(central_engine: Any, tmp_path: Path) -> None:
    path = _csv(tmp_path, f"{LI},Li Wei,M,1948-11-30,,,,\n{LI},Li Wei,M,1948-11-30,,,,\n")
    with pytest.raises(roster.RosterError, match="line 3, field id_number: also on line 2"):
        roster.import_csv(central_engine, path)


def test_cli_roster_and_retirees(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "central.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[policy]\nvalidity_months = 12\n')

    def anonymous(*args: str) -> Any:
        return CliRunner().invoke(main, ["--config", str(config), *args])

    not_migrated = anonymous("retirees", "list")
    assert not_migrated.exit_code == 1 and "lifecert-central db upgrade" in not_migrated.output
    head = db.head_revision(db.create_engine(db_url))
    assert anonymous("db", "upgrade").output.strip() == f"database at revision {head}"
    cli = staff_cli(config, db_url, tmp_path / "staff")
    bad = _csv(tmp_path, f"{WANG},Wang Fang,F,1950-03-09,,,,\n")
    result = cli("roster", "import", str(bad), who="clerk")
    assert result.exit_code == 1
    assert "line 2, field birth_date" in result.output and "Traceback" not in result.output
    good = _csv(tmp_path, f"{WANG},Wang Fang,F,1950-03-07,Chaoyang,,,2026-09-30\n", "g.csv")
    proposed = cli("roster", "import", str(good), who="clerk")
    assert "roster g.csv: 1 added, 0 changed" in proposed.output
    assert '"added": 1' in cli.through(proposed).output
    listed = json.loads(cli("retirees", "list", "--json").output)
    assert listed == [
        {
            "id_number": WANG,
            "name": "Wang Fang",
            "community": "Chaoyang",
            "status": "active",
            "certified_until": "2026-09-30",
            "open_holds": 0,
        }
    ]
    holds.place(db.create_engine(db_url), WANG, "test")
    shown = cli("retirees", "show", WANG)
    assert "certified_until  2026-09-30" in shown.output and "manual since" in shown.output
    assert "OPEN" in shown.output
    assert (
        json.loads(cli("retirees", "show", WANG, "--json").output)["holds"][0]["released_at"]
        is None
    )
    missing = cli("retirees", "show", LI)
    assert missing.exit_code == 1 and "no retiree" in missing.output
    assert json.loads(cli("quarantine", "list", "--json").output) == []
    assert json.loads(cli("results", "list", "--json").output) == []
