"""Central's template service over the real stack: a retiree certified at one terminal is
recognised at another against the last certified template.

Real Mosquitto with mutual TLS, a real ``lifecert-central run`` (consumer and template
service), real sessions on LFW faces (see test_session_e2e for how a "person" is played).
A session asks central over its terminal's one broker link, opened here as the service
would (``edge.bootstrap.open_link``); a terminal's own service (which would hold that
link) starts only once its session is done.
"""

import base64
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from central.bootstrap import Central
from central.certification.templates import Limits, TemplateAnswers
from central.config import load as load_central
from edge.adapters import keys as edge_keys
from edge.adapters.mqtt import MqttLink
from edge.adapters.templates import CentralTemplates, ReplyError
from edge.bootstrap import open_link, open_outbox, open_session
from edge.config import EdgeConfig
from edge.config import load as load_config
from edge.session.model import Outcome
from hal.card.identity import Identity
from hal.card.mock import MockCardReader
from models.bundle import read_manifest
from protocol import messages, signing, topics
from provisioning.stack import Stack
from tests.fixtures.broker import tls_refusal
from tests.fixtures.ports import free_port
from tests.fixtures.stack import make_stack
from tests.fixtures.waiting import wait_until
from tests.integration.test_session_e2e import (
    CHALLENGES,
    TONY,
    Screens,
    card,
    configure,
    fleet_bundle,
    frames_dir,
    performance,
    wait_central,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

A, B, C, R = "term-ta1", "term-tb1", "term-tc1", "term-tr1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, list[str], Path]]:
    root = tmp_path_factory.mktemp("templates")
    built, ids = make_stack(root, [A, B, C, R], retirees=5)
    bundle = fleet_bundle(built, root / "models")
    for device in (A, B, C, R):
        configure(built, device, f'[models]\nbundle = "{bundle}"\n')
    with built:
        built.broker.start()
        built.start_central()
        yield built, ids, root


def edge_cfg(stack: Stack, device: str, folder: Path, **session: object) -> EdgeConfig:
    cfg = load_config(stack.edge_config(device))
    return cfg.model_copy(
        update={
            "hal": cfg.hal.model_validate(
                {
                    "camera": {"type": "replay", "source": folder, "fps": 30, "loop": True},
                    "id_card": {"type": "mock"},
                },
                context={"base_dir": None},
            ),
            "session": cfg.session.model_validate(
                {"challenges": json.loads(CHALLENGES), **session}
            ),
        }
    )


@contextmanager
def link_of(cfg: EdgeConfig, start: bool = True) -> Iterator[MqttLink]:
    """The terminal's broker link, as its service opens it (started unless told not)."""
    with open_link(cfg, on_ack=lambda payload: None) as link:
        if start:
            link.start()
        yield link


def certify(cfg: EdgeConfig, identity: Identity) -> Outcome:
    with (
        link_of(cfg) as link,
        open_outbox(cfg) as outbox,
        open_session(cfg, outbox, Screens(), link) as sess,
    ):
        reader = sess.ports.cards.readers[0]  # type: ignore[attr-defined]
        assert isinstance(reader, MockCardReader)
        reader.insert(identity)
        got = sess.wait_card(threading.Event())
        assert got is not None
        return sess.certify(got)


def tony_frames(data: Path, root: Path) -> Path:
    return frames_dir(data, performance(TONY), root / f"frames-{len(list(root.glob('frames-*')))}")


def answers(stack: Stack, **limits: float) -> TemplateAnswers:
    central = Central(load_central(stack.central_config))
    return TemplateAnswers(
        central.engine,
        central.trust,
        central.cfg.fleet.devices_dir,
        central.seal_key,
        central.signer,
        central.cfg.require_mqtt().root,
        Limits(**limits),  # type: ignore[arg-type]
    )


def ask(service: TemplateAnswers, device: str, retiree: str, request_id: str = "0" * 32) -> str:
    body = json.dumps({"op": "face_template", "request_id": request_id, "retiree_id": retiree})
    reply = service.answer(
        topics.device_topic(device, "req"), body.encode(), topics.device_topic(device, "resp")
    )
    assert reply is not None
    return reply


def client(
    link: MqttLink, cfg: EdgeConfig, model: str = "", timeout: float = 5
) -> CentralTemplates:
    key = signing.load_private_key(edge_keys.device_key_path(cfg))
    verifier = edge_keys.load(cfg).central_verifier
    return CentralTemplates(link, cfg.device_id, verifier, key, model, timeout)


def embedder(cfg: EdgeConfig) -> str:
    """The embedder name the terminal puts in templates (as PipelineFaces does)."""
    assert cfg.central.model_sign_pub is not None
    spec = read_manifest(cfg.models.bundle, cfg.central.model_sign_pub).models["embedder"]
    return f"{spec.file}@{spec.sha256[:16]}"


def reference_used(cfg: EdgeConfig, result_id: str) -> str:
    """``match.reference`` of the signed result in the terminal's outbox."""
    with sqlite3.connect(cfg.db_path) as db:
        (jws,) = db.execute("SELECT jws FROM outbox WHERE result_id = ?", (result_id,)).fetchone()
    return str(json.loads(payload(jws))["match"]["reference"])


def payload(token: str) -> bytes:
    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def reply_of(token: str) -> messages.Reply:
    return messages.decode(messages.Reply, payload(token))


def test_certified_at_a_recognised_at_b_against_the_template_not_the_card_photo(
    stack: tuple[Stack, list[str], Path], shared_data: Path
) -> None:
    built, ids, root = stack
    cfg_a = edge_cfg(built, A, tony_frames(shared_data, root))
    first = certify(cfg_a, card(shared_data, ids[0], TONY["card"]))  # type: ignore[arg-type]
    assert first.decision == "pass" and first.result_id is not None, first.attempts
    built.start_edge(A)  # A's own service delivers what A's session stored
    wait_central(built, first.result_id)

    # At B the card carries no photo: only central's template can be the reference.
    cfg_b = edge_cfg(built, B, tony_frames(shared_data, root))
    second = certify(cfg_b, card(shared_data, ids[0], None))
    assert second.decision == "pass" and second.method == "face", second.attempts
    comparison = second.attempts[-1].comparison
    assert comparison is not None and comparison.matched
    assert second.result_id is not None
    assert reference_used(cfg_b, second.result_id) == "template"
    assert reference_used(cfg_a, first.result_id) == "card_photo"

    with link_of(cfg_b) as link:  # the same exchange, by hand
        b = client(link, cfg_b, embedder(cfg_b))
        template = b.fetch(ids[0])
        assert template is not None and len(template) == 128 * 4
        with pytest.raises(LookupError):
            b.fetch("11010519491231002X")  # a valid ID number not in the roster


def test_no_photo_and_nothing_at_central_goes_to_staff(
    stack: tuple[Stack, list[str], Path], shared_data: Path
) -> None:
    built, ids, root = stack
    cfg = edge_cfg(built, B, tony_frames(shared_data, root))
    outcome = certify(cfg, card(shared_data, ids[3], None))
    assert outcome.decision == "none" and outcome.prompt == "staff"


def test_central_unreachable_falls_back_to_the_card_photo(
    stack: tuple[Stack, list[str], Path], shared_data: Path
) -> None:
    built, ids, root = stack
    cfg = edge_cfg(built, C, tony_frames(shared_data, root), template_timeout_s=1)
    cfg = cfg.model_copy(update={"mqtt": cfg.mqtt.model_copy(update={"port": free_port()})})
    outcome = certify(cfg, card(shared_data, ids[0], TONY["card"]))  # type: ignore[arg-type]
    assert outcome.decision == "pass", outcome.attempts
    assert outcome.result_id is not None
    assert reference_used(cfg, outcome.result_id) == "card_photo"


def test_replies_are_bound_to_request_device_and_embedder(
    stack: tuple[Stack, list[str], Path], shared_data: Path
) -> None:
    """Uses the template the first test certified for ids[0] (hence ``shared_data``)."""
    built, ids, _ = stack
    cfg_a, cfg_b = (load_config(built.edge_config(d)) for d in (A, B))
    token = ask(answers(built), B, ids[0]).encode()
    with link_of(cfg_b, start=False) as b_link, link_of(cfg_a, start=False) as a_link:
        b, a = client(b_link, cfg_b, embedder(cfg_b)), client(a_link, cfg_a, embedder(cfg_b))
        assert b.open_reply(token, "0" * 32, ids[0]) is not None
        with pytest.raises(ReplyError, match="another request, device or retiree"):
            a.open_reply(token, "0" * 32, ids[0])  # B's reply is not A's
        with pytest.raises(ReplyError, match="another request"):
            b.open_reply(token, "1" * 32, ids[0])
        other = client(b_link, cfg_b, "another-embedder@0")
        assert other.open_reply(token, "0" * 32, ids[0]) is None  # not comparable: card photo


def test_a_forged_reply_is_refused(stack: tuple[Stack, list[str], Path]) -> None:
    built, ids, _ = stack
    forger = signing.Signer(ec.generate_private_key(ec.SECP256R1()), "f" * 64)
    data = {"request_id": "0" * 32, "device_id": B, "retiree_id": ids[0], "template": None}
    forged = forger.sign(messages.encode(messages.Reply(status="ok", data=data)))
    cfg_b = load_config(built.edge_config(B))
    with link_of(cfg_b, start=False) as link, pytest.raises(ReplyError, match="signature"):
        client(link, cfg_b).open_reply(forged.encode(), "0" * 32, ids[0])


def test_a_revoked_device_gets_nothing(stack: tuple[Stack, list[str], Path]) -> None:
    built, ids, _ = stack
    service = answers(built)
    assert reply_of(ask(service, R, ids[0])).status == "ok"  # enrolled: answered
    built.fleet.revoke(R, "stolen")
    built.broker.reload()
    body = json.dumps({"op": "face_template", "request_id": "0" * 32, "retiree_id": ids[0]})
    req, resp = topics.device_topic(R, "req"), topics.device_topic(R, "resp")
    service.trust.refresh(force=True)
    assert service.answer(req, body.encode(), resp) is None
    wait_until(
        lambda: tls_refusal(built.fleet.settings.broker.port, built.fleet.paths.bundles / R),
        10,
        "the broker to refuse the revoked device",
    )
    cfg_r = load_config(built.edge_config(R))
    with link_of(cfg_r) as link:
        # the broker refuses its certificate: 3 s without a connection (not a race to win)
        assert not link.wait_connected(3)
        with pytest.raises(TimeoutError):
            client(link, cfg_r, timeout=1).fetch(ids[0])


def test_requests_are_rate_limited_and_checked(stack: tuple[Stack, list[str], Path]) -> None:
    built, ids, _ = stack
    service = answers(built, burst=2, per_minute=0.001)
    statuses = [reply_of(ask(service, A, ids[1])) for _ in range(3)]
    assert [r.error or r.status for r in statuses] == ["ok", "ok", "rate_limited"]
    req, other = topics.device_topic(A, "req"), topics.device_topic(B, "resp")
    assert service.answer(req, b'{"op": "face_template"}', other) is None  # not A's topic
    own = topics.device_topic(A, "resp")
    assert service.answer(req, b"x" * 2000, own) is None  # oversized
    unknown = reply_of(ask(answers(built), A, "11010519491231002X"))
    assert unknown.status == "error" and unknown.error == "unknown_retiree"
