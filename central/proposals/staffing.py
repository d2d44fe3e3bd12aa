"""Staff and role changes as proposals: an administrator enters them, a second person
holding ``[proposals] staff_approver`` (an administrator by default) approves them, never
the one who entered them and never the person the change is about.

Kinds: ``staff_add`` (a new account), ``staff_grant`` / ``staff_revoke_role`` (a role),
``staff_active`` (deactivate or activate), ``staff_cert`` (a certificate for someone else's
key, from their request: no private key is ever stored in a proposal). Each is stale when
the account it is about changed since it was entered.
"""

from typing import Any, ClassVar

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from sqlalchemy.engine import Connection, Engine

from central.proposals.base import (
    Context,
    Kind,
    PayloadField,
    Prepared,
    ProposalError,
    digest,
    pick,
    text,
)
from central.staff import accounts, ca
from central.staff.identity import Actor, Role
from central.staff.tables import staff_certs

STAFF_ID = PayloadField("staff_id", "Staff id", help="the member's login name", max_length=100)
ROLE = PayloadField("role", "Role", "select", choices=pick(*(r.value for r in Role)))
COMMUNITIES = PayloadField(
    "communities",
    "Communities",
    "list",
    "a coordinator's, separated by commas",
    required=False,
    max_length=2000,
)


def _staff_id(payload: dict[str, Any]) -> str:
    value = payload.get("staff_id")
    if not isinstance(value, str):
        raise ProposalError("staff_id: the staff member's id")
    try:
        return accounts.check_staff_id(value)
    except accounts.StaffError as exc:
        raise ProposalError(f"staff_id: {exc}") from None


def _names(payload: dict[str, Any], name: str) -> list[str]:
    value = payload.get(name, [])
    if not isinstance(value, list) or len(value) > 100:
        raise ProposalError(f"{name}: a list of at most 100 names")
    if not all(isinstance(v, str) for v in value):
        raise ProposalError(f"{name}: a list of at most 100 names")
    return sorted(set(value))


def _role(payload: dict[str, Any]) -> Role:
    try:
        return Role(str(payload.get("role")))
    except ValueError:
        raise ProposalError(f"role: one of {', '.join(r.value for r in Role)}") from None


def _account(conn: Connection, staff_id: str) -> accounts.Account:
    try:
        return accounts.need(conn, staff_id)
    except accounts.StaffError as exc:
        raise ProposalError(f"staff_id: {exc}") from None


def _state(conn: Connection, staff_id: str) -> Any:
    """The account as it stands (None: no such account) and its certificates' serials."""
    account = accounts.get_in(conn, staff_id)
    serials = conn.scalars(
        sa.select(staff_certs.c.serial)
        .where(staff_certs.c.staff_id == staff_id)
        .order_by(staff_certs.c.serial)
    ).all()
    return [None if account is None else account.as_dict(), list(serials)]


def _approver(conn: Connection, staff_id: str) -> Actor:
    """Who approved, with the roles their account holds (for the audit entry)."""
    account = accounts.need(conn, staff_id)
    return Actor(staff_id, account.roles, via="proposal")


def _refused(exc: accounts.StaffError) -> ProposalError:
    return ProposalError(f"staff_id: {exc}")


class _StaffKind(Kind):
    """A change to one staff account (the proposal's ``target``)."""

    about_staff: ClassVar[bool] = True
    levels_setting: ClassVar[str] = "staff_change"

    def fingerprint(self, conn: Connection, proposal: Any) -> str:
        return digest(_state(conn, proposal.payload["staff_id"]))


class StaffAdd(_StaffKind):
    """A new staff account. Payload: ``staff_id``, ``name``, ``roles``, ``communities``,
    ``sites``."""

    name = "staff_add"
    fields = (
        STAFF_ID,
        PayloadField("name", "Name", max_length=100),
        PayloadField("roles", "Roles", "checkboxes", choices=ROLE.choices),
        COMMUNITIES,
        PayloadField(
            "sites", "Sites", "list", "separated by commas", required=False, max_length=2000
        ),
    )

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        staff_id = _staff_id(payload)
        name = text(payload, "name", 100, 1).strip()
        roles = [_role({"role": r}).value for r in _names(payload, "roles")]
        communities, sites = _names(payload, "communities"), _names(payload, "sites")
        try:
            accounts.check_new(conn, staff_id, name, roles, communities, sites)
        except accounts.StaffError as exc:
            raise _refused(exc) from None
        body = {
            "staff_id": staff_id,
            "name": name,
            "roles": roles,
            "communities": communities,
            "sites": sites,
        }
        return Prepared(body, staff_id, f"add staff {staff_id} ({name}): {', '.join(roles)}")

    def apply(self, conn: Connection, proposal: Any, actor: str, ctx: Context) -> dict[str, Any]:
        p = proposal.payload
        made = accounts.insert(
            conn,
            _approver(conn, actor),
            p["staff_id"],
            p["name"],
            [Role(r) for r in p["roles"]],
            p["communities"],
            p["sites"],
        )
        return made.as_dict()


