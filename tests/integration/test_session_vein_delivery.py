"""A vein template enrolled at the desk reaches central sealed, and central stores it.

The desk session runs on hand-written fakes for the devices and the real
``Recorder`` + SQLite outbox; the signed result it stores is decoded, its vein
template unsealed with central's key, then re-signed by a device enrolled at a
real central (SQLite and PostgreSQL) and ingested: the row keeps the sealed
template in ``results.vein_template_sealed``.
"""

import base64
import dataclasses
import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from central.certification.devices import DeviceTrust
from central.certification.ingest import Inbound, Ingestor, Status
from central.certification.settings import Policy
from central.people import roster
from central.store import schema
from edge.adapters import keys as edge_keys
from edge.adapters.outbox import Outbox
from edge.adapters.recorder import Recorder
from edge.kiosk.desk import Desk, StaffBook, hash_pin
from edge.kiosk.lockout import PinLockout
from edge.session.model import Order
from protocol import messages, sealing
from protocol.messages import Channel, Method, Result
from tests.fixtures.database import CentralPki, known_staff
from tests.unit.test_edge_keys import Bundle, edge_bundle  # noqa: F401
from tests.unit.test_session_core import RETIREE, Veins, build, card, live_script

pytestmark = pytest.mark.integration

TEMPLATE = bytes(range(200)) * 8  # the size of a packed 76x170 campus64 template


def _payload(jws: str) -> bytes:
    part = jws.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def desk_visit(tmp_path: Path, bundle: Bundle) -> Result:
    """Assisted check then vein enrolment at the desk; the vein result as stored."""
    session, _, _, _ = build(live_script(), veins=Veins(TEMPLATE))
    (tmp_path / "staff").write_text(f"li-wei:{hash_pin('4711')}\n")
    desk = Desk(StaffBook(tmp_path / "staff"), PinLockout(tmp_path / "edge.sqlite"))
    assert desk.login("li-wei", "4711").token is not None
    for order in (Order("assisted"), Order("vein"), Order("end")):
        desk.order(order)
    cfg = bundle.config()
    with Outbox(tmp_path / "edge.sqlite", cfg.device_id, ack_timeout_s=10) as outbox:
        recorder = Recorder(outbox, edge_keys.load(cfg))
        session.ports = dataclasses.replace(session.ports, recorder=recorder)
        session.assist(card(), threading.Event(), desk)
        stored = [messages.decode(Result, _payload(p.jws)) for p in outbox.due(10)]
        assert all(TEMPLATE.hex()[:64] not in p.jws for p in outbox.due(10))
    assert [r.method for r in stored] == [Method.ASSISTED, Method.VEIN]
    assert stored[0].vein_template is None
    return stored[1]


def test_desk_vein_template_is_sealed_and_stored_by_central(
    tmp_path: Path,
    edge_bundle: Bundle,  # noqa: F811
    central_engine: Any,
    central_pki: CentralPki,
) -> None:
    vein = desk_visit(tmp_path, edge_bundle)
    assert vein.channel is Channel.DESK and vein.vein_template is not None
    assert sealing.unseal(vein.vein_template, edge_bundle.central_seal_key) == TEMPLATE

    now = dt.datetime.now(dt.UTC)
    roster.upsert(
        central_engine,
        [{"id_number": RETIREE, "name": "王秀英", "sex": "F", "birth_date": dt.date(1949, 12, 31)}],
        "test",
        now,
    )
    term = central_pki.terminal("term-0001")
    trust = DeviceTrust(
        central_pki.ca_file, central_pki.crl_file, central_pki.devices_dir, check_interval_s=0
    )
    known_staff(central_engine, "li-wei")
    ingest = Ingestor(central_engine, trust, Policy())
    resent = vein.model_copy(update={"device_id": term.device_id, "seq": 1})
    outcome = ingest.apply(Inbound(term.topic(), term.sign(resent), now))
    assert outcome.status is Status.APPLIED
    with central_engine.connect() as conn:
        row = conn.execute(sa.select(schema.results)).one()
    assert row.method == "vein" and row.channel == "desk"
    assert row.vein_template_sealed == vein.vein_template and row.template_sealed is None


def test_a_vein_template_only_travels_with_a_desk_pass() -> None:
    with pytest.raises(ValueError, match="vein template may only travel"):
        Result.model_validate(
            {
                "result_id": "00000000-0000-4000-8000-000000000001",
                "device_id": "term-0001",
                "seq": 1,
                "device_time": "2026-11-23T10:00:00Z",
                "retiree_id": RETIREE,
                "method": "assisted",
                "decision": "pass",
                "channel": "kiosk",
                "assisted": {"staff_id": "li-wei"},
                "vein_template": "a.b.c.d.e",
            }
        )
