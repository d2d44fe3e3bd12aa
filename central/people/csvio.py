"""CSV in and out: the problems an import reports, header checks, and the one CSV writer.

Imports (roster, registries) report every problem as ``line N, field F: problem (fix)``
and share the header checks here. Every CSV central writes goes through ``writer``, which
neutralises spreadsheet formulas as OWASP advises against CSV injection: a text cell
starting with ``= + - @``, a tab or a carriage return gets a leading single quote, so a
spreadsheet shows it as text instead of running it, and every text cell is quoted, so a
spreadsheet splitting on another separator (``;`` in many locales) cannot start a new
cell inside one. Numbers (``int``, ``float``, ``Decimal``, and text that is only a number,
like ``-12.50``) keep their value: never prefixed, numbers unquoted.
"""

import collections
import csv
import decimal
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, all of it
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_LISTED = 10  # column names a header problem lists at most


@dataclass(frozen=True)
class RowError:
    """One problem in one row (``line`` 1 is the header)."""

    line: int
    field: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"line {self.line}, field {self.field}: {self.problem} ({self.fix})"


def header_errors(
    fieldnames: Sequence[str] | None, required: Sequence[str], optional: Sequence[str]
) -> list[RowError]:
    """Every problem of a header row (stripped names): none, duplicated, missing or unknown
    columns. Empty: the header is good."""
    if not fieldnames or not any(fieldnames):
        return [
            RowError(
                1, "*", "no header row (empty file)", "start with a header: " + ",".join(required)
            )
        ]
    errors = []
    seen = collections.Counter(fieldnames)
    for name in sorted(name for name, n in seen.items() if name and n > 1)[:_LISTED]:
        columns = [str(i) for i, c in enumerate(fieldnames, 1) if c == name]
        listed = ", ".join(columns[:_LISTED]) + ("..." if len(columns) > _LISTED else "")
        errors.append(
            RowError(
                1,
                _shown(name),
                f"column given twice (columns {listed})",
                "keep one of them: which value counts would be a guess",
            )
        )
    if missing := [c for c in required if c not in seen]:
        errors.append(RowError(1, ",".join(missing), "column missing", "add it to the header"))
    known = (*required, *optional)
    if unknown := [
        _shown(c) if c else f"(column {i} has no name)"
        for i, c in enumerate(fieldnames, 1)
        if c not in known
    ]:
        more = f" and {len(unknown) - _LISTED} more" if len(unknown) > _LISTED else ""
        errors.append(
            RowError(
                1,
                ",".join(unknown[:_LISTED]) + more,
                "unknown column",
                "remove it or check its spelling (known: " + ",".join(known) + ")",
            )
        )
    return errors


def _shown(name: str) -> str:
    """A column name fit to print: as it is, or quoted and escaped if it holds characters a
    terminal would act on."""
    return name if name.isprintable() else repr(name)


def text_problem(value: str) -> tuple[str, str] | None:
    """Why free text (a name, a community) cannot be stored, and the fix; None when it can.

    Refused: a start a spreadsheet reads as a formula, and control characters (a terminal
    or a report would act on them)."""
    if value.startswith(FORMULA_START):
        return (
            f"starts with {value[0]!r}, which a spreadsheet runs as a formula",
            "remove the leading character",
        )
    if control := _CONTROL.search(value):
        return (f"contains the control character U+{ord(control[0]):04X}", "remove it")
    return None


def cell(value: Any) -> Any:
    """``value`` as a CSV cell a spreadsheet shows and never runs (see the module docstring)."""
    if value is None or isinstance(value, bool | int | float | decimal.Decimal):
        return value
    text = str(value)
    if text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


class _Writer:
    """``csv.writer`` whose every cell goes through ``cell``."""

    def __init__(self, stream: TextIO) -> None:
        self._out = csv.writer(stream, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)

    def writerow(self, row: Iterable[Any]) -> None:
        self._out.writerow([cell(v) for v in row])


def writer(stream: TextIO) -> _Writer:
    """The CSV writer for every file central writes (formulas neutralised, text quoted)."""
    return _Writer(stream)
