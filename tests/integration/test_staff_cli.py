"""The staff and audit commands end to end through the CLI, on SQLite and PostgreSQL, with
real staff certificates: bootstrap, sign-in, roles, lockout, audit verify and export."""

import csv
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from central.cli import main
from central.staff import audit
from protocol import signing, staffdir

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(staff_db_url: str, tmp_path: Path) -> Any:
    config = tmp_path / "central.toml"
    config.write_text(f'[database]\nurl = "{staff_db_url}"\n[staff]\nmax_failed_logins = 3\n')

    def invoke(*args: str, who: str | None = None) -> Any:
        signed = [] if who is None else [
            "--staff-cert", str(tmp_path / "certs" / f"{who}.pem"),
            "--staff-key", str(tmp_path / "certs" / f"{who}.key"),
        ]  # fmt: skip
        return CliRunner().invoke(
            main, ["--config", str(config), *signed, *args], catch_exceptions=False
        )

    assert invoke("db", "upgrade").exit_code == 0
    return invoke


def _approved(cli: Any, made: Any, by: str = "root2") -> Any:
    """Approve the staff proposal ``made`` entered, as ``by`` (the second administrator)."""
    assert made.exit_code == 0, made.output
    proposal = re.search(r"^proposal (\d+):", made.output, re.M)
    assert proposal, made.output
    done = cli("proposals", "approve", proposal.group(1), who=by)
    assert done.exit_code == 0, done.output
    return done


