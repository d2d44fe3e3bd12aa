"""Commands of central's staff room: ``staff`` (accounts, roles, lockout, the staff CA,
staff certificates and, in ``staff_otp``, second factors).

Every change acts as the signed-in staff member (``--staff-cert``/``--staff-key``) and is
audited. Two steps work without signing in, once each: ``staff ca init`` and
``staff add --first-admin`` (only while no staff account exists).
"""

import os
from pathlib import Path
from typing import Any

import click

from central import proposals
from central.cli.context import State, require
from central.cli.output import emit
from central.cli.proposals import propose
from central.cli.staff_otp import otp_group
from central.staff import accounts, ca, directory, otp
from central.staff.identity import Role
from central.staff.permissions import Permission
from common.cli import friendly_errors
from common.errors import LifecertError

_ROLE = click.Choice([r.value for r in Role])
_COLUMNS = [
    "staff_id",
    "name",
    "roles",
    "communities",
    "sites",
    "active",
    "locked",
    "failed_logins",
]


def _check_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return accounts.check_staff_id(value)
    except accounts.StaffError as exc:
        raise click.BadParameter(str(exc)) from None


def _row(account: accounts.Account) -> dict[str, object]:
    item = account.as_dict()
    for key in ("roles", "communities", "sites"):
        item[key] = ",".join(item[key])
    return item


