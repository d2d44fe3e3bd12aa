"""Fleet health without a broker: the telemetry schema's bounds, the alert rules, settings."""

import datetime as dt
import json
import zoneinfo
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from central.fleet.alerts import DeviceCert, Trust, firing
from central.fleet.desired import Lag
from central.fleet.health import DeviceState, FleetHealth
from central.fleet.health_schema import FLEET_WIDE
from central.fleet.health_settings import AlertSettings
from protocol import messages
from protocol.errors import MessageError
from protocol.limits import MAX_TELEMETRY_BYTES
from protocol.messages import Telemetry

_MEMORY = sa.create_engine("sqlite://")  # never written: the handlers only parse
NOW = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)  # a Monday
UTC = zoneinfo.ZoneInfo("UTC")
REPORT: dict[str, Any] = {
    "device_id": "term-0001",
    "device_time": "2026-12-07T10:00:00Z",
    "uptime_s": 12.5,
    "software": "0.1.0",
    "model_bundle": "lifecert-face 2026.12",
    "outbox_pending": 0,
    "outbox_inflight": 0,
    "sessions_today": 3,
    "disk_free_bytes": 8_000_000_000,
    "disk_total_bytes": 16_000_000_000,
    "temperature_c": 51.2,
    "devices": [{"name": "camera", "ok": True, "detail": "/dev/video0"}],
}


def _telemetry(**over: Any) -> bytes:
    return messages.encode(Telemetry.model_validate(REPORT | over))


def test_a_full_report_round_trips_and_stays_small() -> None:
    data = _telemetry(devices=[{"name": "camera", "ok": False, "detail": "x" * 200}] * 5)
    assert messages.decode(Telemetry, data).devices[0].detail == "x" * 200
    assert len(data) < MAX_TELEMETRY_BYTES


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"outbox_pending": -1}, "outbox_pending"),
        ({"outbox_pending": 2**40}, "outbox_pending"),
        ({"temperature_c": float("nan")}, "temperature_c"),
        ({"device_time": "2026-12-07T10:00:00"}, "device_time"),
        ({"software": "1.0\x00"}, "software"),
        ({"software": "v" * 65}, "software"),
        ({"devices": [{"name": "toaster", "ok": True}]}, "devices.0.name"),
        ({"devices": [{"name": "camera", "ok": True}] * 9}, "devices"),
        ({"device_id": "../etc"}, "device_id"),
        ({"cpu": 3}, "cpu"),
    ],
)
def test_bad_reports_are_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    raw = messages.encode(Telemetry.model_validate(REPORT)).decode()
    body = json.loads(raw) | change
    with pytest.raises(MessageError, match=field.replace(".", r"\.")):
        messages.decode(Telemetry, json.dumps(body).encode())


def _device(
    status: str | None = "online",
    at: dt.datetime = NOW,
    telemetry: dict[str, Any] | None = None,
    skew: float | None = 0.0,
    device_id: str = "term-0001",
) -> DeviceState:
    report = None if telemetry is None else REPORT | telemetry
    return DeviceState(device_id, status, at, at if report else None, skew, report)


YEAR = NOW + dt.timedelta(days=365)
NO_CERTS = Trust((DeviceCert("term-0001", 1, YEAR),), frozenset(), NOW + dt.timedelta(days=60))
"""term-0001 enrolled for a year, a CRL good for 60 days: nothing about them fires."""


def _fire(*devices: DeviceState, trust: Trust = NO_CERTS, **settings: Any) -> dict[Any, str]:
    return firing(list(devices), trust, NOW, AlertSettings(**settings), UTC)


def test_a_healthy_terminal_raises_nothing() -> None:
    assert _fire(_device(telemetry={})) == {}


def test_a_revoked_or_removed_terminal_is_not_watched() -> None:
    gone = _device("offline", NOW - dt.timedelta(hours=1), telemetry={})
    assert list(_fire(gone)) == [("offline", "term-0001")]
    revoked = Trust(NO_CERTS.certs, frozenset({1}), NO_CERTS.crl_next_update)
    assert _fire(gone, trust=revoked) == {}
    assert _fire(_device("offline", NOW - dt.timedelta(hours=1), device_id="term-0404")) == {}


def test_offline_fires_after_the_grace_in_opening_hours_only() -> None:
    gone = _device("offline", NOW - dt.timedelta(minutes=10), telemetry={})
    fired = _fire(gone)
    assert list(fired) == [("offline", "term-0001")]
    assert "offline for 10 min" in fired["offline", "term-0001"]
    assert _fire(_device("offline", NOW - dt.timedelta(minutes=2), telemetry={})) == {}
    night = firing([gone], NO_CERTS, NOW.replace(hour=22), AlertSettings(), UTC)
    assert night == {}
    # an alert already open stays open at night until the terminal is back
    kept = firing([gone], NO_CERTS, NOW.replace(hour=22), AlertSettings(), UTC,
                  {("offline", "term-0001")})  # fmt: skip
    assert list(kept) == [("offline", "term-0001")]
    sunday = firing([gone], NO_CERTS, NOW + dt.timedelta(days=6), AlertSettings(), UTC)
    assert sunday == {}


def test_an_online_terminal_without_telemetry_is_silent() -> None:
    quiet = _device("online", NOW - dt.timedelta(minutes=10), telemetry={})
    assert quiet.state(NOW, 180) == "silent"
    assert "silent" in _fire(quiet)["offline", "term-0001"]


