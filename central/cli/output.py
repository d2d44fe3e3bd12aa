"""How commands print: rows as JSON or an aligned table, money in units."""

import json
from typing import Any

import click


def emit(rows: list[dict[str, Any]] | dict[str, Any], as_json: bool, columns: list[str]) -> None:
    """Print rows as JSON or as an aligned table of ``columns``."""
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2, ensure_ascii=False))
        return
    items = rows if isinstance(rows, list) else [rows]
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in items]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def money(cents: int) -> str:
    return f"{cents / 100:,.2f}"
