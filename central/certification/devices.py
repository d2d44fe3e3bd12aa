"""Device trust: which terminals' signatures central accepts.

A device is known when its certificate in ``devices_dir/<device_id>.pem`` is
signed by the fleet CA and its CN equals the file name. Certificates a renewal
issued or replaced sit beside it as ``<device_id>.<serial>.pem``: results signed
before (or after) the switch still verify, and the CRL says which are revoked. It is refused while
the CA's CRL lists it or outside its validity. The folder and the CRL are
re-read when they change (checked at most once per ``check_interval_s``), so
``lifecert fleet revoke`` takes effect in a running central. One ``DeviceTrust`` serves
the whole process (ingest and template requests, on their own threads).
"""

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from common.errors import ConfigError
from protocol import signing, topics

log = logging.getLogger(__name__)

_MISS_INTERVAL_S = 0.2


class Standing(StrEnum):
    """Whether a known device may sign results right now."""

    TRUSTED = "trusted"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Device:
    """One enrolled device certificate."""

    device_id: str
    kid: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    verifier: signing.Verifier
    site: str = topics.DEFAULT_SITE
    """Where it stands: its certificate's OU (``lifecert fleet enrol --site``)."""

    def standing(self, revoked: frozenset[int], now: dt.datetime) -> Standing:
        """Trusted, revoked (by serial in the CRL) or expired at ``now``."""
        if self.serial in revoked:
            return Standing.REVOKED
        if not self.not_before <= now <= self.not_after:
            return Standing.EXPIRED
        return Standing.TRUSTED


def _common_name(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if len(attrs) == 1 else None


def _site(cert: x509.Certificate) -> str:
    """The certificate's OU if it is a valid site name, else the default site."""
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    site = str(units[0].value) if len(units) == 1 else ""
    return site if topics.SITE_RE.match(site) else topics.DEFAULT_SITE


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


class DeviceTrust:
    """The set of enrolled devices, by ``kid`` and by ``device_id``, kept fresh from disk."""

    def __init__(
        self,
        ca_file: Path,
        crl_file: Path,
        devices_dir: Path,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            self._ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"fleet.ca_file: cannot load the CA {ca_file}: {exc}") from None
        if not devices_dir.is_dir():
            raise ConfigError(f"fleet.devices_dir: {devices_dir} is not a folder: create it")
        self._crl_file = crl_file
        self._devices_dir = devices_dir
        self._interval = check_interval_s
        self._clock = clock
        self._lock = threading.Lock()  # one re-read at a time
        self._last_check = -float("inf")
        self._crl_stamp: tuple[int, int] | None = None
        self._dir_stamp: frozenset[tuple[str, int, int]] = frozenset()
        self._by_kid: dict[str, Device] = {}
        self._by_id: dict[str, list[Device]] = {}
        self.revoked: frozenset[int] = frozenset()
        self.refresh(force=True)

    def refresh(self, force: bool = False, min_interval_s: float | None = None) -> None:
        """Re-read the CRL and the folder if they changed (or ``force``).

        Checks at most once per ``check_interval_s``, or per ``min_interval_s`` if given.
        """
        interval = self._interval if min_interval_s is None else min_interval_s
        with self._lock:
            now = self._clock()
            if not force and now < self._last_check + interval:
                return
            self._last_check = now
            self._refresh_crl(force)
            self._refresh_devices(force)

    def _refresh_crl(self, force: bool) -> None:
        try:
            st = self._crl_file.stat()
        except FileNotFoundError:
            if self._crl_stamp is not None or force:
                log.warning("no CRL at %s: no device is revoked", self._crl_file)
            self._crl_stamp, self.revoked = None, frozenset()
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._crl_stamp and not force:
            return
        try:
            crl = x509.load_pem_x509_crl(self._crl_file.read_bytes())
            if not crl.is_signature_valid(self._ca.public_key()):  # type: ignore[arg-type]
                raise ValueError("not signed by the fleet CA")
        except (OSError, ValueError) as exc:
            if self._crl_stamp is None and force:
                raise ConfigError(f"fleet.crl_file: {self._crl_file}: {exc}") from None
            log.error("ignoring new CRL %s (keeping the previous one): %s", self._crl_file, exc)
            return
        self._crl_stamp = stamp
        self.revoked = frozenset(r.serial_number for r in crl)
        log.info("CRL loaded: %d revoked certificate(s)", len(self.revoked))

    def _refresh_devices(self, force: bool) -> None:
        entries = frozenset(
            (e.name, e.stat().st_mtime_ns, e.stat().st_size)
            for e in os.scandir(self._devices_dir)
            if e.name.endswith(".pem") and e.is_file()
        )
        if entries == self._dir_stamp and not force:
            return
        by_kid: dict[str, Device] = {}
        by_id: dict[str, list[Device]] = {}
        for name, _, _ in sorted(entries):
            device = self._load(self._devices_dir / name)
            if device is not None:
                by_kid[device.kid] = device
                by_id.setdefault(device.device_id, []).append(device)
        self._by_kid, self._by_id, self._dir_stamp = by_kid, by_id, entries
        log.info("device certificates loaded: %d", len(by_kid))

    def _load(self, path: Path) -> Device | None:
        stem = path.name.removesuffix(".pem").split(".", 1)[0]  # <id>.pem, or <id>.<serial>.pem
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("skipping %s: not a PEM certificate (%s)", path, exc)
            return None
        cn = _common_name(cert)
        if cn != stem or not topics.DEVICE_ID_RE.match(stem):
            log.warning("skipping %s: certificate CN %r does not match the file name", path, cn)
            return None
        if not _signed_by(cert, self._ca):
            log.warning("skipping %s: not signed by the fleet CA", path)
            return None
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            log.warning("skipping %s: not a P-256 key", path)
            return None
        return Device(
            device_id=stem,
            kid=signing.cert_fingerprint(cert),
            serial=cert.serial_number,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            verifier=signing.Verifier(key),
            site=_site(cert),
        )

    def by_kid(self, kid: str) -> Device | None:
        """The device whose certificate has this fingerprint (refreshing first if due).

        A miss re-checks the folder sooner (a device enrolled a moment ago).
        """
        self.refresh()
        if kid not in self._by_kid:
            self.refresh(min_interval_s=_MISS_INTERVAL_S)
        return self._by_kid.get(kid)

    def devices(self) -> list[Device]:
        """Each enrolled device id's newest certificate (refreshing first if due)."""
        self.refresh()
        return [max(certs, key=lambda d: d.not_before) for _, certs in sorted(self._by_id.items())]

    def is_enrolled(self, device_id: str) -> bool:
        """True when some certificate for ``device_id`` is in the folder."""
        self.refresh()
        return device_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_kid)
