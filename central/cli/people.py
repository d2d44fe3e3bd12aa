"""Commands of central's people room: ``roster``, ``retirees``, ``registry``, ``coverage``,
``population``."""

import datetime as dt
from pathlib import Path

import click

from central.cli.context import State, require
from central.cli.output import emit
from central.cli.params import check_id_number, check_printable
from central.cli.proposals import propose
from central.payments import recovery, runs
from central.people import coverage, population, registries
from central.people import queries as people_queries
from central.staff import audit
from central.staff.permissions import Permission
from common.cli import friendly_errors
from common.errors import LifecertError


@click.group("roster")
def roster_group() -> None:
    """The retiree roster.

    \b
    Example:
        lifecert-central roster import retirees.csv
    """


@roster_group.command("import")
@click.argument("csv_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--partial", is_flag=True, help="Import the good rows even if some are bad.")
@click.pass_obj
@friendly_errors
def roster_import(state: State, csv_file: Path, partial: bool) -> None:
    """Propose adding or changing retirees from a CSV file with a header row.

    Columns: id_number, name, sex, birth_date (required); community,
    monthly_amount, bank_account, account_name, status, retirement_date,
    certified_until (optional; only for retirees the file adds: a roster never
    moves a known retiree's certification). Every bad row is reported by line and
    field; nothing is proposed unless all rows are good (or --partial). The
    proposal's diff is shown by `proposals show`; it is written once rechecked and
    approved by others.

    \b
    Example:
        lifecert-central roster import retirees.csv --partial
    """
    made = propose(state, "roster_import", {"path": str(csv_file.resolve()), "partial": partial})
    for line in made.payload["skipped"]:
        click.echo(f"skipped: {line}", err=True)


@click.group("retirees")
def retirees_group() -> None:
    """Retirees and their certification status.

    \b
    Example:
        lifecert-central retirees show 110105195003071242
    """


@retirees_group.command("list")
@click.option("--status", help="Only this status (active, suspended, deceased, terminated).")
@click.option(
    "--due-before",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Only those certified until before this date (or never).",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def retirees_list(
    state: State, status: str | None, due_before: dt.datetime | None, limit: int, as_json: bool
) -> None:
    """List retirees with status, certified_until and open holds.

    \b
    Example:
        lifecert-central retirees list --due-before 2026-07-01 --json
    """
    rows = people_queries.list_retirees(
        state.engine(),
        status=status,
        due_before=due_before.date() if due_before else None,
        limit=limit,
    )
    emit(rows, as_json, ["id_number", "name", "status", "certified_until", "open_holds"])


@retirees_group.command("show")
@click.argument("id_number")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@click.pass_obj
@friendly_errors
def retirees_show(state: State, id_number: str, as_json: bool) -> None:
    """Show one retiree: status, certified_until, the latest run's decision, holds, results.

    \b
    Example:
        lifecert-central retirees show 110105195003071242 --json
    """
    engine = state.engine()
    found = people_queries.get_retiree(engine, id_number.strip().upper())
    if found is None:
        raise LifecertError(f"no retiree {id_number}: check the number or import the roster")
    found["payment"] = runs.latest_line(engine, found["id_number"])
    found.pop("bank_account", None)
    if as_json:
        emit(found, True, [])
        return
    for key in ("id_number", "name", "sex", "birth_date", "community", "status", "certified_until"):
        click.echo(f"{key:16} {'' if found[key] is None else found[key]}")
    if (paid := found["payment"]) is not None:
        why = f" ({paid['reason']})" if paid["reason"] else ""
        click.echo(f"{'payment':16} {paid['period']} {paid['decision']}{why}")
    click.echo("holds:")
    for h in found["holds"]:
        state_txt = f"released {h['released_at']:%Y-%m-%d}" if h["released_at"] else "OPEN"
        click.echo(f"  {h['reason']} since {h['since']:%Y-%m-%d} {state_txt}")
    click.echo("results:")
    for r in found["results"]:
        click.echo(
            f"  {r['received_at']:%Y-%m-%d %H:%M} {r['device_id']} #{r['seq']} "
            f"{r['method']} {r['decision']}"
        )


@retirees_group.command("change")
@click.argument("id_number", callback=check_id_number)
@click.option("--amount", help="New monthly amount, e.g. 3300.00.")
@click.option("--bank-account", help="New bank account (digits).")
@click.option("--account-name", help="New account holder's name.")
@click.option("--note", required=True, callback=check_printable(500, 1), help="Why (kept).")
@click.pass_obj
@friendly_errors
def retirees_change(
    state: State,
    id_number: str,
    amount: str | None,
    bank_account: str | None,
    account_name: str | None,
    note: str,
) -> None:
    """Propose a change of a retiree's monthly amount, bank account or account holder.

    \b
    Example:
        lifecert-central retirees change 110105195003071242 --amount 3300 --note "rise 2026"
    """
    payload = {"retiree_id": id_number, "note": note, "monthly_amount": amount}
    propose(
        state,
        "retiree_change",
        payload | {"bank_account": bank_account, "account_name": account_name},
    )


