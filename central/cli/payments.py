"""Commands of central's payments room: ``payments``, ``holds``, ``bank``."""

from pathlib import Path

import click

from central.certification.settings import Policy
from central.certification.versions import PolicyBook
from central.cli.context import State, require
from central.cli.output import emit, money
from central.cli.params import check_id_number, check_period, check_printable
from central.cli.proposals import propose
from central.payments import bankfile, review, runs, sftp
from central.payments.period import Period
from central.staff.permissions import Permission
from common.cli import friendly_errors
from common.errors import LifecertError


@click.group("payments")
def payments_group() -> None:
    """Monthly payment runs: pay, hold, stop, resume with arrears.

    \b
    Example:
        lifecert-central payments run 2026-04
    """


@payments_group.command("run")
@click.argument("period", callback=check_period)
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@click.pass_obj
@friendly_errors
def payments_run(state: State, period: Period, as_json: bool) -> None:
    """Compute and store the run of PERIOD (YYYY-MM); again = recompute until filed.

    A draft: filing it (`bank make`) is a proposal others recheck and approve.

    Runs go in order (the month after the latest, or the latest again). PERIOD must
    be within [payments] months_ahead (default 1) after this month and months_back
    (default 12) before it, and not before the roster's first month: the month of
    the first roster import. A wrong run not yet filed: `payments discard`.

    \b
    Example:
        lifecert-central --config central.toml payments run 2026-04
    """
    cfg = state.cfg
    actor = require(state, Permission.PROPOSAL_ENTER)
    engine = state.engine()
    policy = _policy(state, period)
    done = runs.run(engine, period, policy, actor=actor.staff_id, window=cfg.payments)
    if as_json:
        emit(done.as_json() | {"period": str(period), "run_id": done.run_id}, True, [])
        return
    verb = "recomputed" if done.recomputed else "computed"
    click.echo(f"run {done.run_id} for {period} {verb}:")
    for decision, n in sorted(done.decisions.items()):
        click.echo(f"  {decision:8} {n}")
    for reason, n in sorted(done.reasons.items()):
        click.echo(f"    {reason:24} {n}")
    click.echo(f"payable {money(done.payable_cents)} (arrears {money(done.arrears_cents)})")


@payments_group.command("discard")
@click.argument("period", callback=check_period)
@click.option(
    "--reason", required=True, callback=check_printable(500, 1), help="Why (kept in the event)."
)
@click.pass_obj
@friendly_errors
def payments_discard(state: State, period: Period, reason: str) -> None:
    """Discard the latest run while no bank file is made (e.g. a mistyped month).

    Its lines go, an event keeps the reason and its totals; the month before is then
    the latest again. A filed or sent run stands: correct it in the next run.

    \b
    Example:
        lifecert-central payments discard 2027-04 --reason "typed 2027 for 2026"
    """
    actor = require(state, Permission.PROPOSAL_ENTER)
    run_id = runs.discard(state.engine(), period, reason, actor.staff_id)
    click.echo(f"run {run_id} for {period} discarded")


@payments_group.command("show")
@click.argument("period", callback=check_period)
@click.option("--decision", type=click.Choice([d.value for d in runs.Decision]))
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def payments_show(
    state: State, period: Period, decision: str | None, limit: int, as_json: bool
) -> None:
    """List the lines of a run (ID order).

    \b
    Example:
        lifecert-central payments show 2026-04 --decision hold
    """
    rows = []
    for row in runs.lines(state.engine(), period, decision=decision):
        rows.append(dict(row._mapping))
        if len(rows) == limit:
            break
    columns = ["retiree_id", "decision", "reason", "amount_cents", "arrears_cents"]
    emit(rows, as_json, [*columns, "payable_cents", "basis_date"])


def _policy(state: State, period: Period) -> Policy:
    """The policy in force on ``period``'s first day (its ``grace_days``); ``[policy]`` for
    a month that has no first day (year 0: the run refuses it with its own message)."""
    try:
        first = period.first_day
    except ValueError:
        return state.cfg.policy
    return PolicyBook(state.engine(), state.cfg.policy).on(first)


@payments_group.command("explain")
@click.argument("period", callback=check_period)
@click.argument("id_number", callback=check_id_number)
@click.pass_obj
@friendly_errors
def payments_explain(state: State, period: Period, id_number: str) -> None:
    """Say what a run decided for one retiree, and why.

    \b
    Example:
        lifecert-central payments explain 2026-04 110105195003071242
    """
    engine = state.engine()
    policy = _policy(state, period)
    click.echo(review.explain(engine, period, id_number, policy))


