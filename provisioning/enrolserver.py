"""``lifecert fleet enrol-server``: the HTTPS endpoint terminals claim their certificate at.

TLS with server authentication only (a certificate from the fleet CA, made on
first start in ``enrol/server.pem``); terminals authenticate with their one-time
token. Routes::

    GET  /v1/ca              the fleet CA (PEM) - the terminal checks it against its token's pin
    POST /v1/claims          {token, csr, password}  -> 202 pending | 200 approved (+ document)
    POST /v1/claims/status   {token}                 -> the same reply while it is decided

Bodies over :data:`protocol.enrolment.MAX_BODY_BYTES` are refused unread; every
refusal is JSON ``{"error": "<field>: what is wrong and what to do"}``.
"""

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvicorn
from cryptography import x509
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from protocol import enrolment
from provisioning import claims, pki
from provisioning.fleet import Fleet

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request, model: type[BaseModel]) -> BaseModel | JSONResponse:
    """The request body as ``model``, or the refusal to send."""
    declared = request.headers.get("content-length")
    if declared is not None and (
        not declared.isdigit() or int(declared) > enrolment.MAX_BODY_BYTES
    ):
        return _error(f"body: larger than {enrolment.MAX_BODY_BYTES} bytes", 413)
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > enrolment.MAX_BODY_BYTES:
            return _error(f"body: larger than {enrolment.MAX_BODY_BYTES} bytes", 413)
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        return _error(f"{field}: {first['msg']} (send JSON as the terminal's enrol does)", 400)


def create_app(fleet: Fleet) -> Starlette:
    """The enrolment app for ``fleet``."""

    async def ca(_request: Request) -> Response:
        return PlainTextResponse(
            fleet.paths.ca_cert.read_text(encoding="ascii"), media_type="application/x-pem-file"
        )

    def _answer(reply: enrolment.ClaimReply) -> JSONResponse:
        code = 200 if reply.status == "approved" else 202 if reply.status == "pending" else 403
        return JSONResponse(json.loads(reply.model_dump_json()), status_code=code)

    async def claim(request: Request) -> Response:
        body = await _body(request, enrolment.ClaimRequest)
        if isinstance(body, JSONResponse):
            return body
        assert isinstance(body, enrolment.ClaimRequest)
        peer = request.client.host if request.client else ""
        try:
            return _answer(await run_in_threadpool(claims.submit, fleet, body, peer))
        except claims.ClaimError as exc:
            log.warning("claim refused from %s: %s", peer, exc)
            return _error(str(exc), exc.status)

    async def claim_status(request: Request) -> Response:
        body = await _body(request, enrolment.StatusRequest)
        if isinstance(body, JSONResponse):
            return body
        assert isinstance(body, enrolment.StatusRequest)
        try:
            return _answer(await run_in_threadpool(claims.status, fleet, body))
        except claims.ClaimError as exc:
            return _error(str(exc), exc.status)

    return Starlette(
        routes=[
            Route("/v1/ca", ca, methods=["GET"]),
            Route("/v1/claims", claim, methods=["POST"]),
            Route("/v1/claims/status", claim_status, methods=["POST"]),
        ]
    )


def server_files(fleet: Fleet, names: tuple[str, ...]) -> tuple[Path, Path]:
    """``enrol/server.pem`` and ``.key`` for ``names`` (and the broker's), made if missing or
    if they lack a name."""
    folder = fleet.directory / "enrol"
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    broker = fleet.settings.broker
    wanted = list(
        dict.fromkeys((*names, broker.host, *broker.extra_hosts, "localhost", "127.0.0.1"))
    )
    if cert_file.exists() and key_file.exists():
        san = pki.load_cert(cert_file).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        have = {str(n.value) for n in san.value}
        if set(wanted) <= have:
            return cert_file, key_file
    key = pki.new_key()
    cert = fleet.authority().issue(
        "lifecert-enrol",
        key.public_key(),
        fleet.settings.pki.service_days,
        server_names=wanted,
        client=False,
    )
    pki.write_private_key(key_file, key)
    pki.write_cert(cert_file, cert)
    return cert_file, key_file


def serve(fleet: Fleet, bind: str, port: int, names: tuple[str, ...] = ()) -> None:
    """Serve enrolment over HTTPS on ``bind:port`` until SIGTERM/Ctrl-C."""
    cert_file, key_file = server_files(fleet, names)
    uvicorn.run(
        create_app(fleet),
        host=bind,
        port=port,
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
        log_config=None,
        proxy_headers=False,
        server_header=False,
    )