@retirees_group.command("certify")
@click.argument("id_number", callback=check_id_number)
@click.option("--until", required=True, help="New certified_until, YYYY-MM-DD.")
@click.option("--reason", required=True, callback=check_printable(500, 1), help="Why.")
@click.option(
    "--evidence", required=True, callback=check_printable(200, 1), help="Evidence reference."
)
@click.pass_obj
@friendly_errors
def retirees_certify(state: State, id_number: str, until: str, reason: str, evidence: str) -> None:
    """Propose a manual certification: certified_until moves once approved by others.

    \b
    Example:
        lifecert-central retirees certify 110105195003071242 --until 2027-05-31 \\
            --reason "home visit" --evidence "report 117"
    """
    payload = {"retiree_id": id_number, "certified_until": until, "reason": reason}
    propose(state, "certification", payload | {"evidence": evidence})


@click.group("registry")
def registry_group() -> None:
    """Death and prison registries.

    \b
    Example:
        lifecert-central registry import death deaths-2026-04.csv
    """


@registry_group.command("import")
@click.argument("kind", type=click.Choice([k.value for k in registries.RegistryKind]))
@click.argument("csv_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--partial", is_flag=True, help="Import the good rows even if some are bad.")
@click.pass_obj
@friendly_errors
def registry_import(state: State, kind: str, csv_file: Path, partial: bool) -> None:
    """Import a registry CSV; records match retirees on ID number AND birth date.

    death: id_number, birth_date, death_date (name optional).
    prison: id_number, birth_date, start_date, release_date (empty: still inside).

    \b
    Example:
        lifecert-central registry import prison prison-2026-04.csv --partial
    """
    actor = require(state, Permission.PROPOSAL_ENTER)  # not yet a proposal (proposals.md)
    engine = state.engine()
    report = registries.import_csv(engine, registries.RegistryKind(kind), csv_file, partial=partial)
    with engine.begin() as conn:
        counts = {k: v for k, v in report.__dict__.items() if k != "errors"}
        audit.record(conn, actor, "registry.import", f"{kind}:{csv_file.name}", None, counts)
    for err in report.errors:
        click.echo(f"skipped: {err}", err=True)
    click.echo(
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged; "
        f"{report.matched} matched to retirees, {report.deceased} marked deceased"
    )


@registry_group.command("hits")
@click.option("--summary", is_flag=True, help="Counts and amounts per category.")
@click.option("--category", help="Only this category (e.g. died_still_paid).")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def registry_hits(state: State, summary: bool, category: str | None, as_json: bool) -> None:
    """Registry records by category, with overpayments to recover.

    \b
    Example:
        lifecert-central registry hits --category died_still_paid
    """
    found = recovery.hits(state.engine())
    if summary:
        emit(recovery.summary(found), as_json, ["category", "count", "amount_cents"])
        return
    rows = [h.__dict__ for h in found if category in (None, h.category)]
    emit(rows, as_json, ["category", "id_number", "name", "amount_cents", "detail"])


@click.command("coverage")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="Date (default: today).")
@click.option(
    "--csv", "csv_out", type=click.Path(path_type=Path, dir_okay=False), help="Write CSV."
)
@click.option(
    "--png", "png_out", type=click.Path(path_type=Path, dir_okay=False), help="Write a bar chart."
)
@click.pass_obj
@friendly_errors
def coverage_cmd(
    state: State, as_of: dt.datetime | None, csv_out: Path | None, png_out: Path | None
) -> None:
    """Certification coverage per community: certified %, due soon, overdue.

    \b
    Example:
        lifecert-central coverage --as-of 2026-04-01 --csv coverage.csv --png coverage.png
    """
    day = as_of.date() if as_of else dt.date.today()
    rows = coverage.report(state.engine(), day, state.cfg.policy.reminder_days)
    cells = [r.__dict__ | {"certified_pct": f"{r.certified_pct:.1f}"} for r in rows]
    emit(cells, False, ["community", "retirees", "certified", "certified_pct", "due", "overdue"])
    if csv_out:
        csv_out.write_text(coverage.to_csv(rows), encoding="utf-8")
    if png_out:
        coverage.to_png(rows, png_out, day)


@click.group("population")
def population_group() -> None:
    """Synthetic retirees for benchmarks and demos.

    \b
    Example:
        lifecert-central population generate 1000 --out retirees.csv
    """


@population_group.command("generate")
@click.argument("count", type=click.IntRange(1))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--seed", default=1, show_default=True, help="Same seed, same people.")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), help="Reference date (certifications).")
@friendly_errors
def population_generate(count: int, out: Path, seed: int, as_of: dt.datetime | None) -> None:
    """Write COUNT synthetic retirees (valid ID numbers) as a roster CSV.

    \b
    Example:
        lifecert-central population generate 100000 --out synthetic.csv --seed 7
    """
    day = as_of.date() if as_of else dt.date.today()
    n = population.write_csv(population.generate(count, seed=seed, as_of=day), out)
    click.echo(f"wrote {n} retirees to {out}")


COMMANDS = (
    roster_group,
    retirees_group,
    registry_group,
    coverage_cmd,
    population_group,
)
