"""Serving the console: HTTPS only, a staff certificate required at the handshake.

The TLS context trusts the staff CA alone and checks its CRL, so a device certificate, a
revoked or an expired one, or none, never gets an HTTP exchange. The CRL file is watched:
the first handshake after it changes (``staff cert revoke`` rewrites it) builds a fresh
context and uses it, so a revocation is refused at the next handshake, without a restart.
The verified peer
certificate reaches the app in ``request.state`` (``PEER_CERT``) through a small
subclass of uvicorn's HTTP protocol (httptools when installed, else h11).
"""

import asyncio
import logging
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import uvicorn

try:  # uvicorn's faster parser when installed (uvicorn[standard]), else its pure-Python one
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Http
except ImportError:  # pragma: no cover - depends on the installed extras
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Http  # type: ignore[assignment]

from central.console.settings import ConsoleSettings
from central.staff.settings import StaffSettings
from common import sdnotify
from common.errors import ConfigError

log = logging.getLogger(__name__)
PEER_CERT = "peer_cert_der"


class PeerCertProtocol(_Http):
    """uvicorn's HTTP protocol, with the client certificate (DER) in each request's state."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.app_state = {**self.app_state, PEER_CERT: der}


def _context(settings: ConsoleSettings, staff: StaffSettings) -> ssl.SSLContext:
    """Server context: TLS 1.2+, the console's certificate, staff CA + CRL, client certificate
    required (``ConfigError`` naming the file that cannot be read)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF | ssl.VERIFY_X509_STRICT
    steps: list[tuple[str, Any]] = [
        ("console.cert_file", lambda: ctx.load_cert_chain(settings.cert_file, settings.key_file)),
        ("staff.ca_file", lambda: ctx.load_verify_locations(cafile=staff.ca_file)),
        ("staff.crl_file", lambda: ctx.load_verify_locations(cafile=staff.crl_file)),
    ]
    for name, step in steps:
        try:
            step()
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{name}: cannot load ({exc}): check the file it names") from None
    return ctx


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class _LiveCrl:
    """Hands every handshake the context built from the CRL file as it is now.

    Called by OpenSSL right after the ClientHello (as its server-name callback, which runs
    with or without SNI), before the client's certificate is asked for and checked. A CRL
    that cannot be read (being replaced) keeps the last good context and is tried again
    at the next handshake."""

    def __init__(self, settings: ConsoleSettings, staff: StaffSettings) -> None:
        self.settings, self.staff = settings, staff
        self.stamp = _stamp(staff.crl_file)
        self.current = _context(settings, staff)

    def pick(self, conn: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        stamp = _stamp(self.staff.crl_file)
        if stamp != self.stamp:
            try:
                self.current = _context(self.settings, self.staff)
            except ConfigError as exc:
                log.error("console: keeping the last CRL: %s", exc)
            else:
                self.stamp = stamp
                log.info("console: %s changed: the handshakes check it now", self.staff.crl_file)
        conn.context = self.current


def tls_context(settings: ConsoleSettings, staff: StaffSettings) -> ssl.SSLContext:
    """The console's server context (:func:`_context`), re-reading the staff CRL at the first
    handshake after the file changes (``ConfigError`` naming a file that cannot be read)."""
    ctx = _context(settings, staff)
    ctx.sni_callback = _LiveCrl(settings, staff).pick
    return ctx


def url(settings: ConsoleSettings) -> str:
    """The URL the console serves."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"https://{host}:{settings.port}/"


class NotifyingServer(uvicorn.Server):
    """uvicorn telling systemd it is ready once it listens, pinging the watchdog from its
    event loop (so a stuck loop stops the pings), and saying when it stops."""

    def __init__(self, config: uvicorn.Config, settings: ConsoleSettings) -> None:
        super().__init__(config)
        self.settings = settings
        self._last_ping = 0.0

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            sdnotify.notify("READY=1", f"STATUS=serving {url(self.settings)}")

    async def on_tick(self, counter: int) -> bool:
        interval = sdnotify.watchdog_interval()
        now = time.monotonic()
        if interval is not None and now - self._last_ping >= interval:
            sdnotify.notify("WATCHDOG=1")
            self._last_ping = now
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        sdnotify.notify("STOPPING=1")
        await super().shutdown(sockets)


def server(app: Any, settings: ConsoleSettings, context: ssl.SSLContext) -> uvicorn.Server:
    """A uvicorn server for ``app`` on ``[console] host:port`` over ``context``."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=PeerCertProtocol,
        ws="none",
        lifespan="off",
        log_config=None,
        proxy_headers=False,
        server_header=False,
        ssl_certfile=str(settings.cert_file),
        ssl_context_factory=lambda _config, _default: context,
    )
    return NotifyingServer(config, settings)
