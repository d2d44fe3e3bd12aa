"""A running console for the tests: a seeded database (SQLite or PostgreSQL), the staff
room's CA and accounts (one per role), a device CA, and uvicorn serving HTTPS in a thread."""

import contextlib
import datetime as dt
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from central import config
from central.bootstrap import Central
from central.certification.settings import Policy
from central.console import app as console_app
from central.console import queries, server
from central.console.readonly import reader
from central.fleet.health_schema import fleet_alerts, fleet_devices
from central.payments import runs
from central.payments.period import Period
from central.people import population
from central.staff import accounts, ca
from central.staff.identity import Actor, Role
from central.staff.settings import StaffSettings
from central.store import db, schema
from provisioning.stack import free_port
from tests.fixtures.otp import Phones
from tests.integration.console_pki import Ca

COMMUNITIES = ("Chaoyang", "Haidian")  # the coordinator's


@dataclass
class Console:
    """A served console and the certificates that reach it."""

    root: Path
    url: str
    engine: Any
    web: Ca
    ctx: console_app.Context
    app: Any
    staff: StaffSettings
    certs: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    phones: Phones = field(default_factory=Phones)

    def tls(self, who: str | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.web.ca_file))
        if who is not None:
            context.load_cert_chain(*self.certs[who])
        return context

    @contextlib.contextmanager
    def client(self, who: str | None, signed_in: bool = True) -> Iterator[httpx.Client]:
        """An HTTPS client presenting ``who``'s certificate, signed in (CSRF header set)."""
        with httpx.Client(base_url=self.url, verify=self.tls(who), timeout=20) as client:
            if signed_in:
                reply = client.post("/api/session", json={})
                reply.raise_for_status()
                client.headers["x-csrf-token"] = reply.json()["csrf_token"]
            yield client


ADMIN = Actor("admin", frozenset({Role.ADMINISTRATOR}))


def _write(
    path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    pem, key_file = path.with_suffix(".pem"), path.with_suffix(".key")
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pem, key_file


def staff_certificates(
    engine: Any, settings: StaffSettings, out: Path
) -> dict[str, tuple[Path, Path]]:
    """The staff CA, one account per role (the coordinator with ``COMMUNITIES``), one with
    two roles, a revoked and an expired certificate, a locked account's, and a second
    administrator."""
    out.mkdir(parents=True, exist_ok=True)
    ca.init(engine, settings)
    certs: dict[str, tuple[Path, Path]] = {}
    first = ca.bootstrap(engine, settings, "admin", "The Administrator")
    certs[Role.ADMINISTRATOR.value] = _write(out / "admin", first.cert, first.key)
    people: dict[str, tuple[set[Role], tuple[str, ...]]] = {
        r.value: ({r}, ()) for r in Role if r is not Role.ADMINISTRATOR
    }
    people[Role.COORDINATOR.value] = ({Role.COORDINATOR}, COMMUNITIES)
    people["two-roles"] = ({Role.COORDINATOR, Role.REVIEWER}, ("Chaoyang",))
    people["revoked"] = ({Role.REVIEWER}, ())
    people["expired"] = ({Role.REVIEWER}, ())
    people["locked"] = ({Role.REVIEWER}, ())
    people["late"] = ({Role.AUDITOR}, ())  # revoked while the console runs
    people["admin-2"] = ({Role.ADMINISTRATOR}, ())  # decides what "admin" enters
    for staff_id, (roles, communities) in people.items():
        accounts.add(engine, ADMIN, staff_id, staff_id.title(), roles, communities)
        issued = ca.issue(engine, settings, ADMIN, staff_id)
        certs[staff_id] = _write(out / staff_id, issued.cert, issued.key)
        if staff_id == "revoked":
            ca.revoke(engine, settings, ADMIN, ca.serial_hex(issued.cert), "test")
    accounts.lock(engine, ADMIN, "locked")
    authority = ca.load(engine, settings)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    expired = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=3))
        .not_valid_after(now - dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
        .sign(authority.key, hashes.SHA256())
    )
    certs["expired"] = _write(out / "expired-old", expired, key)
    return certs


