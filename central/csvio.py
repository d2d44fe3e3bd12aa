"""CSV read by central: the problems an import reports, and its header checks.

Imports (roster, registries) report every problem as ``line N, field F: problem (fix)``
and share the header checks here.
"""

import collections
from collections.abc import Sequence
from dataclasses import dataclass

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
