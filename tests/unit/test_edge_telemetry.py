"""The terminal's health report: device checks, thermal zones, and a report from a real outbox."""

import datetime as dt
import os
import pty
from pathlib import Path

from edge.adapters.outbox import Entry, Outbox
from edge.config import EdgeConfig
from edge.telemetry import Health, check_devices, temperature_c
from hal.config import HalSettings
from protocol import messages
from protocol.messages import Telemetry


def test_fitted_devices_are_checked_and_missing_ones_named(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    leader, follower = pty.openpty()
    try:
        port = os.ttyname(follower)
        hal = HalSettings.model_validate(
            {
                "camera": {"type": "replay", "source": str(frames)},
                "id_card": {"type": "ga467", "port": port},
                "ss_card": {"type": "mock"},
                "vein": {"type": "serial", "port": str(tmp_path / "ttyUSB9")},
            }
        )
        checks = {c.name: (c.ok, c.detail) for c in check_devices(hal)}
    finally:
        os.close(leader)
        os.close(follower)
    assert checks == {
        "camera": (True, ""),
        "id_card": (True, port),
        "ss_card": (True, "mock"),
        "vein": (False, f"serial port {tmp_path / 'ttyUSB9'} is missing"),
    }
    assert check_devices(HalSettings.model_validate({})) == ()


def test_the_warmest_thermal_zone_in_celsius(tmp_path: Path) -> None:
    assert temperature_c(tmp_path) is None
    for zone, milli in (("thermal_zone0", "48312\n"), ("thermal_zone1", "61000\n")):
        (tmp_path / zone).mkdir()
        (tmp_path / zone / "temp").write_text(milli)
    (tmp_path / "thermal_zone2").mkdir()
    (tmp_path / "thermal_zone2" / "temp").write_text("garbage")
    assert temperature_c(tmp_path) == 61.0


def test_a_report_from_a_real_outbox(tmp_path: Path) -> None:
    cfg = EdgeConfig.model_validate(
        {
            "device_id": "term-0042",
            "data_dir": str(tmp_path),
            "mqtt": {
                "host": "127.0.0.1",
                "tls": {"ca_file": "ca.pem", "cert_file": "d.pem", "key_file": "d.key"},
            },
            "central": {"sign_pub": "central.pub", "seal_pub": "seal.pub"},
            "hal": {"vein": {"type": "mock"}},
        }
    )
    now = [dt.datetime.now().timestamp() - 86_400 - 3600]  # one result stored yesterday
    with Outbox(cfg.db_path, cfg.device_id, clock=lambda: now[0]) as outbox:
        for n in range(3):
            outbox.enqueue(lambda seq, n=n: Entry(f"r{n}", f"jws{seq}", "x", "assisted", "pass"))
            now[0] = dt.datetime.now().timestamp()
        report = Health(cfg).report(outbox, inflight=1)
    again = messages.decode(Telemetry, messages.encode(report))
    assert again == report
    assert (report.outbox_pending, report.outbox_inflight, report.sessions_today) == (3, 1, 2)
    assert report.oldest_pending_s is not None and report.oldest_pending_s > 86_400
    assert report.disk_free_bytes and report.disk_total_bytes
    assert report.model_bundle is None  # no model_sign_pub configured
    assert [c.name for c in report.devices] == ["vein"]