class StaffGrant(_StaffKind):
    """Give a role. Payload: ``staff_id``, ``role``, ``communities`` (a coordinator's)."""

    name = "staff_grant"
    fields = (STAFF_ID, ROLE, COMMUNITIES)

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        staff_id, role = _staff_id(payload), _role(payload)
        communities = _names(payload, "communities")
        try:
            after = accounts.granted(_account(conn, staff_id), role, communities)
        except accounts.StaffError as exc:
            raise _refused(exc) from None
        body = {"staff_id": staff_id, "role": role.value, "communities": communities}
        return Prepared(
            body, staff_id, f"grant {role.value} to {staff_id}: {', '.join(after['roles'])}"
        )

    def apply(self, conn: Connection, proposal: Any, actor: str, ctx: Context) -> dict[str, Any]:
        p = proposal.payload
        account = accounts.need(conn, p["staff_id"])
        values = accounts.granted(account, Role(p["role"]), p["communities"])
        return accounts.change(
            conn, _approver(conn, actor), p["staff_id"], "staff.grant", **values
        ).as_dict()


class StaffRevokeRole(_StaffKind):
    """Take a role away. Payload: ``staff_id``, ``role``."""

    name = "staff_revoke_role"
    fields = (STAFF_ID, ROLE)

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        staff_id, role = _staff_id(payload), _role(payload)
        try:
            after = accounts.revoked(_account(conn, staff_id), role)
        except accounts.StaffError as exc:
            raise _refused(exc) from None
        return Prepared(
            {"staff_id": staff_id, "role": role.value},
            staff_id,
            f"revoke {role.value} from {staff_id}: {', '.join(after['roles'])} left",
        )

    def apply(self, conn: Connection, proposal: Any, actor: str, ctx: Context) -> dict[str, Any]:
        p = proposal.payload
        values = accounts.revoked(accounts.need(conn, p["staff_id"]), Role(p["role"]))
        return accounts.change(
            conn, _approver(conn, actor), p["staff_id"], "staff.revoke_role", **values
        ).as_dict()


class StaffActive(_StaffKind):
    """Deactivate or activate an account. Payload: ``staff_id``, ``active`` (true/false)."""

    name = "staff_active"
    fields = (
        STAFF_ID,
        PayloadField(
            "active", "Account", "boolean", choices=(("false", "deactivate"), ("true", "activate"))
        ),
    )

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        staff_id, active = _staff_id(payload), payload.get("active")
        if not isinstance(active, bool):
            raise ProposalError("active: true (activate) or false (deactivate)")
        account = _account(conn, staff_id)
        if account.active == active:
            raise ProposalError(
                f"active: {staff_id} is {'active' if active else 'inactive'} already"
            )
        verb = "activate" if active else "deactivate"
        return Prepared({"staff_id": staff_id, "active": active}, staff_id, f"{verb} {staff_id}")

    def apply(self, conn: Connection, proposal: Any, actor: str, ctx: Context) -> dict[str, Any]:
        active = bool(proposal.payload["active"])
        action = "staff.activate" if active else "staff.deactivate"
        return accounts.change(
            conn, _approver(conn, actor), proposal.payload["staff_id"], action, active=active
        ).as_dict()


class StaffCert(_StaffKind):
    """A certificate for someone else, for the key in their request. Payload: ``staff_id``,
    ``csr`` (PEM), ``days``. Applied after the approval (it reads the CA key); the result
    holds the certificate's PEM for ``staff cert fetch``."""

    name = "staff_cert"
    external = True
    fields = (
        STAFF_ID,
        PayloadField(
            "csr",
            "Certificate request",
            "pem",
            "the member's request (PEM: -----BEGIN CERTIFICATE REQUEST-----); their key "
            "stays with them",
            max_length=8000,
        ),
        PayloadField("days", "Valid for (days)", "number", "1-825"),
    )

    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        staff_id = _staff_id(payload)
        csr = payload.get("csr")
        if not isinstance(csr, str) or len(csr) > 8_000:
            raise ProposalError("csr: the member's certificate request (PEM, at most 8 kB)")
        try:
            key = ca.request_key(csr.encode())
        except ca.CaError as exc:
            raise ProposalError(f"csr: {exc}") from None
        days = payload.get("days")
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 825:
            raise ProposalError("days: validity in days, 1-825")
        account = _account(conn, staff_id)
        if not account.active:
            raise ProposalError(f"staff_id: {staff_id} is not active: no certificate for them")
        spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return Prepared(
            {"staff_id": staff_id, "csr": csr, "days": days},
            staff_id,
            f"certificate for {staff_id} ({days} days), key {digest(spki.hex())[:16]}",
        )

    def apply_outside(
        self, engine: Engine, proposal: Any, actor: str, ctx: Context
    ) -> dict[str, Any]:
        p = proposal.payload
        settings = ctx.need(self.name).cfg.staff
        with engine.connect() as conn:
            by = _approver(conn, actor)
        key = ca.request_key(p["csr"].encode())
        cert = ca.issue_approved(engine, settings, by, p["staff_id"], p["days"], key)
        return {
            "serial": ca.serial_hex(cert),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "certificate": ca.pem(cert).decode(),
        }


KINDS = (StaffAdd(), StaffGrant(), StaffRevokeRole(), StaffActive(), StaffCert())
STAFF_KINDS = frozenset(k.name for k in KINDS)
"""The staff change kinds' names."""
