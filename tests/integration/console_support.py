"""A running console for the tests: a seeded database (SQLite or PostgreSQL), a staff CA,
a device CA, staff certificates per role, and uvicorn serving HTTPS in a thread."""

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

from central import config
from central.certification.settings import Policy
from central.console import app as console_app
from central.console import server
from central.console.readonly import reader
from central.payments import runs
from central.payments.period import Period
from central.people import population
from central.staff.identity import Role
from central.store import db, schema
from provisioning.stack import free_port
from tests.integration.console_pki import Ca

COMMUNITIES = ("Dongcheng", "Haidian")  # the coordinator's


@dataclass
class Console:
    """A served console and the certificates that reach it."""

    root: Path
    url: str
    engine: Any
    staff: Ca
    web: Ca
    ctx: console_app.Context
    app: Any
    certs: dict[str, tuple[Path, Path]] = field(default_factory=dict)

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


ROLE_SUBJECTS: dict[str, dict[str, Any]] = {
    role.value: {"units": (role.value,)} for role in Role
} | {Role.COORDINATOR.value: {"units": ("coordinator",), "localities": COMMUNITIES}}


def seed(engine: Any, now: dt.datetime) -> None:
    """400 retirees (10% overdue), this month's payment run, today's results, and one item
    in each review queue."""
    today = now.date()
    population.insert(
        engine,
        population.generate(400, as_of=today, overdue=0.1),
        added=now - dt.timedelta(days=200),
    )
    runs.run(engine, Period.of(today), Policy(), now=now)
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
            schema.registry_records.insert().values(
                kind="death",
                id_number="110105194001010011",
                birth_date=dt.date(1940, 1, 1),
                start_date=today - dt.timedelta(days=40),
                source="death.csv",
                imported_at=now,
            )
        )


def start(root: Path, url: str) -> Iterator[Console]:
    """Seed ``url``, make the PKI and config, serve the console; stop it after."""
    staff = Ca(root / "staff", "staff CA")
    web = Ca(root / "web", "console server CA")
    devices = Ca(root / "devices", "fleet CA")
    server_pem, server_key, _ = web.issue("console", server=True)
    certs: dict[str, tuple[Path, Path]] = {}
    for name, subject in ROLE_SUBJECTS.items():
        pem, key, _ = staff.issue(name, **subject)
        certs[name] = (pem, key)
    pem, key, _ = staff.issue("two-roles", units=("coordinator+reviewer",))
    certs["two-roles"] = (pem, key)
    pem, key, revoked = staff.issue("revoked", units=("reviewer",))
    certs["revoked"] = (pem, key)
    staff.revoke(revoked)
    pem, key, _ = staff.issue("expired", units=("reviewer",), days=2, start_days_ago=5)
    certs["expired"] = (pem, key)
    pem, key, _ = devices.issue("term-1")
    certs["device"] = (pem, key)
    pem, key, _ = staff.issue("nobody")  # no role
    certs["nobody"] = (pem, key)
    port = free_port()
    (root / "central.toml").write_text(
        f"""
[database]
url = "{url}"
[console]
port = {port}
cert_file = "{server_pem}"
key_file = "{server_key}"
staff_ca_file = "{staff.ca_file}"
staff_crl_file = "{staff.crl_file}"
max_body_bytes = 4096
dashboard_cache_s = 0
"""
    )
    cfg = config.load(root / "central.toml")
    engine = db.create_engine(cfg.database.url, busy_timeout_s=10)
    db.upgrade(engine)
    seed(engine, dt.datetime.now(dt.UTC))
    app = console_app.build(engine, reader(cfg.database), cfg.console, cfg.policy)
    ctx: console_app.Context = app.state.ctx
    served = server.server(app, cfg.console)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not served.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console did not start")
        time.sleep(0.05)
    try:
        yield Console(root, server.url(cfg.console), engine, staff, web, ctx, app, certs)
    finally:
        served.should_exit = True
        thread.join(10)
        engine.dispose()