def _zhao_key(tmp_path: Path, who: str = "zhao") -> None:
    """``who``'s own key in certs/WHO.key and their request in WHO.csr."""
    own = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, who)])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(own, hashes.SHA256())
    (tmp_path / f"{who}.csr").write_bytes(request.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "certs").mkdir(exist_ok=True)
    (tmp_path / "certs" / f"{who}.key").write_bytes(
        own.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _member(cli: Any, tmp_path: Path, staff_id: str, *args: str) -> None:
    """Propose and approve ``staff_id`` with ``args`` (roles ...), and their certificate."""
    _approved(cli, cli("staff", "add", staff_id, "--name", staff_id.title(), *args, who="root"))
    _zhao_key(tmp_path, staff_id)
    csr = str(tmp_path / f"{staff_id}.csr")
    certs = str(tmp_path / "certs")
    issued = cli("staff", "cert", "issue", staff_id, "--csr", csr, "--out", certs, who="root")
    done = _approved(cli, issued)
    number = done.output.split()[1].rstrip(":")
    assert cli("staff", "cert", "fetch", number, "--out", certs, who="root").exit_code == 0


def _admins(cli: Any, certs: str) -> None:
    """The staff CA and the two bootstrap administrators root and root2."""
    assert cli("staff", "ca", "init").exit_code == 0
    for name in ("root", "root2"):
        made = cli("staff", "add", name, "--name", name.title(), "--first-admin", "--out", certs)
        assert made.exit_code == 0, made.output


def test_bootstrap_then_everything_as_signed_in_staff(cli: Any, tmp_path: Path) -> None:
    certs = str(tmp_path / "certs")
    before_ca = cli("staff", "add", "root", "--name", "Root", "--first-admin", "--out", certs)
    assert before_ca.exit_code == 1 and "staff ca init" in before_ca.output
    assert cli("staff", "ca", "init").exit_code == 0
    assert (tmp_path / "staff-ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    made = cli("staff", "add", "root", "--name", "Root", "--first-admin", "--out", certs)
    assert made.exit_code == 0, made.output
    second = cli("staff", "add", "root2", "--name", "Root 2", "--first-admin", "--out", certs)
    assert second.exit_code == 0, second.output
    again = cli("staff", "add", "evil", "--name", "Evil", "--first-admin", "--out", certs)
    assert again.exit_code == 1 and "exist already" in again.output

    anonymous = cli("staff", "add", "wang.li", "--name", "Wang Li", "--role", "coordinator")
    assert anonymous.exit_code == 1
    assert "this command changes data: sign in with --staff-cert and --staff-key" in (
        anonymous.output
    )
    added = cli(
        "staff", "add", "wang.li", "--name", "Wang Li", "--role", "coordinator",
        "--community", "Hepingli", who="root",
    )  # fmt: skip
    assert "waits for: approve by an administrator (level 2 of 2)" in added.output
    _approved(cli, added)
    _approved(cli, cli("staff", "add", "zhao", "--name", "Zhao", "--role", "auditor", who="root"))
    issued = cli("staff", "cert", "issue", "zhao", "--out", certs, who="root")
    assert issued.exit_code == 1 and "--csr: a certificate for zhao is a proposal" in issued.output
    _zhao_key(tmp_path)
    issued = cli(
        "staff", "cert", "issue", "zhao", "--csr", str(tmp_path / "zhao.csr"), "--out", certs,
        who="root",
    )  # fmt: skip
    done = _approved(cli, issued)
    assert "certificate" in done.output
    fetched = cli("staff", "cert", "fetch", done.output.split()[1].rstrip(":"), "--out", certs,
                  who="root")  # fmt: skip
    assert fetched.exit_code == 0, fetched.output
    cert = x509.load_pem_x509_certificate((tmp_path / "certs" / "zhao.pem").read_bytes())

    listed = json.loads(cli("staff", "list", "--json", who="zhao").output)
    assert {r["staff_id"]: r["roles"] for r in listed} == {
        "root": "administrator", "root2": "administrator", "wang.li": "coordinator",
        "zhao": "auditor",
    }  # fmt: skip
    wrong_role = cli("staff", "lock", "wang.li", who="zhao")
    assert wrong_role.exit_code == 1 and "may not staff.manage" in wrong_role.output
    no_audit = cli("audit", "verify", who="root")
    assert no_audit.exit_code == 1 and "may not audit.read" in no_audit.output
    bad_id = cli("staff", "grant", "Wang Li", "reviewer", who="root")
    assert bad_id.exit_code == 2 and "staff id" in bad_id.output

    serial = format(cert.serial_number, "x")
    assert cli("staff", "cert", "revoke", serial, "--reason", "lost", who="root").exit_code == 0
    revoked = cli("audit", "verify", who="zhao")
    assert revoked.exit_code == 1 and f"certificate {serial} is revoked" in revoked.output
    shown = json.loads(cli("staff", "show", "zhao", "--json", who="root").output)
    assert shown["failed_logins"] == 1 and shown["certificates"][0]["revoked_at"]


def test_a_wrong_key_counts_and_locks(cli: Any, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    _admins(cli, str(certs))
    _member(cli, tmp_path, "li", "--role", "reviewer")
    (certs / "li.key").write_bytes((certs / "root.key").read_bytes())  # someone else's key
    for _ in range(3):
        refused = cli("staff", "list", who="li")
        assert refused.exit_code == 1 and "the key does not belong" in refused.output
    li = json.loads(cli("staff", "show", "li", "--json", who="root").output)
    assert li["locked"] and li["failed_logins"] == 3
    self_unlock = cli("staff", "unlock", "root", who="root")
    assert self_unlock.exit_code == 1 and "their own" in self_unlock.output
    assert cli("staff", "unlock", "li", who="root").output == "li: unlocked\n"


def test_audit_verify_and_export(cli: Any, tmp_path: Path, staff_db_url: str) -> None:
    certs = tmp_path / "certs"
    _admins(cli, str(certs))
    _member(cli, tmp_path, "zhao", "--role", "auditor")
    ok = cli("audit", "verify", who="zhao")
    assert ok.exit_code == 0 and "audit chain OK" in ok.output
    head = cli("audit", "head", who="zhao").output.strip()
    assert cli("audit", "verify", "--expect", head, who="zhao").exit_code == 0
    assert cli("audit", "verify", "--expect", "nonsense", who="zhao").exit_code == 2

    for name in ("audit.csv", "audit.jsonl"):
        out = cli("audit", "export", "--out", str(tmp_path / name), who="zhao")
        assert out.exit_code == 0, out.output
    rows = list(csv.DictReader((tmp_path / "audit.csv").open(encoding="utf-8")))
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    # each signed-in command adds its sign-in: the later export has one entry more
    assert [r["hash"] for r in rows] == [x["hash"] for x in lines[:-1]]
    assert lines[-1]["action"] == "staff.signin" and lines[-1]["cert_serial"]
    assert lines[0]["action"] == "staff.ca_init" and lines[0]["prev_hash"] == audit.GENESIS
    assert any(x["action"] == "staff.cert_issue" and x["staff_id"] == "root2" for x in lines)

    from central.store import db

    engine = db.create_engine(staff_db_url)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        conn.exec_driver_sql("UPDATE audit_log SET staff_id = 'someone' WHERE id = 3")
    engine.dispose()
    broken = cli("audit", "verify", who="zhao")
    assert broken.exit_code == 1
    assert "audit chain broken at entry 3: its content does not match its hash" in broken.output


def test_staff_directory_for_a_site(cli: Any, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "sign.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    certs = str(tmp_path / "certs")
    _admins(cli, certs)
    added = cli(
        "staff", "add", "wang.li", "--name", "Wang Li", "--role", "entry_clerk",
        "--site", "hepingli", who="root",
    )  # fmt: skip
    _approved(cli, added)
    out = tmp_path / "staff-directory.jws"
    made = cli("staff", "directory", "--site", "hepingli", "--out", str(out), who="root")
    assert made.exit_code == 0 and "1 staff for site hepingli" in made.output
    directory = staffdir.verify(
        out.read_bytes(),
        signing.Verifier(key.public_key()),
        site="hepingli",
        now=dt.datetime.now(dt.UTC),
    )
    assert [e.staff_id for e in directory.staff] == ["wang.li"]
    bad = cli("staff", "directory", "--site", "Heping Li", "--out", str(out), who="root")
    assert bad.exit_code == 1 and "--site: invalid site" in bad.output


def test_a_certificate_for_the_members_own_request(cli: Any, tmp_path: Path) -> None:
    """Your own certificate (a renewal) at once, for your request: the key stays yours."""
    certs = tmp_path / "certs"
    _admins(cli, str(certs))
    own = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "root")])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(own, hashes.SHA256())
    csr = tmp_path / "root.csr"
    csr.write_bytes(request.public_bytes(serialization.Encoding.PEM))
    renewed = tmp_path / "renewed"
    issued = cli(
        "staff", "cert", "issue", "root", "--csr", str(csr), "--out", str(renewed), who="root"
    )
    assert issued.exit_code == 0, issued.output
    assert not (renewed / "root.key").exists()
    cert = x509.load_pem_x509_certificate((renewed / "root.pem").read_bytes())
    assert cert.public_key() == own.public_key()
    csr.write_text("not a request")
    bad = cli("staff", "cert", "issue", "root", "--csr", str(csr), "--out", str(certs), who="root")
    assert bad.exit_code == 1 and "--csr: not a PEM certificate request" in bad.output
    foreign = cli("staff", "cert", "issue", "root2", "--csr", str(csr), "--out", str(certs),
                  who="root")  # fmt: skip
    assert foreign.exit_code == 1 and "csr: " in foreign.output


def test_staff_proposals_refused_through_the_cli(cli: Any, tmp_path: Path) -> None:
    """The entrant, the member the change is about and the wrong role are refused."""
    certs = tmp_path / "certs"
    _admins(cli, str(certs))
    _member(cli, tmp_path, "zhao", "--role", "auditor")
    own = cli("staff", "deactivate", "root", who="root")
    assert own.exit_code == 1 and "changes their own account" in own.output
    made = cli("staff", "deactivate", "root2", who="root")
    number = re.search(r"^proposal (\d+):", made.output, re.M)
    assert number, made.output
    for who, why in (
        ("root", "root entered proposal"),
        ("root2", "changes their own account"),
        ("zhao", "needs the administrator role (theirs: auditor)"),
    ):
        refused = cli("proposals", "approve", number.group(1), who=who)
        assert refused.exit_code == 1 and why in refused.output, refused.output
    listed = json.loads(cli("proposals", "list", "--all", "--json", who="root").output)
    assert {p["kind"] for p in listed} == {"staff_add", "staff_cert", "staff_active"}
    shown = json.loads(cli("staff", "show", "root2", "--json", who="root").output)
    assert shown["active"]
