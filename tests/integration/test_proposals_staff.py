"""Staff and role changes are proposals (issue 14), on SQLite and PostgreSQL: an
administrator enters them, a second one (or the configured role) approves them; never the
same person, never about one's own account, never the wrong role, never stale."""

import datetime as dt
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from central import proposals
from central.config import CentralConfig
from central.proposals import ProposalError, RefusedError, StaleError
from central.proposals.settings import ProposalSettings
from central.staff import accounts, ca
from central.staff.identity import Actor, Role
from central.staff.tables import audit_log
from tests.fixtures.staff import StaffPki

pytestmark = pytest.mark.integration


@dataclass
class Resources:
    cfg: CentralConfig
    sign_key: ec.EllipticCurvePrivateKey


@dataclass
class Team:
    pki: StaffPki
    admin: Actor
    admin2: Actor
    admin3: Actor
    approver: Actor
    clerk: Actor


@pytest.fixture
def team(staff_pki: StaffPki) -> Team:
    pki = staff_pki

    def who(staff_id: str, role: Role) -> Actor:
        return pki.actor(pki.member(staff_id, [role]))

    return Team(
        pki,
        pki.admin,
        who("admin2", Role.ADMINISTRATOR),
        who("admin3", Role.ADMINISTRATOR),
        who("appr", Role.APPROVER),
        who("clerk", Role.ENTRY_CLERK),
    )


def _add(t: Team, staff_id: str = "mallory", role: str = "approver") -> proposals.Proposal:
    payload = {"staff_id": staff_id, "name": staff_id.title(), "roles": [role]}
    return proposals.propose(t.pki.engine, t.admin, "staff_add", payload)


def test_a_new_account_needs_a_second_administrator(team: Team) -> None:
    engine = team.pki.engine
    entered = _add(team)
    assert (entered.status, entered.next_role) == ("open", Role.ADMINISTRATOR)
    assert accounts.get(engine, "mallory") is None
    with pytest.raises(RefusedError, match="admin entered proposal"):
        proposals.approve(engine, team.admin, entered.id)
    with pytest.raises(RefusedError, match="needs the administrator role"):
        proposals.approve(engine, team.approver, entered.id)
    assert accounts.get(engine, "mallory") is None
    assert [p.id for p in proposals.list_for(engine, team.admin2)] == [entered.id]
    assert proposals.list_for(engine, team.admin) == []
    done = proposals.approve(engine, team.admin2, entered.id, "signed form on file")
    assert done.status == "applied"
    made = accounts.get(engine, "mallory")
    assert made is not None and made.roles == {Role.APPROVER}
    with engine.connect() as conn:
        entry = conn.execute(
            sa.select(audit_log).where(audit_log.c.action == "staff.add").order_by(audit_log.c.id)
        ).all()[-1]
    assert (entry.staff_id, entry.roles) == ("admin2", "administrator")


def test_an_entry_clerk_cannot_propose_and_bad_input_changes_nothing(team: Team) -> None:
    engine = team.pki.engine
    with pytest.raises(RefusedError, match="needs the administrator role"):
        proposals.propose(engine, team.clerk, "staff_add", {"staff_id": "x", "name": "X"})
    bad = {"staff_id": "x", "name": "X", "roles": ["administrator", "approver"]}
    with pytest.raises(ProposalError, match="cannot be combined"):
        proposals.propose(engine, team.admin, "staff_add", bad)
    with pytest.raises(ProposalError, match="staff_id: staff member 'clerk' already exists"):
        _add(team, "clerk")
    with pytest.raises(ProposalError, match="role: one of"):
        proposals.propose(engine, team.admin, "staff_grant", {"staff_id": "clerk", "role": "x"})
    assert proposals.list_all(engine) == []