@payments_group.command("diff")
@click.argument("period", callback=check_period)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(0))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
@click.pass_obj
@friendly_errors
def payments_diff(state: State, period: Period, limit: int, as_json: bool) -> None:
    """What changed since the previous month's run: counts per transition, then examples.

    \b
    Example:
        lifecert-central payments diff 2026-05 --limit 50
    """
    found = review.diff(state.engine(), period, limit=limit)
    if as_json:
        emit(found.__dict__, True, [])
        return
    if found.previous is None:
        click.echo(f"no run for {period.shift(-1)}: nothing to compare")
        return
    click.echo(f"{found.previous} -> {found.period}:")
    for transition, n in sorted(found.transitions.items()):
        click.echo(f"  {transition:48} {n}")
    if found.changes:
        emit(found.changes, False, ["retiree_id", "old", "new", "new_payable_cents"])


@click.group("holds")
def holds_group() -> None:
    """Manual payment holds.

    \b
    Example:
        lifecert-central holds place 110105195003071242 --note "bank letter returned"
    """


@holds_group.command("place")
@click.argument("id_number", callback=check_id_number)
@click.option("--note", required=True, callback=check_printable(500, 1), help="Why (kept).")
@click.pass_obj
@friendly_errors
def holds_place(state: State, id_number: str, note: str) -> None:
    """Propose a manual hold: once approved, the retiree is held from the next run.

    \b
    Example:
        lifecert-central holds place 110105195003071242 --note "letter returned"
    """
    propose(state, "hold", {"retiree_id": id_number, "action": "place", "note": note})


@holds_group.command("release")
@click.argument("id_number", callback=check_id_number)
@click.option("--note", required=True, callback=check_printable(500, 1), help="Why (kept).")
@click.pass_obj
@friendly_errors
def holds_release(state: State, id_number: str, note: str) -> None:
    """Propose releasing a retiree's open manual holds (no back-pay for the held months).

    \b
    Example:
        lifecert-central holds release 110105195003071242 --note "address confirmed"
    """
    propose(state, "hold", {"retiree_id": id_number, "action": "release", "note": note})


@click.group("bank")
def bank_group() -> None:
    """Bank payment files: make, send over SFTP, reconcile the return file.

    \b
    Example:
        lifecert-central bank make 2026-04 && lifecert-central bank send 2026-04
    """


@bank_group.command("make")
@click.argument("period", callback=check_period)
@click.pass_obj
@friendly_errors
def bank_make(state: State, period: Period) -> None:
    """Propose filing a computed run: once approved, its signed, encrypted payment file is
    written and the run frozen.

    \b
    Example:
        lifecert-central --config central.toml bank make 2026-04
    """
    propose(state, "bank_make", {"period": str(period)})


@bank_group.command("send")
@click.argument("period", callback=check_period)
@click.pass_obj
@friendly_errors
def bank_send(state: State, period: Period) -> None:
    """Propose releasing a filed run's payment file: once approved, it is uploaded to the
    bank's SFTP server (pinned host key).

    \b
    Example:
        lifecert-central bank send 2026-04
    """
    propose(state, "bank_send", {"period": str(period)})


@bank_group.command("reconcile")
@click.argument("period", callback=check_period)
@click.argument("return_file")
@click.option("--fetch", is_flag=True, help="Download RETURN_FILE from the SFTP server first.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
@friendly_errors
def bank_reconcile(
    state: State, period: Period, return_file: str, fetch: bool, as_json: bool
) -> None:
    """Verify the bank's signed return file and list every payable/paid difference.

    \b
    Example:
        lifecert-central bank reconcile 2026-04 LIFECERT-2026-04.return --fetch
    """
    require(state, Permission.PROPOSAL_ENTER)  # stores the bank's answer: a signed-in clerk
    cfg = state.cfg
    local = Path(return_file)
    if fetch:
        local = sftp.download(cfg.bank.sftp, return_file, cfg.bank.out_dir / Path(return_file).name)
    try:
        token = local.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise LifecertError(f"cannot read {local}: {exc}") from None
    data = bankfile.verify_return(
        token, bankfile.load_public_key(cfg.bank.return_sign_pub, "bank.return_sign_pub")
    )
    rec = bankfile.reconcile(state.engine(), period, data)
    cols = ["kind", "id_number", "payable_cents", "paid_cents", "detail"]
    if as_json:
        emit(rec.__dict__, True, cols)
        return
    click.echo(
        f"payable {money(rec.payable_cents)}, paid {money(rec.paid_cents)}, "
        f"{len(rec.differences)} difference(s)"
    )
    if rec.differences:
        emit(rec.differences, False, cols)


COMMANDS = (
    payments_group,
    holds_group,
    bank_group,
)
