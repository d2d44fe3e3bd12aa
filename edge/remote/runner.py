"""Run the remote terminal beside the delivery loop: phone sessions and their web server.

Started by ``lifecert-edge run`` when ``[remote] enabled``: ``workers`` verified face
pipelines, one recorder thread owning the outbox connection (every session's result is
signed with this terminal's key and stored there before "done"; the service's loop delivers
it), and uvicorn serving the phone page. Codes and templates are asked of central over the
service's one MQTT link. Everything stops with the service's stop event.
"""

import logging
import threading
from contextlib import ExitStack
from typing import Self

import uvicorn

from common.errors import ConfigError
from edge.adapters import keys as edge_keys
from edge.adapters.devices import PipelineFaces
from edge.adapters.receipts import CentralReceipts
from edge.adapters.recorder import Recorder
from edge.adapters.status import CentralStatus
from edge.adapters.templates import CentralTemplates, Requester
from edge.bootstrap import open_outbox
from edge.config import EdgeConfig
from edge.kiosk.guard import authorities
from edge.remote.app import create_app
from edge.remote.codes import CentralCodes
from edge.remote.faces import FacePool
from edge.remote.limits import AddressLimits
from edge.remote.sessions import SerialRecorder, Sessions
from models.pipeline import FacePipeline
from protocol import signing

log = logging.getLogger(__name__)


def open_pool(cfg: EdgeConfig, stack: ExitStack) -> FacePool:
    """``[remote] workers`` verified pipelines of the configured bundle."""
    if cfg.central.model_sign_pub is None:
        raise ConfigError("central.model_sign_pub: the remote terminal needs the model-signing key")
    return FacePool(
        [
            PipelineFaces(
                stack.enter_context(
                    FacePipeline.open(
                        cfg.models.bundle, cfg.central.model_sign_pub, cfg.models.threads
                    )
                )
            )
            for _ in range(cfg.remote.workers)
        ]
    )


class Remote:
    """The phone sessions, their recorder and the web server; a context manager."""

    def __init__(self, cfg: EdgeConfig, stop: threading.Event, link: Requester) -> None:
        self.cfg, self.stop = cfg, stop
        remote = cfg.remote
        self._stack = ExitStack()
        keys = edge_keys.load(cfg)
        device_key = signing.load_private_key(edge_keys.device_key_path(cfg))
        self.pool = open_pool(cfg, self._stack)
        self.recorder = SerialRecorder()
        self.sessions = Sessions(
            self.pool,
            self.recorder,
            cfg.session,
            cfg.device_id,
            remote.max_sessions,
            remote.idle_s,
        )
        codes = CentralCodes(link, cfg.device_id, keys.central_verifier, remote.request_timeout_s)
        templates = CentralTemplates(
            link,
            cfg.device_id,
            keys.central_verifier,
            device_key,
            self.pool.template_model,
            remote.request_timeout_s,
        )
        status = CentralStatus(link, cfg.device_id, keys.central_verifier, remote.request_timeout_s)
        receipts = CentralReceipts(
            link,
            cfg.device_id,
            keys.central_verifier,
            keys.central_sign_kid,
            remote.request_timeout_s,
        )
        hosts = authorities(remote.host, remote.port) | {
            h.lower() for name in remote.public_hosts for h in (name, f"{name}:{remote.port}")
        }
        app = create_app(
            self.sessions,
            codes,
            templates.fetch,
            AddressLimits(remote.codes_per_address),
            status.lookup,
            receipts.fetch,
            hosts=frozenset(hosts),
            frame_max_bytes=remote.frame_max_bytes,
            frame_max_px=remote.frame_max_px,
            code_answer_s=remote.code_answer_ms / 1000,
            secure_cookie=remote.tls_cert_file is not None or bool(remote.forwarded_allow_ips),
        )
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=remote.host,
                port=remote.port,
                log_config=None,
                proxy_headers=bool(remote.forwarded_allow_ips),
                forwarded_allow_ips=list(remote.forwarded_allow_ips) or None,
                server_header=False,
                ssl_certfile=remote.tls_cert_file,
                ssl_keyfile=remote.tls_key_file,
                limit_concurrency=remote.max_sessions * 8 + 64,
            )
        )
        self._threads = [
            threading.Thread(target=self._record, name="remote-recorder", daemon=True),
            threading.Thread(target=self.server.run, name="remote-http", daemon=True),
        ]

    def _record(self) -> None:
        with open_outbox(self.cfg) as outbox:
            self.recorder.serve(Recorder(outbox, edge_keys.load(self.cfg)).record, self.stop)

    def start(self) -> None:
        """Serve the phone page."""
        for thread in self._threads:
            thread.start()
        scheme = "https" if self.cfg.remote.tls_cert_file else "http"
        log.info(
            "remote terminal on %s://%s:%d/ (%d sessions at once)",
            scheme,
            self.cfg.remote.host,
            self.cfg.remote.port,
            self.cfg.remote.max_sessions,
        )

    def close(self) -> None:
        """End the sessions, stop serving, close the models."""
        self.stop.set()
        self.server.should_exit = True
        self.sessions.close()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
