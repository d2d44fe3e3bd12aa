"""Second factors through the CLI, as signed-in staff with real certificates, on SQLite and
PostgreSQL: enrol (a QR code, the otpauth URI, one code to confirm), a reset by another
administrator, a proposal of a listed kind approved only with a current code; the secret
never reaches the audit export, the logs or the database in clear. Recovery codes: given
at the enrolment, each used once instead of a code, renewed by their member with a code,
deleted by a reset, never stored, logged or audited."""

import datetime as dt
import json
import logging
import re
import stat
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa

from central.staff import otp
from central.staff.identity import Actor, Role
from central.staff.tables import staff_otp, staff_otp_recovery
from central.store import db
from tests.fixtures.proposals import WANG, StaffCli, recovery_codes, wang_cli

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


def _hold(cli: StaffCli, action: str) -> str:
    """A hold on Wang Fang (place or release) entered by the clerk: its number."""
    if action == "place":
        made = cli("holds", "place", WANG, "--note", "letter returned", who="clerk")
    else:
        made = cli("holds", "release", WANG, "--note", "she wrote back", who="clerk")
    assert made.exit_code == 0, made.output
    return made.output.split(":")[0].split()[-1]


def _streak(cli: StaffCli, who: str) -> int:
    engine = db.create_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with engine.connect() as conn:
            return int(
                conn.scalar(sa.select(staff_otp.c.failed).where(staff_otp.c.staff_id == who))
            )
    finally:
        engine.dispose()


def test_recovery_codes_stand_in_for_a_lost_phone_once_each(
    cli: StaffCli, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = cli.phones.recovery["approver"]  # what `staff otp confirm` printed
    assert len(first) == 10 and len(set(first)) == 10
    assert all(re.fullmatch(r"[2-9A-HJKMNP-TV-Z]{5}-[2-9A-HJKMNP-TV-Z]{5}", c) for c in first)
    shown = json.loads(cli("staff", "show", "approver", "--json", who="admin").output)
    assert (shown["second_factor"], shown["recovery_codes"]) == ("enrolled", 10)

    # a recovery code approves a hold, typed in lower case with a space for the dash
    placing = _hold(cli, "place")
    typed = first[0].lower().replace("-", " ")
    done = cli("proposals", "approve", placing, "--otp", typed, who="approver")
    assert done.exit_code == 0, done.output
    assert "a recovery code was used: 9 left" in done.output and "warning" not in done.output
    # ... once: used again it is refused and counts, like a wrong one
    releasing = _hold(cli, "release")
    again = cli("proposals", "approve", releasing, "--otp", first[0], who="approver")
    assert again.exit_code == 1 and "wrong recovery code, or one used already" in again.output
    assert _streak(cli, "approver") == 1
    odd = cli("proposals", "approve", releasing, "--otp", "ABCD-1234-0O", who="approver")
    assert odd.exit_code == 1 and "or a recovery code of 10 letters" in odd.output
    assert "Traceback" not in again.output + odd.output

    # a new set: only for oneself, only with a code; the old set stops working
    other = cli("staff", "otp", "recovery-codes", "reviewer", "--otp", "123456", who="approver")
    assert other.exit_code == 1 and "only reviewer may issue their recovery codes" in other.output
    anonymous = cli("staff", "otp", "recovery-codes", "approver")
    assert anonymous.exit_code == 1 and "--staff-cert" in anonymous.output
    bare = cli("staff", "otp", "recovery-codes", "approver", who="approver")
    assert bare.exit_code == 1 and "issuing new recovery codes needs a second factor" in bare.output
    code = cli.phones.code("approver")
    wrong = cli("staff", "otp", "recovery-codes", "approver", "--otp", _wrong(code), who="approver")
    assert wrong.exit_code == 1 and "otp: wrong code" in wrong.output
    assert _streak(cli, "approver") == 2
    renewed = cli("staff", "otp", "recovery-codes", "approver", "--otp", code, who="approver")
    assert renewed.exit_code == 0, renewed.output
    second = recovery_codes(renewed.output)
    assert len(second) == 10 and not set(second) & set(first)
    assert _streak(cli, "approver") == 0
    stale = cli("proposals", "approve", releasing, "--otp", first[1], who="approver")
    assert stale.exit_code == 1 and "wrong recovery code" in stale.output

    # the answer warns once two or fewer are left
    engine = db.create_engine(cli.url)  # type: ignore[attr-defined]
    cipher = otp.OtpCipher.from_file(tmp_path / "staff-otp.key")
    approver = Actor("approver", frozenset({Role.APPROVER}))
    try:
        for each in second[:7]:
            with engine.begin() as conn:
                assert otp.verify(conn, cipher, approver, each, "a test", dt.datetime.now(dt.UTC))
    finally:
        engine.dispose()
    low = cli("proposals", "approve", releasing, "--otp", second[7], who="approver")
    assert low.exit_code == 0, low.output
    assert "a recovery code was used: 2 left" in low.output
    assert (
        "warning: only 2 recovery code(s) of approver left: issue a new set with "
        "`lifecert-central staff otp recovery-codes approver --otp CODE`" in low.output
    )

    # an administrator's reset deletes them: after enrolling again, the old ones fail
    assert cli("staff", "otp", "reset", "approver", who="admin").exit_code == 0
    shown = json.loads(cli("staff", "show", "approver", "--json", who="admin").output)
    assert (shown["second_factor"], shown["recovery_codes"]) == ("none", 0)
    cli.enrol("approver")
    placing = _hold(cli, "place")
    gone = cli("proposals", "approve", placing, "--otp", second[8], who="approver")
    assert gone.exit_code == 1 and "wrong recovery code" in gone.output

    # the audit says a set was issued and a code used (how many are left), never a code
    exported = tmp_path / "audit.csv"
    assert cli("audit", "export", "--out", str(exported), who="auditor").exit_code == 0
    audit_text = exported.read_text()
    assert audit_text.count("staff.otp_recovery_issue") == 4  # the reviewer, the approver x3
    assert audit_text.count("staff.otp_recovery_use") == 9
    engine = db.create_engine(cli.url)  # type: ignore[attr-defined]
    try:
        with engine.connect() as conn:
            stored = " ".join(str(r) for r in conn.execute(sa.select(staff_otp_recovery)))
    finally:
        engine.dispose()
    every = first + second + cli.phones.recovery["approver"] + cli.phones.recovery["reviewer"]
    for each in every:
        for form in (each, each.replace("-", "")):
            assert form not in audit_text and form not in caplog.text and form not in stored
