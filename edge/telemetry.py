"""The terminal's health report: outbox, versions, clock, disk, temperature, hardware.

``Health.report`` builds one ``protocol.messages.Telemetry`` from what the terminal can
see without disturbing a session: the outbox's backlog and sessions recorded today, the
software and model-bundle versions, its clock, free disk under ``data_dir``, the warmest
thermal zone (``/sys/class/thermal``, where the board has one) and a check of each fitted
device (``check_devices``).
"""

import datetime as dt
import logging
import os
import shutil
import time
from pathlib import Path

from edge.adapters.outbox import Outbox
from edge.config import EdgeConfig
from edge.fleet.software import running_version
from hal.config import CardConfig, HalSettings
from models.bundle import read_manifest
from models.errors import BundleError
from protocol.errors import SignatureError
from protocol.messages import DeviceCheck, DevicePart, Telemetry

log = logging.getLogger(__name__)

THERMAL = Path("/sys/class/thermal")
PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")


def software_version() -> str:
    """The version of the code running (the software release ``current`` pointed at when
    the service started; ``unknown`` when run from a bare checkout)."""
    return running_version()


def temperature_c(root: Path = THERMAL) -> float | None:
    """The warmest thermal zone in degrees Celsius, or None when the board reports none."""
    readings = []
    for zone in root.glob("thermal_zone*/temp"):
        try:
            readings.append(int(zone.read_text().strip()) / 1000)
        except (OSError, ValueError):
            continue
    return round(max(readings), 1) if readings else None


def _node(name: DevicePart, path: str, what: str) -> DeviceCheck:
    if not os.path.exists(path):
        return DeviceCheck(name=name, ok=False, detail=f"{what} {path} is missing")
    if not os.access(path, os.R_OK | os.W_OK):
        return DeviceCheck(name=name, ok=False, detail=f"no access to {what} {path}")
    return DeviceCheck(name=name, ok=True, detail=path)


def check_devices(hal: HalSettings) -> tuple[DeviceCheck, ...]:
    """A check of each fitted device that does not take it from a session: the device node
    (or replay source, or PC/SC daemon) is present and usable; mocks always pass."""
    checks: list[DeviceCheck] = []
    cam = hal.camera
    if cam is not None:
        if cam.type == "replay":
            ok = cam.source.exists()
            detail = "" if ok else f"replay source {cam.source} is missing"
            checks.append(DeviceCheck(name="camera", ok=ok, detail=detail))
        elif cam.type == "opencv":
            checks.append(_node("camera", cam.device, "camera"))
        else:
            checks.append(_node("camera", "/dev/video0", "camera"))
    readers: tuple[tuple[DevicePart, CardConfig | None], ...] = (
        ("id_card", hal.id_card),
        ("ss_card", hal.ss_card),
    )
    for name, card in readers:
        if card is None:
            continue
        if card.type == "ga467":
            checks.append(_node(name, card.port, "serial port"))
        elif card.type == "pcsc":
            ok = PCSCD_SOCKET.exists()
            detail = "" if ok else f"pcscd is not running ({PCSCD_SOCKET} is missing)"
            checks.append(DeviceCheck(name=name, ok=ok, detail=detail))
        else:
            checks.append(DeviceCheck(name=name, ok=True, detail="mock"))
    if hal.vein is not None:
        if hal.vein.type == "serial":
            checks.append(_node("vein", hal.vein.port, "serial port"))
        else:
            checks.append(DeviceCheck(name="vein", ok=True, detail="mock"))
    return tuple(checks)


class Health:
    """Builds telemetry for one terminal (call ``report`` from the service's loop)."""

    def __init__(self, cfg: EdgeConfig, clock: "type[dt.datetime]" = dt.datetime) -> None:
        self._cfg = cfg
        self._clock = clock
        self._started = time.monotonic()
        self._software = software_version()
        self._bundle_stamp: int | None = None
        self._bundle: str | None = None

    def _model_bundle(self) -> str | None:
        """``name version`` of the configured bundle (re-read when its signature changes)."""
        directory, public_key = self._cfg.models.bundle, self._cfg.central.model_sign_pub
        if public_key is None:
            return None
        try:
            stamp = (directory / "manifest.jws").stat().st_mtime_ns
        except OSError:
            return None
        if stamp != self._bundle_stamp:
            self._bundle_stamp = stamp
            try:
                manifest = read_manifest(directory, public_key)
                self._bundle = f"{manifest.name} {manifest.version}"[:64]
            except (BundleError, SignatureError, OSError, ValueError) as exc:
                log.warning("model bundle %s unreadable: %s", directory, exc)
                self._bundle = None
        return self._bundle

    def report(self, outbox: Outbox, inflight: int) -> Telemetry:
        """The terminal's health now."""
        now = self._clock.now(dt.UTC)
        midnight = dt.datetime.combine(now.astimezone().date(), dt.time(), now.astimezone().tzinfo)
        free: int | None = None
        total: int | None = None
        try:
            usage = shutil.disk_usage(self._cfg.data_dir)
            free, total = usage.free, usage.total
        except OSError:
            log.warning("cannot read free disk space under %s", self._cfg.data_dir)
        age = outbox.oldest_pending_age()
        counts = outbox.counts()
        return Telemetry(
            device_id=self._cfg.device_id,
            device_time=now,
            uptime_s=round(time.monotonic() - self._started, 1),
            software=self._software,
            model_bundle=self._model_bundle(),
            outbox_pending=counts["pending"],
            outbox_inflight=inflight,
            outbox_delivered=counts["delivered"],
            outbox_rejected=counts["rejected"],
            oldest_pending_s=None if age is None else round(max(age, 0.0), 1),
            sessions_today=outbox.count_since(midnight.timestamp()),
            disk_free_bytes=free,
            disk_total_bytes=total,
            temperature_c=temperature_c(),
            devices=check_devices(self._cfg.hal),
        )