def _check_out(out: Path, staff_id: str) -> None:
    """Before issuing: ``out`` is a writable folder without ``STAFF_ID.pem``/``.key``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LifecertError(f"--out: cannot make the folder {out}: {exc.strerror}") from None
    for path in (out / f"{staff_id}.pem", out / f"{staff_id}.key"):
        if path.exists():
            raise LifecertError(f"--out: {path} exists: choose another folder")
    if not os.access(out, os.W_OK):
        raise LifecertError(f"--out: cannot write to {out}: choose another folder")


def _write_credentials(out: Path, issued: ca.Issued, staff_id: str) -> tuple[Path, Path]:
    """``out/STAFF_ID.pem`` and ``out/STAFF_ID.key`` (0600); never over existing files."""
    cert_path, key_path = out / f"{staff_id}.pem", out / f"{staff_id}.key"
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(issued.key_pem())
        cert_path.write_bytes(ca.pem(issued.cert))
    except FileExistsError:
        raise LifecertError(
            f"--out: {key_path} exists: choose another folder (the certificate "
            f"{ca.serial_hex(issued.cert)} was issued: revoke it)"
        ) from None
    except OSError as exc:
        raise LifecertError(
            f"--out: cannot write to {out}: {exc.strerror} (the certificate "
            f"{ca.serial_hex(issued.cert)} was issued: revoke it)"
        ) from None
    return cert_path, key_path


@click.group("staff")
def staff_group() -> None:
    """Staff accounts, roles and staff certificates.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key staff list
    """


@staff_group.command("add")
@click.argument("staff_id", callback=_check_id)
@click.option("--name", required=True, help="Full name.")
@click.option("--role", "roles", type=_ROLE, multiple=True, help="A role (repeat for more).")
@click.option("--community", "communities", multiple=True, help="A coordinator's community.")
@click.option("--site", "sites", multiple=True, help="A site where they may assist at terminals.")
@click.option(
    "--first-admin",
    is_flag=True,
    help="Bootstrap: one of the first administrators ([proposals] staff_change of them), "
    "without signing in (only while no other staff exist).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="With --first-admin: folder for their certificate and key.",
)
@click.pass_obj
@friendly_errors
def add(
    state: State,
    staff_id: str,
    name: str,
    roles: tuple[str, ...],
    communities: tuple[str, ...],
    sites: tuple[str, ...],
    first_admin: bool,
    out: Path | None,
) -> None:
    """Propose a staff account (an administrator, signed in): it is made when a second
    administrator approves it (`proposals approve ID`).

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key \\
            staff add wang.li --name "Wang Li" --role coordinator --community Hepingli
        lifecert-central staff add root --name "First Admin" --first-admin --out certs/
    """
    engine = state.engine()
    if first_admin:
        if roles or communities or sites:
            raise click.UsageError("--first-admin is an administrator only: drop --role etc.")
        if out is None:
            raise click.UsageError("--first-admin needs --out FOLDER for the certificate")
        _check_out(out, staff_id)
        up_to = state.cfg.proposals.staff_change
        issued = ca.bootstrap(engine, state.cfg.staff, staff_id, name, up_to)
        cert_path, key_path = _write_credentials(out, issued, staff_id)
        click.echo(f"added {staff_id} (administrator); certificate {cert_path}, key {key_path}")
        return
    payload = {
        "staff_id": staff_id,
        "name": name,
        "roles": list(roles),
        "communities": list(communities),
        "sites": list(sites),
    }
    propose(state, "staff_add", payload, Permission.STAFF_MANAGE)


@staff_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@friendly_errors
def list_(state: State, as_json: bool) -> None:
    """List staff accounts.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key staff list --json
    """
    require(state, Permission.STAFF_READ)
    rows = [_row(a) for a in accounts.list_accounts(state.engine())]
    emit(rows, as_json, _COLUMNS)


@staff_group.command("show")
@click.argument("staff_id", callback=_check_id)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@friendly_errors
def show(state: State, staff_id: str, as_json: bool) -> None:
    """Show one account, its second factor (enrolled, pending, none), how many recovery
    codes it has left and its certificates.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key staff show wang.li
    """
    require(state, Permission.STAFF_READ)
    engine = state.engine()
    account = accounts.get(engine, staff_id)
    if account is None:
        raise LifecertError(f"no staff member {staff_id!r}: see `lifecert-central staff list`")
    certs = ca.list_certs(engine, staff_id)
    factor: dict[str, Any] = {
        "second_factor": otp.status(engine, staff_id),
        "recovery_codes": otp.recovery_left(engine, staff_id),
    }
    if as_json:
        emit(account.as_dict() | factor | {"certificates": certs}, True, [])
        return
    emit(_row(account) | factor, False, [*_COLUMNS, *factor])
    if certs:
        click.echo("")
        emit(certs, False, ["serial", "not_after", "issued_by", "revoked_at"])


def _change(name: str, doc: str) -> click.Command:
    """``staff lock|unlock|deactivate|activate ID``: one account change by a signed-in
    administrator."""
    func = {"lock": accounts.lock, "unlock": accounts.unlock}.get(name)

    @click.command(name, help=doc)
    @click.argument("staff_id", callback=_check_id)
    @click.pass_obj
    @friendly_errors
    def command(state: State, staff_id: str) -> None:
        if func is None:  # (de)activation gives or takes access: a proposal
            payload = {"staff_id": staff_id, "active": name == "activate"}
            propose(state, "staff_active", payload, Permission.STAFF_MANAGE)
            return
        actor = require(state, Permission.STAFF_MANAGE)
        account = func(state.engine(), actor, staff_id)
        click.echo(f"{account.staff_id}: {'locked' if account.locked else 'unlocked'}")

    return command


staff_group.add_command(
    _change(
        "lock",
        "Lock an account: its certificates stop signing in.\n\n\b\nExample:\n"
        "    lifecert-central --staff-cert me.pem --staff-key me.key staff lock wang.li",
    )
)
staff_group.add_command(
    _change(
        "unlock",
        "Unlock an account and clear its failed sign-ins (another administrator).\n\n\b\n"
        "Example:\n"
        "    lifecert-central --staff-cert me.pem --staff-key me.key staff unlock wang.li",
    )
)
staff_group.add_command(
    _change(
        "deactivate",
        "Propose deactivating the account of someone who left (lock it meanwhile).\n\n\b\n"
        "Example:\n"
        "    lifecert-central --staff-cert me.pem --staff-key me.key staff deactivate wang.li",
    )
)
staff_group.add_command(
    _change(
        "activate",
        "Propose activating a deactivated account again.\n\n\b\nExample:\n"
        "    lifecert-central --staff-cert me.pem --staff-key me.key staff activate wang.li",
    )
)


@staff_group.command("grant")
@click.argument("staff_id", callback=_check_id)
@click.argument("role", type=_ROLE)
@click.option("--community", "communities", multiple=True, help="A coordinator's community.")
@click.pass_obj
@friendly_errors
def grant(state: State, staff_id: str, role: str, communities: tuple[str, ...]) -> None:
    """Propose giving a staff member a role (a second administrator approves).

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key \\
            staff grant wang.li coordinator --community Andingmen
    """
    payload = {"staff_id": staff_id, "role": role, "communities": list(communities)}
    propose(state, "staff_grant", payload, Permission.STAFF_MANAGE)


@staff_group.command("revoke-role")
@click.argument("staff_id", callback=_check_id)
@click.argument("role", type=_ROLE)
@click.pass_obj
@friendly_errors
def revoke_role(state: State, staff_id: str, role: str) -> None:
    """Propose taking a role from a staff member (a second administrator approves).

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key staff revoke-role wang.li reviewer
    """
    propose(
        state, "staff_revoke_role", {"staff_id": staff_id, "role": role}, Permission.STAFF_MANAGE
    )


@staff_group.group("ca")
def ca_group() -> None:
    """The staff CA (apart from the fleet's device CA).

    \b
    Example:
        lifecert-central staff ca init
    """


@ca_group.command("init")
@click.option("--name", default="central", show_default=True, help="Goes into the CA's name.")
@click.pass_obj
@friendly_errors
def ca_init(state: State, name: str) -> None:
    """Make the staff CA once: [staff] ca_file, ca_key, crl_file, pinned in the database.

    \b
    Example:
        lifecert-central --config central.toml staff ca init
    """
    cert = ca.init(state.engine(), state.cfg.staff, name)
    click.echo(f"staff CA {cert.subject.rfc4514_string()} written to {state.cfg.staff.ca_file}")


@ca_group.command("crl")
@click.pass_obj
@friendly_errors
def ca_crl(state: State) -> None:
    """Re-sign the CRL before it expires ([staff] crl_days).

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key staff ca crl
    """
    require(state, Permission.STAFF_CERTS)
    listed = ca.refresh_crl(state.engine(), state.cfg.staff)
    click.echo(f"CRL {state.cfg.staff.crl_file}: {listed} revoked certificate(s)")


@staff_group.group("cert")
def cert_group() -> None:
    """Staff client certificates.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key staff cert list
    """


@cert_group.command("issue")
@click.argument("staff_id", callback=_check_id)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for STAFF_ID.pem (and STAFF_ID.key without --csr).",
)
@click.option(
    "--csr",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The member's certificate request: their key never leaves them.",
)
@click.option("--days", type=click.IntRange(1, 825), help="Validity (default: [staff] cert_days).")
@click.pass_obj
@friendly_errors
def cert_issue(state: State, staff_id: str, out: Path, csr: Path | None, days: int | None) -> None:
    """Issue a certificate. Your own (a renewal): at once, for the key in your request
    (--csr) or a new key written beside it. Someone else's: a proposal for the key in their
    request (--csr, required), issued when a second administrator approves it; then
    `staff cert fetch ID --out DIR` writes it.

    \b
    Example:
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\
            -keyout wang.li.key -out wang.li.csr -subj /CN=wang.li
        lifecert-central --staff-cert me.pem --staff-key me.key \\
            staff cert issue wang.li --csr wang.li.csr --out certs/
    """
    actor = require(state, Permission.STAFF_CERTS)
    if staff_id != actor.staff_id:
        if csr is None:
            raise LifecertError(
                f"--csr: a certificate for {staff_id} is a proposal and needs their request "
                "(their key never passes through central)"
            )
        payload = {
            "staff_id": staff_id,
            "csr": csr.read_text(errors="replace")[:8_001],
            "days": days or state.cfg.staff.cert_days,
        }
        propose(state, "staff_cert", payload, Permission.STAFF_CERTS)
        return
    public_key = None if csr is None else ca.request_key(csr.read_bytes())
    _check_out(out, staff_id)
    issued = ca.issue(state.engine(), state.cfg.staff, actor, staff_id, days, public_key)
    serial = ca.serial_hex(issued.cert)
    until = f"{issued.cert.not_valid_after_utc:%Y-%m-%d}"
    if issued.key is None:
        cert_path = out / f"{staff_id}.pem"
        try:
            cert_path.write_bytes(ca.pem(issued.cert))
        except OSError as exc:
            raise LifecertError(f"--out: cannot write {cert_path}: {exc.strerror}") from None
        click.echo(f"certificate {serial} for {staff_id} until {until}: {cert_path}")
        return
    cert_path, key_path = _write_credentials(out, issued, staff_id)
    click.echo(f"certificate {serial} for {staff_id} until {until}: {cert_path}, key {key_path}")


@cert_group.command("fetch")
@click.argument("proposal_id", type=click.IntRange(1))
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for STAFF_ID.pem.",
)
@click.pass_obj
@friendly_errors
def cert_fetch(state: State, proposal_id: int, out: Path) -> None:
    """Write the certificate an approved `staff cert issue` proposal issued.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key staff cert fetch 7 --out certs/
    """
    require(state, Permission.STAFF_READ)
    p = proposals.show(state.engine(), proposal_id, 0)
    if p.kind != "staff_cert":
        raise LifecertError(f"proposal {proposal_id} is a {p.kind} proposal, not a certificate")
    if p.status != "applied" or not p.result:
        raise LifecertError(f"proposal {proposal_id} is {p.status}: no certificate (yet)")
    path = out / f"{p.target}.pem"
    try:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(p.result["certificate"])
    except OSError as exc:
        raise LifecertError(f"--out: cannot write {path}: {exc.strerror}") from None
    click.echo(f"certificate {p.result['serial']} for {p.target}: {path}")


@cert_group.command("list")
@click.option("--staff", "staff_id", help="Only this staff member's.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@friendly_errors
def cert_list(state: State, staff_id: str | None, as_json: bool) -> None:
    """List issued staff certificates, newest first.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key staff cert list --staff wang.li
    """
    require(state, Permission.STAFF_READ)
    rows = ca.list_certs(state.engine(), staff_id)
    emit(rows, as_json, ["serial", "staff_id", "not_after", "issued_by", "revoked_at"])


@cert_group.command("revoke")
@click.argument("serial")
@click.option("--reason", default="", help="Why (goes into the audit log).")
@click.pass_obj
@friendly_errors
def cert_revoke(state: State, serial: str, reason: str) -> None:
    """Revoke a staff certificate and rewrite the CRL.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key \\
            staff cert revoke 3f2a9c... --reason "laptop lost"
    """
    actor = require(state, Permission.STAFF_CERTS)
    row = ca.revoke(state.engine(), state.cfg.staff, actor, serial, reason)
    click.echo(f"revoked {row['serial']} of {row['staff_id']}; CRL {state.cfg.staff.crl_file}")


@staff_group.command("directory")
@click.option("--site", required=True, help="The terminals' site (their certificate's OU).")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="File to write (copy it to the site's terminals as [kiosk] staff_directory).",
)
@click.option("--days", type=click.IntRange(1, 31), default=7, show_default=True)
@click.pass_obj
@friendly_errors
def directory_(state: State, site: str, out: Path, days: int) -> None:
    """Sign the directory of staff who may log in at a site's terminal desks: the active,
    unlocked accounts given that --site.

    \b
    Example:
        lifecert-central --staff-cert me.pem --staff-key me.key \\
            staff directory --site hepingli --out staff-directory.jws
    """
    actor = require(state, Permission.STAFF_MANAGE)
    made, token = directory.publish(state.engine(), actor, state.central.signer, site, days)
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(token + "\n")
        os.replace(tmp, out)
    except OSError as exc:
        raise LifecertError(f"--out: cannot write {out}: {exc.strerror}") from None
    click.echo(
        f"{out}: {len(made.staff)} staff for site {site} until {made.expires_at:%Y-%m-%d %H:%M} UTC"
    )


staff_group.add_command(otp_group)

COMMANDS = (staff_group,)
