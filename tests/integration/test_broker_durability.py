"""A broker crash right after it acknowledged a QoS 1 message: what is lost, and who recovers it.

Measured on Mosquitto 2.0.11 with the generated config: the broker saves its
sessions and queues only every ``autosave_interval`` (30 s) and on a clean stop,
so a ``kill -9`` right after a PUBACK loses that message and every session made
since the last save. (``autosave_on_changes`` closes the window at a price:
bench/bench_broker_autosave.py.) Nothing the project sends depends on that
save: a terminal re-sends each result until central's *signed* ack arrives, and
central answers a re-sent result with a fresh ack (``duplicate``), so a lost
result and a lost ack both end delivered, applied once. The tests below pin the
window and the two recoveries, with the save pushed far away (autosave 3600 s)
so that the crash always falls inside the window.
"""

import base64
import json
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from protocol import topics
from provisioning import dynsec
from provisioning.control import BrokerControl
from provisioning.stack import Stack
from tests.fixtures.broker import FleetBroker, Login, MqttPeer, central_login, enrol_bundle
from tests.fixtures.stack import central_url, count, make_stack, record, times_applied, watch
from tests.fixtures.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

A = "term-d01"
FAST_RESEND = {
    "LIFECERT_EDGE__OUTBOX__ACK_TIMEOUT_S": "2",
    "LIFECERT_EDGE__OUTBOX__BACKOFF_MAX_S": "4",
}
NO_SAVE = {"autosave_interval": 3600}


def test_a_puback_is_not_a_save(broker: FleetBroker) -> None:
    """The window the end-to-end re-sends cover: acknowledged, then gone with a crash."""
    bundle = enrol_bundle(broker.fleet, A)
    central = central_login(broker.fleet).as_client("lifecert-central-1")
    with MqttPeer(central, broker.port, session_expiry=3600) as c:
        assert not c.subscribe(topics.shared_results()).is_failure
    with MqttPeer(bundle, broker.port) as device:
        assert not device.publish(topics.device_topic(A, "result"), b"acked").is_failure
        broker.kill()  # right after the PUBACK
    broker.start()
    with MqttPeer(central, broker.port, session_expiry=3600) as c:
        assert not c.session_present
        assert c.expect(1.0) is None


def _wait(built: Stack, done: Callable[[], bool], what: str) -> None:
    built.wait_until(done, 60, what, poll=0.1)


@contextmanager
def _acks_at_broker(built: Stack, device_id: str) -> Iterator[Callable[[], set[str]]]:
    """The result ids central's acks to ``device_id`` name, as the broker passes them on.

    An extra login with the device's role (made over the control topic, as ``lifecert-admin``
    makes every login) subscribes beside the offline device's session, which it leaves alone.
    """
    name, secret = f"watch-{device_id}", dynsec.new_password()
    with BrokerControl(built.fleet.admin_login()) as control:
        made = control.run(
            [{"command": "createClient", "username": name, "password": secret,
              "roles": [{"rolename": dynsec.device_role(device_id)}]}]
        )  # fmt: skip
        assert not dynsec.missing_ok(made)
    login = Login(built.fleet.central_tls(), name, secret, name)
    with MqttPeer(login, built.fleet.settings.broker.port) as peer:
        assert not peer.subscribe(topics.device_topic(device_id, "ack")).is_failure
        named: set[str] = set()

        def seen() -> set[str]:
            while (msg := peer.expect(0)) is not None:
                part = bytes(msg.payload).split(b".")[1]
                batch = json.loads(base64.urlsafe_b64decode(part + b"=" * (-len(part) % 4)))
                named.update(ack["result_id"] for ack in batch["acks"])
            return named

        yield seen


def test_a_result_acked_by_the_broker_then_lost_is_sent_again(tmp_path: Path) -> None:
    built, ids = make_stack(tmp_path, [A], **NO_SAVE)
    with built:
        built.broker.start()
        built.start_central()
        built.stop("central-1")  # its session (in the share group) waits at the broker
        with watch(built, topics.device_topic(A, "result")) as seen:
            built.start_edge(A, FAST_RESEND)
            rids = record(built, A, ids, 3)
            wait_until(lambda: len(seen.now()) == 3, 60, "the broker to take the three")
            built.broker.kill()
        built.broker.start()
        built.start_central()
        built.wait_delivered([A], timeout=90)
        url = central_url(built)
        assert [times_applied(url, r) for r in rids] == [1, 1, 1]
        assert count(url, "results") == 3


def test_an_ack_acked_by_the_broker_then_lost_is_derived_again(tmp_path: Path) -> None:
    built, ids = make_stack(tmp_path, [A], **NO_SAVE)
    with built:
        built.broker.start()
        built.start_central()
        built.start_edge(A, FAST_RESEND)  # its persistent session subscribes to its acks
        built.signal("central-1", signal.SIGSTOP)
        url = central_url(built)
        with (
            watch(built, topics.device_topic(A, "result")) as seen,
            _acks_at_broker(built, A) as acked,
        ):
            rids = record(built, A, ids, 2)
            wait_until(lambda: len(seen.now()) == 2, 60, "the broker to take both")
            built.stop(A)  # offline: central's acks will wait in its session at the broker
            built.signal("central-1", signal.SIGCONT)
            _wait(built, lambda: count(url, "results") == 2, "central to apply both")
            wait_until(lambda: acked() == set(rids), 30, "central's acks at the broker")
            built.broker.kill()  # the broker had acked central's ack; the terminal never saw it
        built.broker.start()
        assert built.outbox_counts(A)["pending"] == 2
        built.start_edge(A, FAST_RESEND)  # re-sends; central answers 'duplicate', signed
        built.wait_delivered([A], timeout=90)
        assert [times_applied(url, r) for r in rids] == [1, 1]
        rows = json.loads(built.edge(A, "outbox", "--json"))["rows"]
        assert {r["ack"]["status"] for r in rows} == {"duplicate"}
