"""Commands of the audit log: ``audit verify``, ``export``, ``head``, ``seal`` (auditors)."""

import csv
import json
import os
import re
from pathlib import Path

import click

from central.cli.context import State, require
from central.staff import audit
from central.staff.permissions import Permission
from common.cli import friendly_errors
from common.errors import LifecertError

_ANCHOR = re.compile(r"^(\d+):([0-9a-f]{64})$")


def _anchor(_ctx: click.Context, _param: click.Parameter, value: str | None) -> object:
    if value is None:
        return None
    match = _ANCHOR.match(value)
    if not match:
        raise click.BadParameter("give ID:HASH as `audit head` prints it")
    return int(match[1]), match[2]


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key audit verify
    """


@audit_group.command("verify")
@click.option(
    "--expect", callback=_anchor, help="An anchor ID:HASH from `audit head` kept elsewhere."
)
@click.pass_obj
@friendly_errors
def verify(state: State, expect: tuple[int, str] | None) -> None:
    """Check the whole chain; exit 1 naming the first bad entry.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key audit verify --expect 1200:9f2c...
    """
    require(state, Permission.AUDIT_READ)
    engine = state.engine()
    with click.progressbar(length=audit.count(engine), label="verifying", file=None) as bar:
        try:
            verified = audit.verify(engine, expect=expect, progress=bar.update)
        except audit.ChainError as broken:
            click.echo("")
            raise LifecertError(f"audit chain broken at {broken}") from None
    click.echo(
        f"audit chain OK: {verified.entries} entries, head {verified.head[0]}:{verified.head[1]}"
    )
    if verified.unsealed_events:
        click.echo(
            f"{verified.unsealed_events} event(s) not yet in the chain: "
            "`lifecert-central audit seal` adds them"
        )


@audit_group.command("head")
@click.pass_obj
@friendly_errors
def head(state: State) -> None:
    """Print the newest entry as ID:HASH, an anchor to keep outside the database.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key audit head >> anchors.txt
    """
    require(state, Permission.AUDIT_READ)
    entry_id, entry_hash = audit.head(state.engine())
    click.echo(f"{entry_id}:{entry_hash}")


@audit_group.command("seal")
@click.pass_obj
@friendly_errors
def seal(state: State) -> None:
    """Add every event not yet in the chain to it.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key audit seal
    """
    require(state, Permission.AUDIT_READ)
    with state.engine().begin() as conn:
        sealed = audit.seal_events(conn, everything=True)
    click.echo(f"{sealed} event(s) added to the chain")


@audit_group.command("export")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="File to write (.csv or .jsonl).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    help="Default: from the file's suffix.",
)
@click.pass_obj
@friendly_errors
def export(state: State, out: Path, fmt: str | None) -> None:
    """Export the whole chain, in order, as CSV or JSON lines (with hashes, to re-check).

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key audit export --out audit.csv
    """
    require(state, Permission.AUDIT_READ)
    fmt = fmt or out.suffix.lstrip(".").lower()
    if fmt not in ("csv", "jsonl"):
        raise click.BadParameter("name a .csv or .jsonl file, or give --format", param_hint="--out")
    tmp = out.with_name(out.name + ".tmp")
    written = 0
    try:
        handle = tmp.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise LifecertError(f"--out: cannot write {out}: {exc.strerror}") from None
    with handle:
        if fmt == "csv":
            writer = csv.DictWriter(handle, fieldnames=list(audit.COLUMNS))
            writer.writeheader()
        for entry in audit.export(state.engine()):
            if fmt == "csv":
                writer.writerow(entry)
            else:
                handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
            written += 1
    os.replace(tmp, out)
    click.echo(f"{written} entries written to {out}")


COMMANDS = (audit_group,)