def test_backlog_skew_disk_and_self_test_rules() -> None:
    bad = _device(
        telemetry={
            "outbox_pending": 3,
            "oldest_pending_s": 7200.0,
            "disk_free_bytes": 100_000_000,
            "devices": [
                {"name": "vein", "ok": False, "detail": "serial port /dev/ttyUSB1 is missing"}
            ],
        },
        skew=-95.0,
    )
    fired = _fire(bad)
    assert set(fired) == {
        ("backlog", "term-0001"),
        ("clock_skew", "term-0001"),
        ("disk_low", "term-0001"),
        ("self_test", "term-0001"),
    }
    assert fired["backlog", "term-0001"] == "3 result(s) undelivered, oldest waiting 2.0 h"
    assert fired["clock_skew", "term-0001"] == "clock 95 s behind central's"
    assert "ttyUSB1" in fired["self_test", "term-0001"]
    assert _fire(_device(telemetry={"outbox_pending": 51}))
    assert not _fire(_device(telemetry={"outbox_pending": 51}), backlog_max=100)


def test_certificates_expiring_and_the_crl_next_update() -> None:
    certs = (
        DeviceCert("term-0001", 1, NOW + dt.timedelta(days=10)),
        DeviceCert("term-0002", 2, NOW + dt.timedelta(days=10)),  # renewed below
        DeviceCert("term-0002", 3, NOW + dt.timedelta(days=400)),
        DeviceCert("term-0003", 4, NOW - dt.timedelta(days=1)),  # revoked
    )
    trust = Trust(certs, frozenset({4}), NOW + dt.timedelta(days=3))
    fired = _fire(trust=trust)
    assert set(fired) == {("cert_expiring", "term-0001"), ("crl_next_update", FLEET_WIDE)}
    assert "expires 2026-12-17" in fired["cert_expiring", "term-0001"]
    broken = Trust((), frozenset(), None, "CRL crl.pem unreadable: no such file")
    assert _fire(trust=broken) == {("crl_next_update", FLEET_WIDE): broken.crl_problem}


def test_config_drift_fires_after_the_delay_and_stays_open_until_converged() -> None:
    since = NOW - dt.timedelta(minutes=20)
    refused = Lag("term-0001", 3, since, 2, "version 3: log_level: Input should be 'DEBUG'")
    never = Lag("term-0001", 1, since, None, None)

    def fire(lag: Lag, at: dt.datetime, already: frozenset[Any] = frozenset(), **kw: Any) -> Any:
        return firing([], NO_CERTS, at, AlertSettings(**kw), UTC, set(already), [lag])

    assert fire(refused, NOW, config_drift_after_s=1201) == {}  # 20 min < the delay
    fired = fire(refused, NOW)  # the default delay: 15 min
    assert fired == {
        ("config_drift", "term-0001"): "desired config version 3 not running after 20 min: "
        "the terminal reports version 2; it refused: version 3: log_level: Input should be "
        "'DEBUG'"
    }
    assert "reports nothing yet" in fire(never, NOW)["config_drift", "term-0001"]
    # a newer desired config issued meanwhile keeps an open alert open (still not running)
    newer = Lag("term-0001", 4, NOW, 2, None)
    assert fire(newer, NOW) == {}
    assert list(fire(newer, NOW, frozenset({("config_drift", "term-0001")}))) == [
        ("config_drift", "term-0001")
    ]
    # a revoked or unknown terminal is not watched; a very long refusal is cut
    revoked = Trust(NO_CERTS.certs, frozenset({1}), NO_CERTS.crl_next_update)
    assert firing([], revoked, NOW, AlertSettings(), UTC, set(), [refused]) == {}
    assert fire(Lag("term-0404", 3, since, 2, None), NOW) == {}
    long = Lag("term-0001", 3, since, 2, "x" * 500)
    assert len(fire(long, NOW)["config_drift", "term-0001"]) == 500
    # the terminal's text stays on one line (no forged log lines)
    forged = Lag("term-0001", 3, since, 2, "bad\nCRITICAL alert 1 cleared")
    assert "\n" not in fire(forged, NOW)["config_drift", "term-0001"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"opening_hours": "18:00-08:00"}, "start first"),
        ({"opening_hours": "8-18"}, "HH:MM-HH:MM"),
        ({"opening_days": [0]}, "ISO weekdays"),
        ({"notify": ["webhook"]}, "webhook_url"),
        ({"notify": ["pager"]}, "notify"),
        ({"webhook_url": "ftp://x"}, "webhook_url"),
        ({"config_drift_after_s": 0}, "config_drift_after_s"),
        ({"config_drift_after_s": "soon"}, "config_drift_after_s"),
    ],
)
def test_alert_settings_refuse_bad_values(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlertSettings.model_validate(fields)


@settings(max_examples=100, deadline=None)
@given(
    payload=st.one_of(
        st.binary(max_size=MAX_TELEMETRY_BYTES),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=20), inner, max_size=4)
            ),
        ).map(lambda v: json.dumps(v).encode()),
        st.just(b"[" * 4000),
        st.just(b'{"device_id": "term-0001", "uptime_s": 1e400}'),
    )
)
def test_no_payload_makes_the_handlers_raise(payload: bytes) -> None:
    """Whatever a terminal sends, the handlers (on paho's thread) count it and return."""
    health = FleetHealth(_MEMORY, lambda _d: True)
    for handler, kind in ((health.on_telemetry, "telemetry"), (health.on_status, "status")):
        msg = mqtt.MQTTMessage(topic=f"lifecert/v1/dev/term-0001/{kind}".encode())
        msg.payload = payload
        handler(msg)
    assert sum(health.dropped.values()) + sum(health.received.values()) == 2
