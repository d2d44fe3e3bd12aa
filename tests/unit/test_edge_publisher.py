"""Signed results and their delivery: recorder, publish window, re-send, ack verification."""

import base64
import json
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from edge.adapters import keys as edge_keys
from edge.adapters.keys import Keys
from edge.adapters.outbox import Outbox, Status
from edge.adapters.recorder import Recorder
from edge.publisher import REFUSED, Publisher
from edge.session.model import Draft, assisted
from protocol import messages, sealing, signing
from protocol.errors import MessageError
from protocol.messages import Ack, AckBatch, AckStatus, Decision, Method, Result
from tests.unit.test_edge_keys import Bundle, edge_bundle  # noqa: F401
from tests.unit.test_edge_outbox import RETIREE, FakeClock

DEVICE = "term-0001"


class Wire:
    """The publish port as the publisher sees it: records payloads, can go offline."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.online = True

    def __call__(self, jws: str) -> bool:
        if self.online:
            self.sent.append(jws)
        return self.online


@pytest.fixture
def keys(edge_bundle: Bundle) -> Keys:  # noqa: F811
    return edge_keys.load(edge_bundle.config())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def outbox(tmp_path: Path, clock: FakeClock) -> Outbox:
    with Outbox(
        tmp_path / "edge.sqlite", DEVICE, ack_timeout_s=10, backoff_max_s=40, clock=clock
    ) as box:
        yield box


def central_ack(
    key: ec.EllipticCurvePrivateKey,
    result_id: str,
    status: AckStatus = AckStatus.APPLIED,
    device: str = DEVICE,
) -> bytes:
    """An ack signed the way central signs it."""
    ack = Ack(result_id=uuid.UUID(result_id), device_id=device, status=status)
    body = messages.encode(AckBatch(device_id=device, acks=(ack,)))
    kid = signing.key_fingerprint(key.public_key())
    return signing.Signer(key, kid).sign(body).encode()


def test_recorded_result_is_signed_by_the_device(
    outbox: Outbox,
    keys: Keys,
    edge_bundle: Bundle,  # noqa: F811
) -> None:
    receipt = Recorder(outbox, keys).record(assisted(RETIREE, "desk-07", note="walked in"))
    (pending,) = outbox.due(10)
    assert pending.result_id == receipt.result_id
    header = signing.unverified_header(pending.jws)
    assert header["kid"] == signing.cert_fingerprint(edge_bundle.device_cert)
    verifier = signing.Verifier(edge_bundle.device_cert.public_key())  # type: ignore[arg-type]
    result = messages.decode(Result, verifier.verify(pending.jws))
    assert str(result.result_id) == receipt.result_id
    assert (result.device_id, result.seq, result.retiree_id) == (DEVICE, 1, RETIREE)
    assert result.method is Method.ASSISTED and result.decision is Decision.PASS
    assert result.assisted is not None and result.assisted.staff_id == "desk-07"
    assert result.channel.value == "desk" and result.template is None


def test_template_travels_sealed_to_central(
    outbox: Outbox,
    keys: Keys,
    edge_bundle: Bundle,  # noqa: F811
) -> None:
    template = bytes(range(256)) * 2
    draft = Draft(
        retiree_id=RETIREE,
        method=Method.ASSISTED,
        decision=Decision.PASS,
        assisted=assisted(RETIREE, "desk-07").assisted,
        template=template,
    )
    Recorder(outbox, keys).record(draft)
    (pending,) = outbox.due(10)
    assert template.hex() not in pending.jws
    result = messages.decode(Result, _payload(pending.jws))
    assert result.template is not None
    assert sealing.unseal(result.template, edge_bundle.central_seal_key) == template


def _payload(jws: str) -> bytes:
    part = jws.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_invalid_draft_stores_nothing(outbox: Outbox, keys: Keys) -> None:
    recorder = Recorder(outbox, keys)
    with pytest.raises(MessageError, match="retiree_id"):
        recorder.record(assisted("110105194912310021", "desk-07"))
    with pytest.raises(MessageError, match="staff_id"):
        assisted(RETIREE, "")
    assert outbox.counts()["pending"] == 0
    assert recorder.record(assisted(RETIREE, "desk-07")).seq == 1


def test_window_bounds_inflight_and_acks_open_it(
    outbox: Outbox,
    keys: Keys,
    edge_bundle: Bundle,  # noqa: F811
) -> None:
    receipts = Recorder(outbox, keys).record_many([assisted(RETIREE, "desk-07")] * 5)
    wire = Wire()
    publisher = Publisher(outbox, keys.central_verifier, wire, max_inflight=2)
    assert publisher.publish_due() == 2
    assert publisher.publish_due() == 0
    key = edge_bundle.central_sign_key
    tally = publisher.apply_acks([central_ack(key, receipts[0].result_id)])
    assert tally == {"marked": 1}
    assert publisher.publish_due() == 1
    assert [_seq(j) for j in wire.sent] == [1, 2, 3]
    assert outbox.counts() == {"pending": 4, "delivered": 1, "rejected": 0}


def _seq(jws: str) -> int:
    return int(json.loads(_payload(jws))["seq"])


def test_unacked_result_is_resent_after_timeout(
    outbox: Outbox,
    keys: Keys,
    clock: FakeClock,
    edge_bundle: Bundle,  # noqa: F811
) -> None:
    receipt = Recorder(outbox, keys).record(assisted(RETIREE, "desk-07"))
    wire = Wire()
    publisher = Publisher(outbox, keys.central_verifier, wire)
    assert publisher.publish_due() == 1
    clock.advance(9.9)
    assert publisher.publish_due() == 0
    clock.advance(0.2)
    assert publisher.publish_due() == 1
    assert wire.sent[0] == wire.sent[1]
    clock.advance(15)
    assert publisher.publish_due() == 0
    publisher.apply_acks([central_ack(edge_bundle.central_sign_key, receipt.result_id)])
    clock.advance(100)
    assert publisher.publish_due() == 0
    assert len(wire.sent) == 2


def test_offline_send_keeps_rows_due(outbox: Outbox, keys: Keys) -> None:
    Recorder(outbox, keys).record_many([assisted(RETIREE, "desk-07")] * 2)
    wire = Wire()
    wire.online = False
    publisher = Publisher(outbox, keys.central_verifier, wire)
    assert publisher.publish_due() == 0
    assert publisher.inflight == 0
    wire.online = True
    assert publisher.publish_due() == 2


def test_lost_session_resends_everything_unacked(outbox: Outbox, keys: Keys) -> None:
    Recorder(outbox, keys).record_many([assisted(RETIREE, "desk-07")] * 3)
    wire = Wire()
    publisher = Publisher(outbox, keys.central_verifier, wire)
    assert publisher.publish_due() == 3
    publisher.connected(session_present=True)
    assert publisher.publish_due() == 0
    publisher.connected(session_present=False)
    assert publisher.publish_due() == 3
    assert len(wire.sent) == 6


def test_forged_ack_is_refused(
    outbox: Outbox,
    keys: Keys,
    edge_bundle: Bundle,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    receipt = Recorder(outbox, keys).record(assisted(RETIREE, "desk-07"))
    forger = ec.generate_private_key(ec.SECP256R1())
    genuine = central_ack(edge_bundle.central_sign_key, receipt.result_id)
    head, _, sig = genuine.decode().split(".")
    other = central_ack(edge_bundle.central_sign_key, receipt.result_id, AckStatus.REJECTED)
    tampered = f"{head}.{other.decode().split('.')[1]}.{sig}".encode()
    publisher = Publisher(outbox, keys.central_verifier, Wire())
    tally = publisher.apply_acks(
        [central_ack(forger, receipt.result_id), tampered, b"not a jws", b"x" * 5000]
    )
    assert tally == {REFUSED: 4}
    row = outbox.get(receipt.result_id)
    assert row is not None and row.status is Status.PENDING
    assert "ack refused" in caplog.text
    assert publisher.apply_acks([genuine]) == {"marked": 1}


def test_ack_for_unknown_result_is_ignored(
    outbox: Outbox,
    keys: Keys,
    edge_bundle: Bundle,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    receipt = Recorder(outbox, keys).record(assisted(RETIREE, "desk-07"))
    publisher = Publisher(outbox, keys.central_verifier, Wire())
    tally = publisher.apply_acks([central_ack(edge_bundle.central_sign_key, str(uuid.uuid4()))])
    assert tally == {"unknown": 1}
    assert "unknown result" in caplog.text
    assert outbox.counts() == {"pending": 1, "delivered": 0, "rejected": 0}
    assert outbox.get(receipt.result_id) is not None


def test_ack_for_another_device_is_ignored(
    outbox: Outbox,
    keys: Keys,
    edge_bundle: Bundle,  # noqa: F811
) -> None:
    receipt = Recorder(outbox, keys).record(assisted(RETIREE, "desk-07"))
    publisher = Publisher(outbox, keys.central_verifier, Wire())
    foreign = central_ack(edge_bundle.central_sign_key, receipt.result_id, device="term-0002")
    assert publisher.apply_acks([foreign]) == {REFUSED: 1}
    assert outbox.counts()["pending"] == 1


def test_rejected_ack_stops_resending(
    outbox: Outbox,
    keys: Keys,
    clock: FakeClock,
    edge_bundle: Bundle,  # noqa: F811
) -> None:
    receipt = Recorder(outbox, keys).record(assisted(RETIREE, "desk-07"))
    wire = Wire()
    publisher = Publisher(outbox, keys.central_verifier, wire)
    publisher.publish_due()
    ack = central_ack(edge_bundle.central_sign_key, receipt.result_id, AckStatus.REJECTED)
    assert publisher.apply_acks([ack, ack]) == {"marked": 1, "already": 1}
    clock.advance(1000)
    assert publisher.publish_due() == 0
    row = outbox.get(receipt.result_id)
    assert row is not None and row.status is Status.REJECTED
