"""The fleet directory and the operator's operations on it (Python API; the CLI wraps it).

Layout (docs/design.md)::

    fleet.toml registry.json
    ca/ca.pem ca.key crl.pem
    devices/<id>.pem
    central/{sign,seal}.key {sign,seal}.pub.pem client.pem client.key mqtt.password central.toml
            bundles.pem bundles.key (HTTPS of rollout bundles)
    models/sign.key sign.pub.pem
    broker/server.pem server.key admin.pem admin.key admin.password
           mosquitto.conf dynamic-security.json
    bundles/<id>/edge.toml device.pem device.key mqtt.password ca.pem
                 central-{sign,seal}.pub.pem models-sign.pub.pem

The broker's view of the fleet (who may log in as whom, see
:mod:`provisioning.dynsec`) follows ``registry.json``: ``enrol``/``reissue``
add a device's logins and ``remove_from_broker`` deletes them and purges its
sessions, live over the plugin's control topic when the broker runs, else in
``broker/dynamic-security.json``, which the broker loads when it starts.
"""

import datetime as dt
import getpass
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tarfile
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from common.config import format_errors
from common.errors import ConfigError
from protocol import topics
from protocol.settings import CentralKeys, MqttSettings, TlsFiles
from protocol.signing import cert_fingerprint
from provisioning import brokerconf, dynsec, pki, registry
from provisioning.config import FleetSettings, load_settings
from provisioning.control import AdminLogin, BrokerControl, BrokerNotRunningError
from provisioning.errors import ProvisioningError
from provisioning.registry import DeviceRecord

log = logging.getLogger(__name__)

RESERVED_PREFIX = "lifecert-"
CENTRAL_CN = dynsec.CENTRAL_USER
PASSWORD_FILE = "mqtt.password"


@dataclass(frozen=True)
class FleetPaths:
    """Where every file of a fleet directory lives."""

    root: Path

    @property
    def config(self) -> Path:
        """``fleet.toml``."""
        return self.root / "fleet.toml"

    @property
    def registry(self) -> Path:
        """``registry.json``."""
        return self.root / "registry.json"

    @property
    def ca_cert(self) -> Path:
        """The CA certificate."""
        return self.root / "ca" / "ca.pem"

    @property
    def ca_key(self) -> Path:
        """The CA private key."""
        return self.root / "ca" / "ca.key"

    @property
    def crl(self) -> Path:
        """The current CRL."""
        return self.root / "ca" / "crl.pem"

    @property
    def devices(self) -> Path:
        """Folder of every enrolled device certificate."""
        return self.root / "devices"

    @property
    def central(self) -> Path:
        """Central's keys, client certificate and config."""
        return self.root / "central"

    @property
    def models(self) -> Path:
        """The model-bundle signing key."""
        return self.root / "models"

    @property
    def central_password(self) -> Path:
        """Central's broker password."""
        return self.central / PASSWORD_FILE

    @property
    def broker(self) -> Path:
        """Broker certificate and generated config."""
        return self.root / "broker"

    @property
    def dynsec(self) -> Path:
        """The dynamic-security plugin's file (logins and rights)."""
        return self.broker / "dynamic-security.json"

    @property
    def admin_password(self) -> Path:
        """The broker password of ``lifecert-admin`` (the control connection)."""
        return self.broker / "admin.password"

    @property
    def renewal_password(self) -> Path:
        """The broker password of ``lifecert-renewal`` (the renewal service)."""
        return self.broker / "renewal.password"

    @property
    def bundles(self) -> Path:
        """Enrolment bundles, one folder per device."""
        return self.root / "bundles"

    def bundle(self, device_id: str) -> Path:
        """The enrolment bundle folder of ``device_id``."""
        return self.bundles / device_id


@dataclass(frozen=True)
class Enrolment:
    """What ``enrol`` or ``reissue`` produced, and what the broker was told."""

    record: DeviceRecord
    bundle: Path
    broker: str


