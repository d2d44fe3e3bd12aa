"""``staff otp``: a staff member's second factor (TOTP codes from an authenticator app).

``enrol``, ``confirm`` and ``recovery-codes`` act on the signed-in member themself;
``reset`` is an administrator's, for someone else (a lost phone). The secret and the
recovery codes are shown once, to their member, and are never logged.
"""

import datetime as dt
import io
import os
from pathlib import Path

import click
import segno

from central.cli.context import State, require
from central.staff import otp
from central.staff.accounts import StaffError, check_staff_id
from central.staff.permissions import Permission
from common.cli import friendly_errors
from common.errors import LifecertError


def _id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return check_staff_id(value)
    except StaffError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group("otp")
def otp_group() -> None:
    """Second factor: TOTP codes that rechecking and approving money-moving proposals need.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key staff otp enrol
    """


@otp_group.command("init-key")
@click.pass_obj
@friendly_errors
def otp_init_key(state: State) -> None:
    """Create the key that encrypts second factors at rest ([staff] otp_key_file); `staff ca
    init` makes it too.

    \b
    Example:
        lifecert-central --config central.toml staff otp init-key
    """
    path = state.cfg.staff.otp_key_file
    if path.exists():
        raise LifecertError(f"{path} exists: keep it (enrolled second factors need it)")
    click.echo(f"wrote {otp.write_key(path)}")


def _write_png(qr: segno.QRCode, path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise LifecertError(f"--png: cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        qr.save(out, kind="png", scale=6, border=4)


@otp_group.command("enrol")
@click.option(
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the QR code to this new PNG file (0600) instead of the terminal.",
)
@click.pass_obj
@friendly_errors
def otp_enrol(state: State, png: Path | None) -> None:
    """Enrol your own second factor: scan the QR code (or the otpauth:// URI) with an
    authenticator app, then confirm with `staff otp confirm CODE`.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key staff otp enrol
    """
    actor = state.actor
    cipher = otp.OtpCipher.from_file(state.cfg.staff.otp_key_file)
    made = otp.enrol(state.engine(), cipher, actor, dt.datetime.now(dt.UTC))
    qr = segno.make_qr(made.uri, error="m")
    if png is not None:
        _write_png(qr, png)
        click.echo(f"QR code written to {png}: scan it, then delete the file")
    else:
        shown = io.StringIO()
        qr.terminal(out=shown, compact=True)
        click.echo(shown.getvalue())
    click.echo(made.uri)
    click.echo(
        f"pending: confirm with `lifecert-central staff otp confirm CODE` (as {actor.staff_id}) "
        "and the code the app shows"
    )


@otp_group.command("confirm")
@click.argument("code")
@click.pass_obj
@friendly_errors
def otp_confirm(state: State, code: str) -> None:
    """Confirm your pending second factor with the code the app shows now.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key staff otp confirm 492039
    """
    actor = state.actor
    cipher = otp.OtpCipher.from_file(state.cfg.staff.otp_key_file)
    codes = otp.confirm(state.engine(), cipher, actor, code, dt.datetime.now(dt.UTC))
    click.echo(f"second factor of {actor.staff_id} enrolled")
    _show_codes(actor.staff_id, codes)


def _show_codes(staff_id: str, codes: list[str]) -> None:
    click.echo(
        f"\nrecovery codes of {staff_id}: each works once instead of a code from the app "
        "(a lost phone).\nKeep them on paper or in a password manager, away from the "
        "phone; they are not shown again.\n"
    )
    for code in codes:
        click.echo(f"  {code}")


@otp_group.command("recovery-codes")
@click.argument("staff_id", callback=_id)
@click.option(
    "--otp",
    "code",
    metavar="CODE",
    help="Your authenticator app's current code, or one of your recovery codes.",
)
@click.pass_obj
@friendly_errors
def otp_recovery_codes(state: State, staff_id: str, code: str | None) -> None:
    """Issue yourself a new set of recovery codes (the old set stops working); needs a
    current code. A wrong code counts toward the lockout.

    \b
    Example:
        lifecert-central --staff-cert wang.pem --staff-key wang.key \\
            staff otp recovery-codes wang.li --otp 492039
    """
    actor = state.actor
    cipher = otp.OtpCipher.from_file(state.cfg.staff.otp_key_file)
    codes = otp.renew_recovery(
        state.engine(),
        cipher,
        actor,
        staff_id,
        code,
        dt.datetime.now(dt.UTC),
        limit=state.cfg.staff.max_failed_logins,
    )
    _show_codes(staff_id, codes)


@otp_group.command("reset")
@click.argument("staff_id", callback=_id)
@click.pass_obj
@friendly_errors
def otp_reset(state: State, staff_id: str) -> None:
    """Remove someone's second factor and recovery codes (a lost phone) so they can enrol
    again (administrator).

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key staff otp reset wang.li
    """
    actor = require(state, Permission.STAFF_MANAGE)
    otp.reset(state.engine(), actor, staff_id)
    click.echo(
        f"second factor and recovery codes of {staff_id} reset: they enrol again with "
        "`staff otp enrol`"
    )
