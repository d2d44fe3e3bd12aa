"""Second factors through the CLI, as signed-in staff with real certificates, on SQLite and
PostgreSQL: enrol (a QR code, the otpauth URI, one code to confirm), a reset by another
administrator, a proposal of a listed kind approved only with a current code; the secret
never reaches the audit export, the logs or the database in clear."""

import logging
import stat
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa

from central.staff.identity import Role
from central.staff.tables import staff_otp
from central.store import db
from tests.fixtures.proposals import WANG, StaffCli, wang_cli

pytestmark = pytest.mark.integration

PEOPLE = {
    "clerk": Role.ENTRY_CLERK,
    "reviewer": Role.REVIEWER,
    "approver": Role.APPROVER,
    "auditor": Role.AUDITOR,
}


@pytest.fixture
def cli(migrated_url: str, tmp_path: Path) -> StaffCli:
    return wang_cli(migrated_url, tmp_path, '[proposals]\nsecond_factor_kinds = ["hold"]\n', PEOPLE)


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_enrol_reset_and_approve_with_a_code_that_stays_secret(
    cli: StaffCli, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    anonymous = cli("staff", "otp", "enrol")
    assert anonymous.exit_code == 1 and "--staff-cert" in anonymous.output
    twice = cli("staff", "otp", "enrol", who="approver")
    assert twice.exit_code == 1 and "ask an administrator to reset it" in twice.output

    # the clerk enrols with the QR code as a PNG, a wrong code does not confirm it
    png = tmp_path / "clerk-otp.png"
    enrolled = cli("staff", "otp", "enrol", "--png", str(png), who="clerk")
    assert enrolled.exit_code == 0, enrolled.output
    assert png.read_bytes()[:4] == b"\x89PNG" and stat.S_IMODE(png.stat().st_mode) == 0o600
    uri = next(line for line in enrolled.output.splitlines() if line.startswith("otpauth://"))
    assert "issuer=lifecert" in uri and "clerk" in uri
    secret = pyotp.parse_uri(uri).secret
    code = pyotp.TOTP(secret).now()
    bad = cli("staff", "otp", "confirm", _wrong(code), who="clerk")
    assert bad.exit_code == 1 and "does not match" in bad.output
    assert "pending" in cli("staff", "show", "clerk", who="admin").output
    assert cli("staff", "otp", "confirm", code, who="clerk").exit_code == 0
    assert "enrolled" in cli("staff", "show", "clerk", "--json", who="admin").output

    # a reset: by another administrator only; the approver then enrols a new phone
    refused = cli("staff", "otp", "reset", "reviewer", who="approver")
    assert refused.exit_code == 1 and "staff.manage" in refused.output
    own = cli("staff", "otp", "reset", "admin", who="admin")
    assert own.exit_code == 1 and "nobody may reset their own" in own.output
    reset = cli("staff", "otp", "reset", "approver", who="admin")
    assert reset.exit_code == 0, reset.output
    cli.enrol("approver")

    # a hold ([proposals] second_factor_kinds here) needs the approver's current code
    placed = cli("holds", "place", WANG, "--note", "letter returned", who="clerk")
    assert placed.exit_code == 0, placed.output
    number = placed.output.split(":")[0].split()[-1]
    missing = cli("proposals", "approve", number, who="approver")
    assert missing.exit_code == 1 and "needs a second factor" in missing.output
    right = cli.phones.code("approver")
    wrong = cli("proposals", "approve", number, "--otp", _wrong(right), who="approver")
    assert wrong.exit_code == 1 and "otp: wrong code" in wrong.output
    assert "Traceback" not in missing.output + wrong.output
    done = cli("proposals", "approve", number, "--otp", right, who="approver")
    assert done.exit_code == 0 and "approved by approver" in done.output
    replay = cli("proposals", "approve", number, "--otp", right, who="approver")
    assert replay.exit_code == 1 and "nothing to approve" in replay.output

    # the audit says who enrolled, confirmed and reset; no secret anywhere
    exported = tmp_path / "audit.csv"
    out = cli("audit", "export", "--out", str(exported), who="auditor")
    assert out.exit_code == 0, out.output
    audit_text = exported.read_text()
    for action in ("staff.otp_enrol", "staff.otp_confirm", "staff.otp_reset"):
        assert action in audit_text
    secrets = [secret, cli.phones.secrets["approver"], cli.phones.secrets["reviewer"]]
    engine = db.create_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with engine.connect() as conn:
            stored = [bytes(r.secret) for r in conn.execute(sa.select(staff_otp))]
    finally:
        engine.dispose()
    assert len(stored) == 3
    assert "second factor of clerk confirmed" in caplog.text
    assert "second factor of approver refused: otp: wrong code" in caplog.text
    for each in secrets:
        assert each not in audit_text and each not in caplog.text
        assert not any(each.encode() in blob for blob in stored)
