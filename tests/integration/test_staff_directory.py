"""The terminal's desk log-in uses central's staff: central signs a per-site directory of
the staff allowed there, the terminal verifies it (site, validity, central's key) and lets
only those log in, with their local PIN as the second factor."""

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from central.staff import accounts, directory
from central.staff.identity import Role
from edge.cli import main as edge_main
from edge.kiosk.desk import Desk, StaffBook, add_staff
from edge.kiosk.directory import DirectoryFile
from edge.kiosk.lockout import PinLockout
from protocol import messages, signing, staffdir
from protocol.errors import MessageError
from tests.fixtures.staff import StaffPki
from tests.unit.test_edge_keys import make_bundle
from tests.unit.test_edge_outbox import RETIREE

pytestmark = pytest.mark.integration

CENTRAL_KEY = ec.generate_private_key(ec.SECP256R1())
SIGNER = signing.Signer(CENTRAL_KEY, signing.key_fingerprint(CENTRAL_KEY.public_key()))
VERIFIER = signing.Verifier(CENTRAL_KEY.public_key())


def _publish(pki: StaffPki, path: Path, site: str = "hepingli", days: int = 7) -> None:
    _, token = directory.publish(pki.engine, pki.admin, SIGNER, site, days)
    path.write_text(token + "\n")


def test_only_listed_staff_log_in_at_the_desk(staff_pki: StaffPki, tmp_path: Path) -> None:
    staff_pki.member("wang.li", [Role.COORDINATOR], communities=["Hepingli"], sites=["hepingli"])
    staff_pki.member("zhao", [Role.ENTRY_CLERK], sites=["andingmen"])
    staff_pki.member("qian", [Role.REVIEWER], sites=["hepingli"])
    accounts.lock(staff_pki.engine, staff_pki.admin, "qian")
    path = tmp_path / "staff-directory.jws"
    _publish(staff_pki, path)
    book = tmp_path / "pins"
    for staff_id in ("wang.li", "zhao", "qian"):
        add_staff(book, staff_id, "4711")
    with PinLockout(tmp_path / "edge.sqlite", max_failures=3) as lockout:
        desk = Desk(StaffBook(book), lockout, DirectoryFile(path, VERIFIER, "hepingli"))
        assert desk.login("wang.li", "4711").token is not None
        assert desk.login("wang.li", "0000").token is None  # the PIN still counts
        assert desk.login("zhao", "4711").token is None  # another site's
        assert desk.login("qian", "4711").token is None  # locked at central
        accounts.unlock(staff_pki.engine, staff_pki.admin, "qian")
        _publish(staff_pki, path)  # the next directory lists her again
        assert desk.login("qian", "4711").token is not None


def test_the_terminal_refuses_foreign_stale_or_forged_directories(
    staff_pki: StaffPki, tmp_path: Path
) -> None:
    staff_pki.member("wang.li", [Role.ENTRY_CLERK], sites=["hepingli"])
    path = tmp_path / "staff-directory.jws"
    _publish(staff_pki, path, days=1)
    assert DirectoryFile(path, VERIFIER, "hepingli").allows("wang.li")
    assert not DirectoryFile(path, VERIFIER, "andingmen").allows("wang.li")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    assert not DirectoryFile(path, VERIFIER, "hepingli", clock=lambda: later).allows("wang.li")
    other = ec.generate_private_key(ec.SECP256R1())
    assert not DirectoryFile(path, signing.Verifier(other.public_key()), "hepingli").allows(
        "wang.li"
    )
    head, payload, sig = path.read_text().strip().split(".")
    path.write_text(f"{head}.{payload[:-4]}AAAA.{sig}")
    assert not DirectoryFile(path, VERIFIER, "hepingli").allows("wang.li")
    assert not DirectoryFile(tmp_path / "missing.jws", VERIFIER, "hepingli").allows("wang.li")


def test_another_signed_message_does_not_pass_for_a_directory() -> None:
    ack = messages.Ack.model_validate(
        {"result_id": "8a6e0804-2bd0-4694-8f1e-e0b22c9d3a48", "device_id": "t-1",
         "status": "applied"}
    )  # fmt: skip
    token = SIGNER.sign(messages.encode(ack)).encode()
    with pytest.raises(MessageError, match=r"invalid StaffDirectory: .*kind: Field required"):
        staffdir.verify(token, VERIFIER, site="hepingli", now=dt.datetime.now(dt.UTC))


def test_a_bad_site_is_refused_at_central(staff_pki: StaffPki) -> None:
    with pytest.raises(accounts.StaffError, match="--site"):
        directory.publish(staff_pki.engine, staff_pki.admin, SIGNER, "Hepingli Street", 7)


def test_central_says_who_may_assist_where(staff_pki: StaffPki) -> None:
    staff_pki.member("wang.li", [Role.ENTRY_CLERK], sites=["hepingli"])
    staff_pki.member("zhao", [Role.ENTRY_CLERK], sites=["hepingli"])
    accounts.lock(staff_pki.engine, staff_pki.admin, "zhao")
    with staff_pki.engine.connect() as conn:
        assert accounts.assist_refusal(conn, "wang.li", "hepingli") is None
        codes = [
            refusal.code
            for staff_id, site in [
                ("wang.li", "andingmen"),
                ("zhao", "hepingli"),
                ("nobody", "hepingli"),
                ("Robert'); DROP", "hepingli"),
            ]
            if (refusal := accounts.assist_refusal(conn, staff_id, site)) is not None
        ]
    assert codes == ["staff_not_at_site", "staff_locked", "staff_unknown", "staff_unknown"]


def test_certify_assisted_on_the_terminal_names_listed_staff(tmp_path: Path) -> None:
    """``lifecert-edge certify-assisted --staff`` with ``[kiosk] staff_directory`` set."""
    bundle = make_bundle(tmp_path / "bundle")  # its certificate has no OU: site "default"
    signer = signing.Signer(bundle.central_sign_key, "central")
    now = dt.datetime.now(dt.UTC)
    made = staffdir.StaffDirectory(
        kind="staff_directory",
        site="default",
        issued_at=now,
        expires_at=now + dt.timedelta(days=1),
        staff=(staffdir.DirectoryEntry(staff_id="wang.li", name="Wang Li"),),
    )
    (bundle.dir / "staff-directory.jws").write_text(staffdir.sign(made, signer))
    bundle.write_config(kiosk={"staff_directory": "staff-directory.jws"})

    def certify(staff_id: str) -> Any:
        return CliRunner().invoke(
            edge_main,
            ["--config", str(bundle.config_path), "certify-assisted", "--retiree", RETIREE,
             "--staff", staff_id],
        )  # fmt: skip

    assert certify("wang.li").exit_code == 0
    refused = certify("desk-07")
    assert refused.exit_code == 2
    assert "'desk-07' is not in central's staff directory for this site" in refused.output
