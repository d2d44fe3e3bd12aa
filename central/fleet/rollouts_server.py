"""Central's bundle server: rollout archives over HTTPS with the device's client certificate.

``GET /rollouts/<rollout_id>.tar``. The TLS handshake requires a certificate issued by the
fleet CA; the request is then served only if that certificate is a trusted (enrolled, not
revoked, not expired) device's and the rollout has offered that device the update.
Anything else gets 403/404 and nothing of the archive. The archive is signed inside (the
manifest's JWS) and its SHA-256 travels in the signed ``update`` command, so the server
only has to keep strangers from reading it. Downloads run one thread each, at most
``MAX_DOWNLOADS`` at once (503 beyond: the terminal retries with its next attempt); the
bytes each device was sent are counted (``sent``).
"""

import datetime as dt
import logging
import re
import socket
import ssl
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final, Self

from cryptography import x509
from sqlalchemy.engine import Engine

from central.certification.devices import DeviceTrust, Standing
from central.fleet import rollouts
from central.fleet.rollouts_settings import RolloutSettings
from common.errors import ConfigError
from protocol import signing

log = logging.getLogger(__name__)

MAX_DOWNLOADS: Final = 64
MAX_CONNECTIONS: Final = 256
"""Connections served at once (each holds a thread; handshakes happen in it): more are
closed at once."""
TIMEOUT_S: Final = 30.0
_PATH = re.compile(r"^/rollouts/([0-9a-z][0-9a-z._-]{0,39})\.tar$")
_CHUNK: Final = 256 * 1024


def server_context(settings: RolloutSettings, ca_file: Path) -> ssl.SSLContext:
    """TLS 1.2+ server context that requires a client certificate from the fleet CA."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(str(settings.server_cert), str(settings.server_key))
        ctx.load_verify_locations(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"rollout.server_cert / server_key: cannot load {settings.server_cert}: {exc}; "
            "`lifecert fleet init` writes central/bundles.pem (re-run `lifecert fleet "
            "bundle-server-cert` for an older fleet)"
        ) from None
    return ctx


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: "BundleServer") -> None:
        self.owner = owner
        self.connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.connections.acquire(blocking=False):
            log.warning("bundle server: %d connections open, closing one more", MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(TIMEOUT_S)
        tls = self.owner.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return tls, addr


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def handle(self) -> None:
        try:
            self.request.do_handshake()  # here, in the connection's thread, not in accept
            super().handle()
        except (OSError, ssl.SSLError) as exc:
            log.info("bundle server: connection from %s ended: %s", self.client_address, exc)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("bundle server: " + format, *args)

    def do_GET(self) -> None:
        owner = self.server.owner
        device_id = owner.device_of(self.request.getpeercert(binary_form=True))
        match = _PATH.match(self.path)
        if match is None:
            self._refuse(404, "not found")
            return
        rollout_id = match.group(1)
        if device_id is None or not rollouts.may_download(owner.engine, rollout_id, device_id):
            log.warning("bundle server: %s may not download %s", device_id, rollout_id)
            self._refuse(403, "this device was not offered this rollout")
            return
        path = rollouts.archive_path(owner.settings.store_dir, rollout_id)
        if not owner.slots.acquire(blocking=False):
            self._refuse(503, "too many downloads at once: retry later")
            return
        try:
            self._send(path, device_id)
        finally:
            owner.slots.release()

    def _send(self, path: Path, device_id: str) -> None:
        try:
            f = path.open("rb")
        except OSError:
            self._refuse(404, "archive missing")
            return
        with f:
            size = path.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/x-tar")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            while chunk := f.read(_CHUNK):
                self.wfile.write(chunk)
                self.server.owner.count(device_id, len(chunk))
        log.info("bundle server: sent %s (%d bytes) to %s", path.name, size, device_id)

    def _refuse(self, code: int, why: str) -> None:
        body = (why + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class BundleServer:
    """The HTTPS server in its own thread; a context manager."""

    def __init__(
        self, engine: Engine, trust: DeviceTrust, settings: RolloutSettings, ca_file: Path
    ) -> None:
        self.engine, self.trust, self.settings = engine, trust, settings
        self.context = server_context(settings, ca_file)
        self.slots = threading.BoundedSemaphore(MAX_DOWNLOADS)
        self.sent: Counter[str] = Counter()
        self._lock = threading.Lock()
        try:
            self._server = _Server((settings.bundle_bind, settings.bundle_port), self)
        except OSError as exc:
            raise ConfigError(
                f"rollout.bundle_port: cannot listen on {settings.bundle_bind}:"
                f"{settings.bundle_port}: {exc.strerror or exc}"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="bundles", daemon=True
        )

    @property
    def port(self) -> int:
        """The port listened on."""
        return int(self._server.server_address[1])

    def device_of(self, der: bytes | None) -> str | None:
        """The trusted device a client certificate belongs to, else None."""
        if not der:
            return None
        try:
            kid = signing.cert_fingerprint(x509.load_der_x509_certificate(der))
        except ValueError:
            return None
        device = self.trust.by_kid(kid)
        if device is None:
            return None
        standing = device.standing(self.trust.revoked, dt.datetime.now(dt.UTC))
        return device.device_id if standing is Standing.TRUSTED else None

    def count(self, device_id: str, n: int) -> None:
        with self._lock:
            self.sent[device_id] += n

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()
        log.info("bundle server on https://%s:%d", self.settings.bundle_bind, self.port)

    def close(self) -> None:
        """Stop serving."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def base_url(settings: RolloutSettings) -> str:
    """The URL terminals are given (``bundle_url`` or https://<bind>:<port>)."""
    if settings.bundle_url:
        return settings.bundle_url
    host = settings.bundle_bind
    if host in ("0.0.0.0", "::"):
        host = socket.getfqdn()
    return f"https://{host}:{settings.bundle_port}"
