"""``registry.json``: every device the fleet ever enrolled, and whether it is revoked."""

import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from common import durable
from provisioning.dynsec import PasswordHash

Status = Literal["active", "revoked"]


class PendingCert(BaseModel):
    """A certificate renewal issued and not yet confirmed by the terminal."""

    model_config = ConfigDict(extra="forbid")

    serial: str
    fingerprint: str
    not_after: dt.datetime
    request_id: str
    issued_at: dt.datetime


class OldCert(BaseModel):
    """A certificate a renewal replaced (or abandoned): revoked, listed in the CRL until it
    has expired (kept here for good)."""

    model_config = ConfigDict(extra="forbid")

    serial: str
    fingerprint: str
    revoked_at: dt.datetime
    reason: str = "superseded"
    not_after: dt.datetime | None = Field(
        default=None,
        description="its expiry (none: recorded before expiries were kept; it stays in the CRL)",
    )


class DeviceRecord(BaseModel):
    """One enrolled device."""

    model_config = ConfigDict(extra="forbid")

    id: str
    serial: str = Field(description="certificate serial number, lower-case hex")
    fingerprint: str = Field(description="SHA-256 of the certificate DER (the device's kid)")
    status: Status = "active"
    enrolled_at: dt.datetime
    not_after: dt.datetime
    revoked_at: dt.datetime | None = None
    reason: str | None = None
    site: str = Field(default="default", description="where it stands; also its certificate's OU")
    broker_password: PasswordHash | None = Field(
        default=None,
        description="the broker's hash of the bundle's mqtt.password (none: enrolled before "
        "broker passwords; `lifecert fleet reissue` gives it one)",
    )
    renewal: PendingCert | None = Field(
        default=None, description="a renewed certificate issued, not yet seen in use"
    )
    superseded: list[OldCert] = Field(
        default_factory=list, description="certificates renewals replaced (revoked)"
    )


class Registry(BaseModel):
    """The whole registry file."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    devices: list[DeviceRecord] = Field(default_factory=list)

    def get(self, device_id: str) -> DeviceRecord | None:
        """The record for ``device_id``, if enrolled."""
        return next((d for d in self.devices if d.id == device_id), None)

    def by_id(self) -> dict[str, DeviceRecord]:
        """Every record by device id (for many look-ups in one pass)."""
        return {d.id: d for d in self.devices}

    def revoked(self) -> list[DeviceRecord]:
        """Records of revoked devices."""
        return [d for d in self.devices if d.status == "revoked"]

    def revoked_serials(
        self, now: dt.datetime, keep_expired: dt.timedelta
    ) -> list[tuple[int, dt.datetime]]:
        """Every serial the CRL must list, with its revocation time: revoked devices'
        certificates (a renewal they had pending too) and certificates renewals replaced.

        A replaced or pending certificate leaves once it has been expired for longer than
        ``keep_expired`` at ``now`` (RFC 5280 5.1.2.6: it is refused for its expiry anyway);
        one of unknown expiry stays. A revoked device's own certificate always stays: central
        reads its entry as the device's revocation (fleet status, alerts)."""

        def listed(not_after: dt.datetime | None) -> bool:
            return not_after is None or now - not_after <= keep_expired

        out: list[tuple[int, dt.datetime]] = []
        for d in self.devices:
            if d.status == "revoked":
                when = d.revoked_at or now
                out.append((int(d.serial, 16), when))
                if d.renewal is not None and listed(d.renewal.not_after):
                    out.append((int(d.renewal.serial, 16), when))
            out += [
                (int(old.serial, 16), old.revoked_at)
                for old in d.superseded
                if listed(old.not_after)
            ]
        return out


def read(path: Path) -> Registry:
    """Load the registry (an empty one if the file does not exist yet)."""
    if not path.exists():
        return Registry()
    return Registry.model_validate_json(path.read_bytes())


def write(path: Path, registry: Registry) -> None:
    """Replace the registry file atomically and durably (fsynced, folder too)."""
    registry.devices.sort(key=lambda d: d.id)
    durable.write_atomic(path, (registry.model_dump_json(indent=2) + "\n").encode("utf-8"))


@contextmanager
def lock(path: Path) -> Iterator[None]:
    """Hold the registry's exclusive lock (read and write it inside)."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def locked(path: Path) -> Iterator[Registry]:
    """Read the registry under an exclusive lock, yield it, write it back on success."""
    with lock(path):
        registry = read(path)
        yield registry
        write(path, registry)