def seed(engine: Any, now: dt.datetime) -> None:
    """400 retirees (10% overdue), this month's payment run, today's results, one item in
    each review queue, two terminals (one offline, alerted), and five earlier month-ends
    of coverage history (made up: the certified share rising towards today's)."""
    today = now.date()
    population.insert(
        engine,
        population.generate(400, as_of=today, overdue=0.1),
        added=now - dt.timedelta(days=200),
    )
    runs.run(engine, Period.of(today), Policy(), now=now)
    with engine.begin() as conn:
        rows = queries.coverage(conn, today, Policy().reminder_days, None)
        for back in range(5, 0, -1):
            day = today.replace(day=1) - dt.timedelta(days=1 + 30 * (back - 1))
            share = 1 - 0.04 * back
            queries.record_history(
                conn,
                day,
                [
                    queries.Coverage(r.name, r.retirees, int(r.certified * share), r.due, 0)
                    for r in rows
                ],
            )
    with engine.begin() as conn:
        ids = conn.execute(
            sa.select(schema.retirees.c.id_number).order_by(schema.retirees.c.id_number).limit(6)
        ).scalars()
        rows = []
        for n, (retiree, channel, method, decision) in enumerate(
            zip(
                ids,
                ["kiosk", "kiosk", "kiosk", "desk", "mobile", "kiosk"],
                ["face", "face", "vein", "assisted", "face", "face"],
                ["pass", "pass", "pass", "pass", "pass", "refer"],
                strict=False,
            )
        ):
            rows.append(
                {
                    "result_id": uuid.uuid4(),
                    "device_id": "term-1",
                    "seq": n + 1,
                    "kid": "0" * 64,
                    "retiree_id": retiree,
                    "method": method,
                    "decision": decision,
                    "channel": channel,
                    "device_time": now,
                    "received_at": now,
                    "applied": decision == "pass",
                    "evidence": {},
                }
            )
        conn.execute(schema.results.insert(), rows)
        conn.execute(
            schema.quarantine.insert().values(
                received_at=now,
                topic="lifecert/v1/dev/term-9/result",
                device_id="term-9",
                reason="bad_signature",
                detail="signature does not verify",
                acked=True,
                payload_size=10,
                payload_sha256="0" * 64,
                payload_head=b"x",
            )
        )
        conn.execute(
            schema.fraud_flags.insert().values(
                kind="duplicate_face",
                retiree_id=rows[0]["retiree_id"],
                other_retiree_id=rows[1]["retiree_id"],
                detail={},
                created_at=now,
                status="open",
            )
        )
        conn.execute(
            fleet_devices.insert(),
            [
                {"device_id": "term-1", "status": "online", "status_at": now, "last_seen": now},
                {"device_id": "term-2", "status": "offline", "status_at": now, "last_seen": None},
            ],
        )
        conn.execute(
            fleet_alerts.insert().values(
                rule="offline", subject="term-2", reason="offline for 10 min", raised_at=now
            )
        )
        conn.execute(
            schema.registry_records.insert().values(
                kind="death",
                id_number="110105194001010011",
                birth_date=dt.date(1940, 1, 1),
                start_date=today - dt.timedelta(days=40),
                source="death.csv",
                imported_at=now,
            )
        )


def start(root: Path, url: str, bank: Any = None) -> Iterator[Console]:
    """Seed ``url``, make the PKI and config, serve the console; stop it after. ``bank``
    (``tests.fixtures.bank.Bank``): its SFTP server and encryption key for bank files."""
    web = Ca(root / "web", "console server CA")
    devices = Ca(root / "devices", "fleet CA")
    server_pem, server_key, _ = web.issue("console", server=True)
    device_pem, device_key, _ = devices.issue("term-1")
    port = free_port()
    (root / "central.toml").write_text(
        f"""
[database]
url = "{url}"
[console]
port = {port}
cert_file = "{server_pem}"
key_file = "{server_key}"
max_body_bytes = 4096
dashboard_cache_s = 0
"""
        + (tomli_w.dumps({"bank": {"sftp": bank.settings.model_dump(mode="json")}}) if bank else "")
    )
    sign = ec.generate_private_key(ec.SECP256R1())
    (root / "sign.key").write_bytes(
        sign.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (root / "bank").mkdir()
    (root / "bank" / "bank-encrypt.pub.pem").write_bytes(
        (bank.encrypt_key if bank else ec.generate_private_key(ec.SECP256R1()))
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    cfg = config.load(root / "central.toml")
    engine = db.create_engine(cfg.database.url, busy_timeout_s=10)
    db.upgrade(engine)
    certs = staff_certificates(engine, cfg.staff, root / "certs")
    certs["device"] = (device_pem, device_key)
    phones = Phones()  # the reviewer and the approver decide bank kinds with a code
    for role in (Role.REVIEWER, Role.APPROVER):
        phones.enrol(engine, cfg.staff.otp_key_file, Actor(role.value, frozenset({role})))
    seed(engine, dt.datetime.now(dt.UTC))
    app = console_app.build(
        engine,
        reader(cfg.database),
        cfg.console,
        cfg.policy,
        cfg.staff,
        cfg.proposals,
        Central(cfg),
        fleet_files=(devices.root, devices.crl_file),
    )
    ctx: console_app.Context = app.state.ctx
    served = server.server(app, cfg.console, server.tls_context(cfg.console, cfg.staff))
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not served.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console did not start")
        time.sleep(0.05)
    try:
        yield Console(
            root, server.url(cfg.console), engine, web, ctx, app, cfg.staff, certs, phones
        )
    finally:
        served.should_exit = True
        thread.join(10)
        engine.dispose()