def test_nobody_acts_on_their_own_account(team: Team) -> None:
    engine = team.pki.engine
    with pytest.raises(RefusedError, match="changes their own account"):
        proposals.propose(
            engine, team.admin, "staff_active", {"staff_id": "admin", "active": False}
        )
    entered = proposals.propose(
        engine, team.admin, "staff_active", {"staff_id": "admin2", "active": False}
    )
    with pytest.raises(RefusedError, match="changes their own account"):
        proposals.approve(engine, team.admin2, entered.id)
    with pytest.raises(RefusedError, match="changes their own account"):
        proposals.reject(engine, team.admin2, entered.id, "I like my account")
    assert proposals.list_for(engine, team.admin2) == []
    proposals.approve(engine, team.admin3, entered.id)
    account = accounts.get(engine, "admin2")
    assert account is not None and not account.active


def test_a_change_made_stale_by_another_is_refused(team: Team) -> None:
    engine = team.pki.engine
    entered = proposals.propose(
        engine, team.admin, "staff_grant", {"staff_id": "clerk", "role": "reviewer"}
    )
    accounts.lock(engine, team.admin3, "clerk")
    with pytest.raises(StaleError, match="is stale"):
        proposals.approve(engine, team.admin2, entered.id)
    assert proposals.show(engine, entered.id).status == "stale"
    account = accounts.get(engine, "clerk")
    assert account is not None and account.roles == {Role.ENTRY_CLERK}
    with pytest.raises(ProposalError, match="last role"):
        proposals.propose(
            engine, team.admin, "staff_revoke_role", {"staff_id": "appr", "role": "approver"}
        )


def test_the_configured_role_approves(team: Team) -> None:
    engine = team.pki.engine
    settings = ProposalSettings(staff_approver="approver", staff_change=3)
    payload = {"staff_id": "clerk", "role": "reviewer"}
    entered = proposals.propose(engine, team.admin, "staff_grant", payload, settings=settings)
    assert entered.next_role == Role.APPROVER and entered.levels == 3
    with pytest.raises(RefusedError, match="needs the approver role"):
        proposals.recheck(engine, team.admin2, entered.id)
    proposals.recheck(engine, team.approver, entered.id)
    with pytest.raises(RefusedError, match="already took a step"):
        proposals.approve(engine, team.approver, entered.id)
    other = team.pki.actor(team.pki.member("appr2", [Role.APPROVER]))
    done = proposals.approve(engine, other, entered.id)
    assert done.status == "applied" and done.result is not None
    assert done.result["roles"] == ["entry_clerk", "reviewer"]


def _request(staff_id: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, staff_id)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def test_a_certificate_for_someone_else_is_issued_on_approval(team: Team) -> None:
    engine, root = team.pki.engine, team.pki.root
    res = Resources(
        CentralConfig.model_validate({}, context={"base_dir": root}),
        ec.generate_private_key(ec.SECP256R1()),
    )
    assert res.cfg.staff == team.pki.settings
    key, csr = _request("clerk")
    payload = {"staff_id": "clerk", "csr": csr, "days": 30}
    entered = proposals.propose(engine, team.admin, "staff_cert", payload, resources=res)
    before = len(ca.list_certs(engine, "clerk"))
    with pytest.raises(RefusedError):
        proposals.approve(engine, team.admin, entered.id, resources=res)
    assert len(ca.list_certs(engine, "clerk")) == before
    done = proposals.approve(engine, team.admin2, entered.id, resources=res)
    assert done.status == "applied" and done.result is not None
    cert = x509.load_pem_x509_certificate(done.result["certificate"].encode())
    assert cert.public_key() == key.public_key()
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime <= dt.timedelta(days=30, minutes=10)
    assert len(ca.list_certs(engine, "clerk")) == before + 1
    with pytest.raises(ProposalError, match="csr: "):
        proposals.propose(engine, team.admin, "staff_cert", payload | {"csr": "junk"})


def test_bootstrap_makes_only_the_first_administrators(staff_pki: StaffPki) -> None:
    engine, settings = staff_pki.engine, staff_pki.settings
    ca.bootstrap(engine, settings, "admin2", "Second Admin", up_to=2)
    with pytest.raises(accounts.StaffError, match="exist already"):
        ca.bootstrap(engine, settings, "admin3", "Third Admin", up_to=2)
    staff_pki.member("clerk", [Role.ENTRY_CLERK])
    with pytest.raises(accounts.StaffError, match="exist already"):
        ca.bootstrap(engine, settings, "admin3", "Third Admin", up_to=9)
