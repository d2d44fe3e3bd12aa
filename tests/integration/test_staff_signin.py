"""Staff sign-in on SQLite and PostgreSQL with real certificates: the staff CA, refusals,
lockout after failed sign-ins, unlock by an administrator only."""

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from central.staff import accounts, audit, ca, signin
from central.staff.identity import Role
from central.staff.permissions import NotPermittedError
from central.staff.tables import staff_certs
from tests.fixtures.staff import StaffPki

pytestmark = pytest.mark.integration


def _refused(pki: StaffPki, cert: x509.Certificate, **kwargs: object) -> str:
    with pytest.raises(signin.SignInRefused) as caught:
        signin.actor_for_certificate(pki.engine, cert, via="console", address="10.0.0.9", **kwargs)  # type: ignore[arg-type]
    return caught.value.reason


def test_a_staff_certificate_signs_its_member_in(staff_pki: StaffPki) -> None:
    issued = staff_pki.member("carol", [Role.COORDINATOR], communities=["Hepingli", "Andingmen"])
    actor = signin.actor_for_certificate(
        staff_pki.engine, issued.cert, via="console", address="10.0.0.9"
    )
    assert actor.staff_id == "carol"
    assert actor.roles == {Role.COORDINATOR}
    assert actor.communities == {"Hepingli", "Andingmen"}
    assert (actor.via, actor.address) == ("console", "10.0.0.9")
    assert actor.cert_serial == ca.serial_hex(issued.cert)
    listed = ca.list_certs(staff_pki.engine, "carol")
    assert [c["serial"] for c in listed] == [actor.cert_serial]


def test_a_certificate_from_another_ca_counts_against_nobody(staff_pki: StaffPki) -> None:
    """A forged certificate naming the administrator is refused and cannot lock them out."""
    other = ca.Authority(staff_pki.admin_cert.cert, ec.generate_private_key(ec.SECP256R1()))
    forged = other.issue("admin", ec.generate_private_key(ec.SECP256R1()).public_key(), 30)
    for _ in range(7):
        assert _refused(staff_pki, forged) == "the certificate is not issued by the staff CA"
    account = accounts.get(staff_pki.engine, "admin")
    assert account is not None and account.failed_logins == 0 and not account.locked
    staff_pki.actor(staff_pki.admin_cert)


def test_a_certificate_never_recorded_is_refused(staff_pki: StaffPki) -> None:
    """One signed with the staff CA's key but not issued through it (no record)."""
    authority = ca.load(staff_pki.engine, staff_pki.settings)
    stray = authority.issue("admin", ec.generate_private_key(ec.SECP256R1()).public_key(), 30)
    assert "never issued" in _refused(staff_pki, stray)


def test_revoked_and_expired_certificates_are_refused_and_counted(staff_pki: StaffPki) -> None:
    issued = staff_pki.member("dan", [Role.REVIEWER])
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    assert "expired" in _refused(staff_pki, issued.cert, now=later)
    serial = ca.serial_hex(issued.cert)
    ca.revoke(staff_pki.engine, staff_pki.settings, staff_pki.admin, serial, "laptop stolen")
    assert _refused(staff_pki, issued.cert) == f"certificate {serial} is revoked"
    crl = x509.load_pem_x509_crl(staff_pki.settings.crl_file.read_bytes())
    assert crl.is_signature_valid(staff_pki.admin_cert.cert.public_key()) is False
    authority = ca.load(staff_pki.engine, staff_pki.settings)
    assert crl.is_signature_valid(authority.cert.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(issued.cert.serial_number) is not None
    account = accounts.get(staff_pki.engine, "dan")
    assert account is not None and account.failed_logins == 2
    fresh = ca.issue(staff_pki.engine, staff_pki.settings, staff_pki.admin, "dan")
    assert staff_pki.actor(fresh).staff_id == "dan"
    account = accounts.get(staff_pki.engine, "dan")
    assert account is not None and account.failed_logins == 0  # a good sign-in resets


def test_failed_sign_ins_lock_until_an_administrator_unlocks(staff_pki: StaffPki) -> None:
    issued = staff_pki.member("erin", [Role.APPROVER])
    other = staff_pki.member("frank", [Role.ENTRY_CLERK])
    for attempt in range(1, 4):
        locked = accounts.record_failed_login(staff_pki.engine, "erin", limit=3)
        assert locked is (attempt == 3)
    assert "locked" in _refused(staff_pki, issued.cert)
    clerk = staff_pki.actor(other)
    with pytest.raises(NotPermittedError, match=r"staff\.manage"):
        accounts.unlock(staff_pki.engine, clerk, "erin")
    accounts.unlock(staff_pki.engine, staff_pki.admin, "erin")
    assert staff_pki.actor(issued).staff_id == "erin"
    accounts.lock(staff_pki.engine, staff_pki.admin, "erin")
    assert "locked" in _refused(staff_pki, issued.cert)
    accounts.unlock(staff_pki.engine, staff_pki.admin, "erin")
    accounts.set_active(staff_pki.engine, staff_pki.admin, "erin", False)
    assert "not active" in _refused(staff_pki, issued.cert)
    with pytest.raises(ca.CaError, match="not active"):
        ca.issue(staff_pki.engine, staff_pki.settings, staff_pki.admin, "erin")


def test_separation_of_duties_between_roles(staff_pki: StaffPki) -> None:
    with pytest.raises(accounts.StaffError, match="separation of duties"):
        staff_pki.member("gina", [Role.ADMINISTRATOR, Role.APPROVER])
    staff_pki.member("gina", [Role.APPROVER])
    with pytest.raises(accounts.StaffError, match="separation of duties"):
        accounts.grant(staff_pki.engine, staff_pki.admin, "gina", Role.AUDITOR)
    with pytest.raises(accounts.StaffError, match="their own"):
        accounts.grant(staff_pki.engine, staff_pki.admin, "admin", Role.APPROVER)
    with pytest.raises(accounts.StaffError, match="community"):
        accounts.grant(staff_pki.engine, staff_pki.admin, "gina", Role.COORDINATOR)
    account = accounts.grant(
        staff_pki.engine, staff_pki.admin, "gina", Role.REVIEWER, communities=()
    )
    assert account.roles == {Role.APPROVER, Role.REVIEWER}
    with pytest.raises(accounts.StaffError, match="exist already"):
        ca.bootstrap(staff_pki.engine, staff_pki.settings, "mallory", "Mallory")


def test_certificates_only_for_known_active_staff(staff_pki: StaffPki) -> None:
    with pytest.raises(accounts.StaffError, match="no staff member"):
        ca.issue(staff_pki.engine, staff_pki.settings, staff_pki.admin, "nobody")
    with pytest.raises(ca.CaError, match="made once"):
        ca.init(staff_pki.engine, staff_pki.settings)
    with staff_pki.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(staff_certs)) == 1


def test_concurrent_failures_each_count(staff_pki: StaffPki) -> None:
    """Failed sign-ins racing on one account are all counted (the row is locked)."""
    staff_pki.member("hu", [Role.REVIEWER])
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda _: accounts.record_failed_login(staff_pki.engine, "hu", limit=99), range(8)
            )
        )
    account = accounts.get(staff_pki.engine, "hu")
    assert account is not None and account.failed_logins == 8


def test_a_session_recheck_need_not_be_audited(staff_pki: StaffPki) -> None:
    issued = staff_pki.member("ma", [Role.AUDITOR])
    before = audit.head(staff_pki.engine)
    signin.actor_for_certificate(
        staff_pki.engine, issued.cert, via="console", address=None, record_signin=False
    )
    assert audit.head(staff_pki.engine) == before
