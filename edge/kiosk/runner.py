"""Run the certification session and the kiosk web server beside the delivery loop.

Two threads: the session (its own outbox connection; results are durable
before "done" and the service's loop delivers them; template requests go over
the service's MQTT link) and uvicorn serving the page. Both stop with the
service's stop event.
"""

import logging
import threading
from collections.abc import Callable
from typing import Self

import uvicorn

from edge.adapters.templates import Requester
from edge.bootstrap import open_desk, open_outbox, open_session
from edge.config import EdgeConfig
from edge.kiosk.app import KioskDisplay, create_app
from edge.kiosk.desk import Desk
from edge.kiosk.guard import authorities
from edge.kiosk.menu import Menu
from edge.kiosk.settings import is_loopback
from edge.session.core import Session

log = logging.getLogger(__name__)


def web_server(
    cfg: EdgeConfig,
    display: KioskDisplay,
    set_language: Callable[[str], None],
    desk: Desk | None,
    menu: Menu | None = None,
) -> uvicorn.Server:
    """Uvicorn serving the kiosk app at ``[kiosk] host:port`` only; no proxy headers believed."""
    kiosk = cfg.kiosk
    if not is_loopback(kiosk.host):
        log.warning(
            "kiosk served beyond loopback on %s:%d ([kiosk] allow_remote): anyone on that "
            "network can reach the staff log-in and the camera preview, PINs cross it in clear",
            kiosk.host,
            kiosk.port,
        )
    hosts = authorities(kiosk.host, kiosk.port)
    return uvicorn.Server(
        uvicorn.Config(
            create_app(display, set_language, desk, hosts=hosts, menu=menu),
            host=kiosk.host,
            port=kiosk.port,
            log_config=None,
            proxy_headers=False,
            server_header=False,
        )
    )


class Kiosk:
    """The session thread and the web server; a context manager."""

    def __init__(
        self,
        cfg: EdgeConfig,
        stop: threading.Event,
        link: Requester,
        watch: Callable[[bool], None] | None = None,
    ) -> None:
        self.cfg, self.stop, self.link, self.watch = cfg, stop, link, watch
        self.display = KioskDisplay()
        self.session: Session | None = None
        self.ready = threading.Event()
        self.failed: BaseException | None = None
        self.desk = open_desk(cfg)
        self.menu = Menu(self.display.touch)
        self.server = web_server(cfg, self.display, self._set_language, self.desk, self.menu)
        self._threads = [
            threading.Thread(target=self._run_session, name="session", daemon=True),
            threading.Thread(target=self.server.run, name="kiosk-http", daemon=True),
        ]

    def _set_language(self, language: str) -> None:
        if self.session is not None:
            self.session.set_language(language)

    def _run_session(self) -> None:
        try:
            with (
                open_outbox(self.cfg) as outbox,
                open_session(
                    self.cfg, outbox, self.display, self.link, choices=self.menu
                ) as session,
            ):
                session.desk = self.desk
                session.watch = self.watch
                self.session = session
                self.ready.set()
                session.serve(self.stop)
        except BaseException as exc:
            self.failed = exc
            self.ready.set()
            log.exception("the certification session stopped")
            self.stop.set()

    def start(self, timeout: float = 120) -> None:
        """Open the devices and models, then serve; raise what kept the session from starting."""
        self._threads[0].start()
        self.ready.wait(timeout)
        if self.failed is not None:
            raise self.failed
        self._threads[1].start()
        log.info("kiosk on http://%s:%d/", self.cfg.kiosk.host, self.cfg.kiosk.port)

    def close(self) -> None:
        """Stop serving and wait for the session to finish its step."""
        self.stop.set()
        self.server.should_exit = True
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)
        if self.desk is not None:
            self.desk.lockout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