def write_secret(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only (0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text + "\n")
    os.chmod(path, 0o600)


def _read_secret(path: Path, fix: str) -> str:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ProvisioningError(f"cannot read {path}: {exc.strerror or exc}; {fix}") from None
    if not secret:
        raise ProvisioningError(f"{path} is empty; {fix}")
    return secret


def _check_new_id(device_id: str) -> str:
    try:
        topics.check_device_id(device_id)
    except ValueError as exc:
        raise ProvisioningError(str(exc)) from None
    if device_id.startswith(RESERVED_PREFIX):
        raise ProvisioningError(
            f"invalid device_id {device_id!r}: ids starting {RESERVED_PREFIX!r} are reserved "
            "for services; choose another, e.g. term-0001"
        )
    return device_id


def _no_spaces(path: Path) -> None:
    if any(c.isspace() for c in str(path)):
        raise ProvisioningError(
            f"{path}: Mosquitto cannot read paths with spaces in its config; "
            "use a fleet directory and persistence folder without spaces"
        )


def _validate(model: Any, data: dict[str, Any], base: Path, source: str) -> None:
    try:
        model.model_validate(data, context={"base_dir": base})
    except ValidationError as exc:
        raise ConfigError(format_errors(model, exc, source)) from None


class Fleet:
    """A fleet directory: open an existing one with :meth:`open`, make one with :meth:`create`."""

    def __init__(self, directory: Path, settings: FleetSettings) -> None:
        self.paths = FleetPaths(directory)
        self.settings = settings

    @property
    def directory(self) -> Path:
        """The fleet directory."""
        return self.paths.root

    # -- creation ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path,
        name: str,
        *,
        broker_host: str = "127.0.0.1",
        broker_port: int = 8883,
        extra_hosts: tuple[str, ...] = (),
        root: str = topics.ROOT,
    ) -> "Fleet":
        """Make a new fleet: CA, empty CRL, central's and the broker's keys, broker config."""
        directory = directory.resolve()
        paths = FleetPaths(directory)
        _no_spaces(directory)
        if paths.config.exists():
            raise ProvisioningError(
                f"{directory} already holds a fleet (fleet.toml exists): use another --dir"
            )
        if directory.exists() and not directory.is_dir():
            raise ProvisioningError(f"{directory} exists and is not a folder: use another --dir")
        data = {
            "name": name,
            "root": root,
            "broker": {"host": broker_host, "port": broker_port, "extra_hosts": list(extra_hosts)},
        }
        try:
            FleetSettings.model_validate(data, context={"base_dir": directory})
        except ValidationError as exc:
            raise ConfigError(format_errors(FleetSettings, exc, "fleet init")) from None
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        paths.config.write_text(
            "# lifecert fleet (lifecert fleet init); see docs/operators.md.\n"
            + tomli_w.dumps(data),
            encoding="utf-8",
        )
        fleet = cls.open(directory)
        fleet._create_material()
        log.info("created fleet %s in %s", name, directory)
        return fleet

    def _create_material(self) -> None:
        p, pki_cfg = self.paths, self.settings.pki
        ca = pki.Authority.create(self.settings.name, pki_cfg.ca_days)
        pki.write_private_key(p.ca_key, ca.key)
        pki.write_cert(p.ca_cert, ca.cert)
        pki.write_crl(p.crl, ca.crl([], pki_cfg.crl_days))
        p.devices.mkdir(parents=True, exist_ok=True)
        p.bundles.mkdir(parents=True, exist_ok=True)
        registry.write(p.registry, registry.Registry())
        for folder, stem in ((p.central, "sign"), (p.central, "seal"), (p.models, "sign")):
            key = pki.new_key()
            pki.write_private_key(folder / f"{stem}.key", key)
            pki.write_public_key(folder / f"{stem}.pub.pem", key.public_key())
        key = pki.new_key()
        pki.write_private_key(p.central / "client.key", key)
        pki.write_cert(
            p.central / "client.pem", ca.issue(CENTRAL_CN, key.public_key(), pki_cfg.service_days)
        )
        self._write_central_config()
        key = pki.new_key()
        broker = self.settings.broker
        names = (broker.host, *broker.extra_hosts, "localhost", "127.0.0.1")
        pki.write_private_key(p.broker / "server.key", key)
        server = ca.issue(
            broker.host, key.public_key(), pki_cfg.service_days, server_names=names, client=False
        )
        pki.write_cert(p.broker / "server.pem", server)
        self.write_bundle_server_cert(ca)
        self.write_broker_config(brokerconf.BrokerOptions(port=broker.port))

    def write_bundle_server_cert(self, ca: pki.Authority | None = None) -> Path:
        """Central's HTTPS certificate for rollout bundles (``central/bundles.pem``), for the
        broker's names (central serves bundles from the broker's host by default)."""
        ca = ca or self.authority()
        broker, p = self.settings.broker, self.paths
        names = (broker.host, *broker.extra_hosts, "localhost", "127.0.0.1")
        key = pki.new_key()
        cert = ca.issue(
            "lifecert-bundles",
            key.public_key(),
            self.settings.pki.service_days,
            server_names=names,
            client=False,
        )
        pki.write_private_key(p.central / "bundles.key", key)
        pki.write_cert(p.central / "bundles.pem", cert)
        return p.central / "bundles.pem"

    def _ensure_broker_logins(self) -> list[str]:
        """Create central's and the admin's broker passwords (and the admin's certificate)
        if missing, as for a fleet made before dynamic security; what was created."""
        p, made = self.paths, []
        if not p.central_password.exists():
            write_secret(p.central_password, dynsec.new_password())
            made.append(str(p.central_password))
        if not p.admin_password.exists():
            write_secret(p.admin_password, dynsec.new_password())
            made.append(str(p.admin_password))
        if not p.renewal_password.exists():
            write_secret(p.renewal_password, dynsec.new_password())
            made.append(str(p.renewal_password))
        for stem, user in (("admin", dynsec.ADMIN_USER), ("renewal", dynsec.RENEWAL_USER)):
            if not (p.broker / f"{stem}.pem").exists() or not (p.broker / f"{stem}.key").exists():
                key = pki.new_key()
                days = self.settings.pki.service_days
                pki.write_private_key(p.broker / f"{stem}.key", key)
                pki.write_cert(
                    p.broker / f"{stem}.pem", self.authority().issue(user, key.public_key(), days)
                )
                made.append(str(p.broker / f"{stem}.pem"))
        return made

    def _write_central_config(self) -> None:
        broker = self.settings.broker
        mqtt = {
            "host": broker.host,
            "port": broker.port,
            "root": self.settings.root,
            "tls": {"ca_file": "../ca/ca.pem", "cert_file": "client.pem", "key_file": "client.key"},
            "password_file": PASSWORD_FILE,
        }
        _validate(MqttSettings, mqtt, self.paths.central, "central.toml [mqtt]")
        data = {
            "log_level": "INFO",
            "database": {"url": "sqlite:///central.sqlite"},
            "mqtt": mqtt,
            "fleet": {
                "ca_file": "../ca/ca.pem",
                "crl_file": "../ca/crl.pem",
                "devices_dir": "../devices",
            },
            "keys": {"sign_key": "sign.key", "seal_key": "seal.key"},
            "policy": {"validity_months": 12, "max_future_skew_s": 300, "max_result_age_days": 60},
            # rollouts: set bundle_port (e.g. 8884) to serve model bundles to terminals
            "rollout": {
                "bundle_port": 0,
                "bundle_bind": broker.host,
                "server_cert": "bundles.pem",
                "server_key": "bundles.key",
                "model_sign_pub": "../models/sign.pub.pem",
            },
        }
        (self.paths.central / "central.toml").write_text(
            "# central's config for this fleet (written by lifecert fleet init).\n"
            + tomli_w.dumps(data),
            encoding="utf-8",
        )

    @classmethod
    def open(cls, directory: Path) -> "Fleet":
        """Open an existing fleet directory; ``ProvisioningError`` if there is none."""
        directory = directory.resolve()
        config = directory / "fleet.toml"
        if not config.is_file():
            raise ProvisioningError(
                f"no fleet at {directory} (no fleet.toml): create one with "
                f"`lifecert fleet init --dir {directory} --name NAME` or pass the right --dir"
            )
        return cls(directory, load_settings(config))

    # -- material -------------------------------------------------------------------------------

    def authority(self) -> pki.Authority:
        """The fleet CA (certificate and key)."""
        return pki.Authority.load(self.paths.ca_cert, self.paths.ca_key)

    def central_tls(self) -> TlsFiles:
        """Central's MQTT client TLS files."""
        c = self.paths.central
        return TlsFiles(
            ca_file=self.paths.ca_cert, cert_file=c / "client.pem", key_file=c / "client.key"
        )

    def central_password(self) -> str:
        """Central's broker password (``central/mqtt.password``)."""
        return _read_secret(
            self.paths.central_password, "run `lifecert fleet broker-config` to create it"
        )

    def renewal_password(self) -> str:
        """The renewal service's broker password (``broker/renewal.password``)."""
        return _read_secret(
            self.paths.renewal_password,
            "run `lifecert fleet broker-config` to create it, then restart the broker",
        )

    def admin_login(self) -> AdminLogin:
        """How ``lifecert-admin`` reaches the fleet's broker."""
        b = self.paths.broker
        broker = self.settings.broker
        fix = "run `lifecert fleet broker-config` to create it, then restart the broker"
        return AdminLogin(
            host=broker.host,
            port=broker.port,
            tls=TlsFiles(
                ca_file=self.paths.ca_cert, cert_file=b / "admin.pem", key_file=b / "admin.key"
            ),
            password=_read_secret(self.paths.admin_password, fix),
        )

    def devices(self) -> list[DeviceRecord]:
        """Every enrolled device, sorted by id."""
        return registry.read(self.paths.registry).devices

    # -- enrolment -------------------------------------------------------------------------------

    def enrol(self, device_id: str, site: str = topics.DEFAULT_SITE) -> Enrolment:
        """Generate a key, certificate and broker password for ``device_id``; write its bundle.

        ``site`` (the community centre where it stands) goes into the certificate's OU.
        The broker learns the new login at once (see :meth:`add_to_broker`).
        """
        password = dynsec.new_password()
        key = pki.new_key()
        bundle = self.paths.bundle(device_id)

        def write_bundle(cert: x509.Certificate) -> None:
            if bundle.exists():
                shutil.rmtree(bundle)
            bundle.mkdir(parents=True, mode=0o700)
            pki.write_private_key(bundle / "device.key", key)
            pki.write_cert(bundle / "device.pem", cert)
            self._write_bundle(device_id, password)

        record = self._register(device_id, site, key.public_key(), password, write_bundle)
        return Enrolment(record, bundle, self._tell_broker(device_id, password))

    def enrol_public_key(
        self, device_id: str, site: str, public_key: ec.EllipticCurvePublicKey, password: str
    ) -> tuple[DeviceRecord, x509.Certificate, str]:
        """Enrol a terminal whose key was born on it (claim enrolment): certificate for
        ``public_key``, registry record, broker login with the password it chose; no bundle.
        The record, the certificate and what the broker was told."""
        issued: list[x509.Certificate] = []
        record = self._register(device_id, site, public_key, password, issued.append)
        try:
            told = self.add_to_broker(device_id, password)
        except ProvisioningError as exc:
            told = f"the broker did not take {device_id}'s login: {exc}"
        return record, issued[0], told

    def _register(
        self,
        device_id: str,
        site: str,
        public_key: ec.EllipticCurvePublicKey,
        password: str,
        keep: Callable[[x509.Certificate], None],
    ) -> DeviceRecord:
        """Issue ``device_id``'s certificate, hand it to ``keep``, record it (registry lock)."""
        _check_new_id(device_id)
        try:
            topics.check_site(site)
        except ValueError as exc:
            raise ProvisioningError(str(exc)) from None
        with registry.locked(self.paths.registry) as reg:
            known = reg.get(device_id)
            if known is not None:
                what = (
                    "revoked; revoked ids are not reused"
                    if known.status == "revoked"
                    else ("already enrolled")
                )
                raise ProvisioningError(
                    f"device {device_id!r} is {what}: choose a new id, or copy the existing "
                    f"bundle from {self.paths.bundle(device_id)}"
                )
            cert = self.authority().issue(
                device_id, public_key, self.settings.pki.device_days, site=site
            )
            keep(cert)
            pki.write_cert(self.paths.devices / f"{device_id}.pem", cert)
            record = DeviceRecord(
                id=device_id,
                serial=format(cert.serial_number, "x"),
                fingerprint=cert_fingerprint(cert),
                enrolled_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
                not_after=cert.not_valid_after_utc,
                broker_password=dynsec.hash_password(password),
                site=site,
            )
            reg.devices.append(record)
        log.info("enrolled %s (serial %s)", device_id, record.serial)
        return record

    def reissue(self, device_id: str) -> Enrolment:
        """A new broker password for an active device: ``mqtt.password`` and ``edge.toml`` in
        its bundle are rewritten (key and certificate stay), the old password stops working.

        How a device enrolled before broker passwords existed gets one.
        """
        password = dynsec.new_password()
        with registry.locked(self.paths.registry) as reg:
            record = reg.get(device_id)
            if record is None or record.status != "active":
                raise ProvisioningError(
                    f"device {device_id!r} is "
                    + ("not enrolled in this fleet" if record is None else "revoked")
                    + ": only active devices get new bundles (check `lifecert fleet list`)"
                )
            self.paths.bundle(device_id).mkdir(parents=True, mode=0o700, exist_ok=True)
            self._write_bundle(device_id, password)
            record.broker_password = dynsec.hash_password(password)
        log.info("re-issued the bundle of %s", device_id)
        return Enrolment(
            record, self.paths.bundle(device_id), self._tell_broker(device_id, password)
        )

    def _tell_broker(self, device_id: str, password: str) -> str:
        try:
            return self.add_to_broker(device_id, password)
        except ProvisioningError as exc:
            raise ProvisioningError(
                f"{device_id}'s bundle is written, but the broker did not take its login: {exc}. "
                f"Once that is fixed run `lifecert fleet reissue {device_id}` and copy the "
                "bundle again"
            ) from None

    def _write_bundle(self, device_id: str, password: str) -> None:
        """The bundle's password, public files and ``edge.toml`` (the key is not touched)."""
        bundle = self.paths.bundle(device_id)
        write_secret(bundle / PASSWORD_FILE, password)
        shutil.copyfile(self.paths.ca_cert, bundle / "ca.pem")
        shutil.copyfile(self.paths.central / "sign.pub.pem", bundle / "central-sign.pub.pem")
        shutil.copyfile(self.paths.central / "seal.pub.pem", bundle / "central-seal.pub.pem")
        shutil.copyfile(self.paths.models / "sign.pub.pem", bundle / "models-sign.pub.pem")
        broker = self.settings.broker
        mqtt = {
            "host": broker.host,
            "port": broker.port,
            "root": self.settings.root,
            "tls": {"ca_file": "ca.pem", "cert_file": "device.pem", "key_file": "device.key"},
            "password_file": PASSWORD_FILE,
        }
        central = {
            "sign_pub": "central-sign.pub.pem",
            "seal_pub": "central-seal.pub.pem",
            "model_sign_pub": "models-sign.pub.pem",
        }
        _validate(MqttSettings, mqtt, bundle, "edge.toml [mqtt]")
        _validate(CentralKeys, central, bundle, "edge.toml [central]")
        data = {
            "device_id": device_id,
            "data_dir": "var",
            "log_level": "INFO",
            "mqtt": mqtt,
            "central": central,
        }
        (bundle / "edge.toml").write_text(
            f"# enrolment bundle of {device_id} (lifecert fleet enrol); copy this folder as-is.\n"
            + tomli_w.dumps(data),
            encoding="utf-8",
        )

    def archive(self, device_id: str, dest: Path | None = None) -> Path:
        """A ``.tar.gz`` of the bundle (members ``<id>/...``, modes kept, owner root)."""
        bundle = self.paths.bundle(device_id)
        if not bundle.is_dir():
            raise ProvisioningError(
                f"no bundle for {device_id!r} in {self.paths.bundles}: enrol it first"
            )
        dest = dest or self.paths.bundles / f"{device_id}.tar.gz"

        def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            return info

        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            tar.add(bundle, arcname=device_id, filter=_anonymous)
        return dest

    # -- revocation ------------------------------------------------------------------------------

    def revoke(self, device_id: str, reason: str = "") -> DeviceRecord:
        """Mark ``device_id`` revoked and re-issue the CRL.

        A broker that is not running gets the device's logins removed from its
        file. A running one keeps them until :meth:`remove_from_broker` (and
        re-reads the CRL on :meth:`reload_broker`); ``lifecert fleet revoke`` does both.
        """
        with registry.locked(self.paths.registry) as reg:
            record = reg.get(device_id)
            if record is None:
                raise ProvisioningError(
                    f"device {device_id!r} is not enrolled in this fleet: "
                    "check the id with `lifecert fleet list`"
                )
            if record.status == "revoked":
                raise ProvisioningError(f"device {device_id!r} is already revoked")
            record.status = "revoked"
            record.revoked_at = dt.datetime.now(dt.UTC).replace(microsecond=0)
            record.reason = reason or None
            self.write_crl(reg)
            if not self.broker_running():
                self._write_dynsec(reg)
        log.info("revoked %s (serial %s)", device_id, record.serial)
        return record

    def refresh_crl(self) -> x509.CertificateRevocationList:
        """Re-issue the CRL with a fresh nextUpdate (run well before the old one passes)."""
        with registry.locked(self.paths.registry) as reg:
            return self.write_crl(reg)

    def crl_due(self, now: dt.datetime | None = None) -> str | None:
        """Why the CRL must be re-issued now, or None while it is good for longer than
        ``pki.crl_renew_before`` (missing, unreadable or not the CA's counts as due)."""
        now = now or dt.datetime.now(dt.UTC)
        try:
            crl = pki.load_crl(self.paths.crl)
        except (OSError, ValueError) as exc:
            return f"the CRL {self.paths.crl} cannot be read ({exc})"
        if not crl.is_signature_valid(self.authority().cert.public_key()):  # type: ignore[arg-type]
            return f"the CRL {self.paths.crl} is not signed by this fleet's CA"
        next_update = crl.next_update_utc
        if next_update is None:
            return "the CRL has no nextUpdate"
        margin = self.settings.pki.crl_renew_before
        if next_update - now < margin:
            left = "passed" if next_update <= now else f"is in {_days(next_update - now)}"
            when = f"{next_update:%Y-%m-%d %H:%M} UTC"
            return f"its nextUpdate {when} {left} (renewal margin {_days(margin)})"
        return None

    def write_crl(self, reg: registry.Registry) -> x509.CertificateRevocationList:
        """Re-issue the CRL from ``reg`` (call with the registry locked); replaced
        certificates expired for longer than ``pki.crl_keep_expired_days`` are left out
        (they stay in the registry)."""
        now = dt.datetime.now(dt.UTC)
        self._learn_expiries(reg)
        previous = pki.crl_number(pki.load_crl(self.paths.crl)) if self.paths.crl.exists() else 0
        crl = self.authority().crl(
            reg.revoked_serials(now, self.settings.pki.crl_keep_expired),
            self.settings.pki.crl_days,
            number=previous + 1,
        )
        pki.write_crl(self.paths.crl, crl)
        return crl

    def _learn_expiries(self, reg: registry.Registry) -> None:
        """Fill in the expiry of replaced certificates recorded without one (registries
        written before expiries were kept) from their kept ``devices/<id>.<serial>.pem``
        when its fingerprint is the recorded one; without it the expiry stays unknown."""
        for d in reg.devices:
            for old in d.superseded:
                if old.not_after is not None:
                    continue
                try:
                    cert = pki.load_cert(self.paths.devices / f"{d.id}.{old.serial}.pem")
                except (OSError, ValueError):
                    continue
                if cert_fingerprint(cert) == old.fingerprint:
                    old.not_after = cert.not_valid_after_utc

    # -- broker logins and sessions ---------------------------------------------------------------

    def broker_running(self) -> bool:
        """True if something accepts TCP connections on the fleet's broker address."""
        broker = self.settings.broker
        try:
            with socket.create_connection((broker.host, broker.port), timeout=2):
                return True
        except OSError:
            return False

    def add_to_broker(self, device_id: str, password: str) -> str:
        """(Re)create ``device_id``'s login with ``password``; what was done.

        Live through the control topic when the broker runs (an old login is
        replaced and its connections closed), else in ``dynamic-security.json``.
        """
        try:
            with BrokerControl(self.admin_login()) as broker:
                _check(broker.run(dynsec.add_device(device_id, password, self.settings.root)))
        except BrokerNotRunningError:
            with registry.locked(self.paths.registry) as reg:
                self._write_dynsec(reg)
            return f"broker not running: its logins are in {self.paths.dynsec} for its next start"
        return f"the running broker accepts {device_id} (client id {device_id})"

    def remove_from_broker(self, device_id: str) -> str:
        """Delete ``device_id``'s logins at the running broker (closing its connections) and
        purge its sessions, so nothing queued for it or subscribed by it survives; what was done."""
        try:
            with BrokerControl(self.admin_login()) as broker:
                _check(broker.run(dynsec.remove_device(device_id)))
                purged = [c for c in dynsec.device_client_ids(device_id) if broker.purge_session(c)]
        except BrokerNotRunningError:
            with registry.locked(self.paths.registry) as reg:
                self._write_dynsec(reg)
            return (
                f"broker not running: {device_id}'s logins are gone from {self.paths.dynsec}; "
                f"sessions it left are purged by `lifecert fleet purge-sessions {device_id}` "
                "once the broker runs"
            )
        sessions = f"session(s) {', '.join(purged)} purged" if purged else "no session held"
        return f"the running broker dropped {device_id}'s logins and connections; {sessions}"

    def purge_sessions(self, client_ids: Iterable[str]) -> dict[str, bool]:
        """End the running broker's sessions for ``client_ids``; which ones existed."""
        with BrokerControl(self.admin_login()) as broker:
            return {c: broker.purge_session(c) for c in client_ids}

    def purge_persistence(self) -> Path | None:
        """Delete the stopped broker's persistence file: every session, queued message and
        retained message goes. ``ProvisioningError`` while the broker runs. The file removed."""
        if self.broker_running() or _mosquitto_pid(self.settings.broker.pid_file):
            raise ProvisioningError(
                "the broker is running: stop it first (every session is in its memory and it "
                "would write them back)"
            )
        conf = self.paths.broker / "mosquitto.conf"
        folder = brokerconf.persistence_dir(conf.read_text(encoding="utf-8"))
        if folder is None:
            return None
        db = folder / brokerconf.PERSISTENCE_FILE
        if not db.exists():
            return None
        db.unlink()
        log.info("removed %s", db)
        return db

    # -- broker configuration ---------------------------------------------------------------------

    def broker_files(self) -> brokerconf.BrokerFiles:
        """The files the broker listener uses."""
        b = self.paths.broker
        return brokerconf.BrokerFiles(
            ca_file=self.paths.ca_cert,
            cert_file=b / "server.pem",
            key_file=b / "server.key",
            crl_file=self.paths.crl,
            dynsec_file=self.paths.dynsec,
        )

    def write_broker_config(self, options: brokerconf.BrokerOptions) -> Path:
        """Write ``broker/mosquitto.conf`` and ``broker/dynamic-security.json``; the config's path.

        Creates central's and the admin's broker logins if the fleet predates
        them. Unset ``persistence_dir`` / ``user`` / ``pid_file`` /
        ``dynsec_plugin`` default to ``broker/data``, the current user (who
        owns the key files), the fleet's ``broker.pid_file`` and the plugin
        found on this machine. A running broker reads neither file until it
        restarts.
        """
        b = self.paths.broker
        persistence = options.persistence_dir or b / "data"
        _no_spaces(self.directory)
        _no_spaces(persistence)
        b.mkdir(parents=True, exist_ok=True)
        persistence.mkdir(parents=True, exist_ok=True)
        options = brokerconf.BrokerOptions(
            **{
                **options.__dict__,
                "persistence_dir": persistence.resolve(),
                "user": options.user or getpass.getuser(),
                "pid_file": options.pid_file or self.settings.broker.pid_file,
                "dynsec_plugin": options.dynsec_plugin or brokerconf.find_dynsec_plugin(),
            }
        )
        self._ensure_broker_logins()
        with registry.locked(self.paths.registry) as reg:
            self._write_dynsec(reg)
        (b / "acl").unlink(missing_ok=True)  # the ACL file of fleets made before dynamic security
        conf = b / "mosquitto.conf"
        conf.write_text(brokerconf.mosquitto_conf(self.broker_files(), options), encoding="utf-8")
        return conf

    def central_config_lacks_password(self) -> bool:
        """True if ``central/central.toml`` (written before broker passwords) has none."""
        try:
            data = tomllib.loads((self.paths.central / "central.toml").read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            return False
        mqtt = data.get("mqtt")
        return isinstance(mqtt, dict) and "password_file" not in mqtt

    def _write_dynsec(self, reg: registry.Registry) -> None:
        """Write the plugin's file from ``reg`` (call with the registry locked)."""
        fix = "run `lifecert fleet broker-config` to create it"
        document = dynsec.config(
            self.settings.root,
            {
                d.id: d.broker_password
                for d in reg.devices
                if d.status == "active" and d.broker_password is not None
            },
            central=dynsec.hash_password(_read_secret(self.paths.central_password, fix)),
            admin=dynsec.hash_password(_read_secret(self.paths.admin_password, fix)),
            renewal=(
                dynsec.hash_password(_read_secret(self.paths.renewal_password, fix))
                if self.paths.renewal_password.exists()
                else None
            ),
        )
        tmp = self.paths.dynsec.with_name(self.paths.dynsec.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1)
        tmp.replace(self.paths.dynsec)

    def reload_broker(self) -> str:
        """Make the running broker re-read its CRL; return what was done.

        Runs ``broker.reload_command`` if set, else sends SIGHUP to the pid in
        ``broker.pid_file`` (only if that process is a mosquitto).
        """
        broker = self.settings.broker
        if broker.reload_command:
            argv = shlex.split(broker.reload_command)
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
            except OSError as exc:
                raise ProvisioningError(
                    f"broker.reload_command {broker.reload_command!r} failed: {exc}"
                ) from None
            if done.returncode != 0:
                raise ProvisioningError(
                    f"broker.reload_command {broker.reload_command!r} exited "
                    f"{done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
                )
            return f"ran {broker.reload_command!r}"
        pid = _mosquitto_pid(broker.pid_file)
        if pid is None:
            return (
                f"no running broker found (pid file {broker.pid_file}): reload yours so it "
                "re-reads the CRL (e.g. systemctl reload mosquitto), or set "
                "broker.reload_command in fleet.toml"
            )
        os.kill(pid, signal.SIGHUP)
        return f"sent SIGHUP to mosquitto (pid {pid}): it re-reads the CRL"


def _days(delta: dt.timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.1f} days" if days >= 1 else f"{delta.total_seconds() / 3600:.1f} hours"


def _check(responses: list[dict[str, Any]]) -> None:
    if errors := dynsec.missing_ok(responses):
        raise ProvisioningError("the broker refused: " + "; ".join(errors))


def _mosquitto_pid(pid_file: Path | None) -> int | None:
    """The pid in ``pid_file`` if that process exists and is a mosquitto."""
    if pid_file is None:
        return None
    try:
        pid = int(pid_file.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == "mosquitto" else None
