"""Roster and registry parsers fuzzed (rows or line-numbered errors, never a crash); policy."""

import csv
import datetime as dt
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.certification.policy import certified_until
from central.certification.settings import Policy
from central.payments.period import Period, PeriodError
from central.people import registries, roster
from common import idnumber
from tests.unit.test_central_units import read_roster

TODAY = dt.date(2026, 6, 1)
ID = idnumber.make("110105", dt.date(1950, 3, 7), 124)
cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
dates = st.dates(dt.date(1900, 1, 1), dt.date(2026, 5, 31))


def _csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_any_text_is_rows_or_errors(text: str) -> None:
    try:
        _, errors = read_roster(text)
    except roster.RosterError as exc:  # a bad header, or CSV that cannot be read on
        errors = exc.errors
    assert all(e.line >= 1 and e.field and e.problem and e.fix for e in errors)
    for kind in registries.RegistryKind:
        records, problems = registries.read(kind, text, TODAY)
        assert all(e.line >= 1 and e.field for e in problems)
        assert all(r.kind is kind for r in records)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(cells, min_size=4, max_size=5), max_size=8))
def test_random_cells_under_a_valid_header(rows: list[list[str]]) -> None:
    header = ["id_number", "name", "birth_date", "start_date", "release_date"]
    records, errors = registries.read(registries.RegistryKind.PRISON, _csv(header, rows), TODAY)
    assert len(records) + len({e.line for e in errors}) <= len(rows)
    for rec in records:
        assert idnumber.validate(rec.id_number) == rec.id_number
        assert rec.end_date is None or rec.end_date >= rec.start_date


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(dates, st.integers(0, 999), dates), min_size=1, max_size=10))
def test_valid_death_rows_all_parse(rows: list[tuple[dt.date, int, dt.date]]) -> None:
    body = []
    for born, serial, other in rows:
        died = max(born, other)
        body.append([idnumber.make("110105", born, serial), str(born), str(died)])
    records, errors = registries.read(
        registries.RegistryKind.DEATH,
        _csv(["id_number", "birth_date", "death_date"], body),
        TODAY,
    )
    keys = {(r[0], r[2]) for r in body}
    assert len(records) == len(keys)
    assert all("same record" in e.problem for e in errors)


def test_registry_row_errors_name_line_field_rule() -> None:
    good = idnumber.make("110105", dt.date(1950, 3, 7), 124)
    text = (
        "id_number,name,birth_date,start_date,release_date\n"
        f"{good},A,1950-03-08,2026-01-01,\n"
        f"{good[:-1]}0,B,1950-03-07,2026-01-01,\n"
        f"{good},C,1950-03-07,2026-07-01,2026-06-01\n"
        f"{good},D,1950-03-07,2026-02-30,\n"
    )
    _, errors = registries.read(registries.RegistryKind.PRISON, text, TODAY)
    assert [(e.line, e.field) for e in errors] == [
        (2, "birth_date"),
        (3, "id_number"),
        (4, "start_date"),
        (4, "release_date"),
        (5, "start_date"),
    ]


@pytest.mark.parametrize(
    ("passed", "born", "expected"),
    [
        (dt.date(2027, 2, 10), dt.date(1952, 2, 29), dt.date(2028, 2, 29)),  # inside the window
        (dt.date(2027, 1, 10), dt.date(1952, 2, 29), dt.date(2027, 2, 28)),  # before it
        (dt.date(2026, 12, 10), dt.date(1950, 1, 15), dt.date(2027, 1, 15)),  # 36 days early
        (dt.date(2026, 12, 31), dt.date(1950, 1, 15), dt.date(2028, 1, 15)),  # 15 days early
    ],
)
def test_birthday_anchor(passed: dt.date, born: dt.date, expected: dt.date) -> None:
    assert certified_until(passed, born, Policy(birthday_anchored=True)) == expected


def test_plain_validity_and_periods() -> None:
    assert certified_until(dt.date(2024, 2, 29), dt.date(1950, 1, 1), Policy()) == dt.date(
        2025, 2, 28
    )
    period = Period.parse("2024-02")
    assert (period.first_day, period.last_day, str(period.shift(-2))) == (
        dt.date(2024, 2, 1),
        dt.date(2024, 2, 29),
        "2023-12",
    )
    for bad in ("2024-13", "24-01", "2024/01", ""):
        with pytest.raises(PeriodError, match="YYYY-MM"):
            Period.parse(bad)
    with pytest.raises(ValueError, match="whole years"):
        Policy(birthday_anchored=True, validity_months=18)


@pytest.mark.parametrize(
    ("header", "field", "problem"),
    [
        ("id_number,name,sex,birth_date,name", "name", "column given twice (columns 2, 5)"),
        ("id_number,name,sex", "birth_date", "column missing"),
        ("id_number,name,sex,birth_date,birthdate", "birthdate", "unknown column"),
        ("id_number,name,sex,birth_date,", "(column 5 has no name)", "unknown column"),
        ("", "*", "no header row (empty file)"),
        ("id_number,name,sex,birth_date," + "x" * 200_000, "*", "not valid CSV"),
        ("id_number,name,sex,birth_date,\x1b[2J", "'\\x1b[2J'", "unknown column"),
    ],
)
def test_header_problems_name_the_column_and_the_fix(header: str, field: str, problem: str) -> None:
    body = f"{header}\n{ID},Wang Fang,F,1950-03-07,Wang\n" if header else ""
    if len(header) > 1000:
        problem, field = "not valid CSV: field larger than field limit", "*"
    with pytest.raises(roster.RosterError) as info:
        read_roster(body)
    (error,) = info.value.errors
    assert (error.line, error.field) == (1, field) and error.problem.startswith(problem)
    assert error.fix
    for kind in registries.RegistryKind:
        _, errors = registries.read(kind, body.replace("sex", "birth_date", 1), TODAY)
        assert errors and all(e.line == 1 for e in errors)


def test_a_byte_order_mark_and_spaces_around_names_are_not_columns() -> None:
    good, errors = read_roster(
        f"\ufeff id_number , name,sex,birth_date\n{ID},Wang Fang,F,1950-03-07\n"
    )
    assert errors == [] and [v["id_number"] for _, v in good] == [ID]
