"""Receipts of passing certifications (``protocol.receipts``): issued by central, verified
by anyone.

- ``receipt_for``: the signed receipt of one applied passing result (None for anything
  else), certified until what that pass certifies to under the policy;
- ``ReceiptAnswers``: a terminal asks for the receipt of a result it produced itself
  (``op`` ``receipt`` on its ``req`` topic, after the request service's device and rate
  checks); another device's result is answered ``not_found``, as a missing one is;
- ``verify_app``: the public page (no login) that checks a receipt's text against
  central's published key(s) and publishes the key itself at ``/key.pem``.
"""

import datetime as dt
import html
import uuid
import zoneinfo
from typing import Any, Literal

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import Field
from sqlalchemy.engine import Connection, Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from central.certification.policy import certified_until
from central.certification.settings import Policy
from central.certification.versions import PolicyBook
from central.store import schema
from protocol import messages, receipts, signing
from protocol.errors import MessageError

_res, _r = schema.results, schema.retirees


def receipt_for(
    conn: Connection,
    result_id: uuid.UUID,
    signer: signing.Signer,
    policy: Policy | PolicyBook,
    now: dt.datetime | None = None,
    device_id: str | None = None,
) -> str | None:
    """The receipt of applied passing result ``result_id`` (only if produced by
    ``device_id``, when given); None when there is no such result. With a ``PolicyBook``,
    the validity is the one in force on the pass's date, as ingest applied it."""
    query = (
        sa.select(_res.c.retiree_id, _res.c.device_time, _r.c.birth_date)
        .join(_r, _r.c.id_number == _res.c.retiree_id)
        .where(
            _res.c.result_id == result_id,
            _res.c.applied.is_(True),
            _res.c.decision == messages.Decision.PASS.value,
        )
    )
    if device_id is not None:
        query = query.where(_res.c.device_id == device_id)
    row = conn.execute(query).first()
    if row is None:
        return None
    base = policy.fallback if isinstance(policy, PolicyBook) else policy
    on = row.device_time.astimezone(zoneinfo.ZoneInfo(base.timezone)).date()
    rules = policy.on(on, conn) if isinstance(policy, PolicyBook) else policy
    until = certified_until(on, row.birth_date, rules)
    return receipts.issue(
        signer, result_id, row.retiree_id, on, until, now or dt.datetime.now(dt.UTC)
    )


class ReceiptRequest(messages._Strict):
    """What a terminal asks (the JSON payload on its ``req`` topic)."""

    op: Literal["receipt"]
    request_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    result_id: uuid.UUID


class ReceiptAnswers:
    """Answers a terminal's ``receipt`` request (a handler of the request service)."""

    def __init__(self, engine: Engine, signer: signing.Signer, policy: Policy | PolicyBook) -> None:
        self.engine, self.signer, self.policy = engine, signer, policy

    def __call__(self, device_id: str, payload: bytes) -> messages.Reply:
        try:
            request = messages.decode(ReceiptRequest, payload)
        except MessageError as exc:
            error = f"bad_request: {exc}"[:200]
            return messages.Reply(status="error", data={"device_id": device_id}, error=error)
        ids: dict[str, Any] = {
            "request_id": request.request_id,
            "device_id": device_id,
            "result_id": str(request.result_id),
        }
        with self.engine.connect() as conn:
            token = receipt_for(
                conn, request.result_id, self.signer, self.policy, device_id=device_id
            )
        if token is None:
            return messages.Reply(status="error", data=ids, error="not_found")
        return messages.Reply(status="ok", data={**ids, "receipt": token})


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Verify a pension certification receipt</title>
<style>body{{font:1.2rem/1.5 sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}
textarea{{width:100%;font:1rem monospace}} .ok{{color:#064;font-weight:bold}}
.bad{{color:#a00;font-weight:bold}}</style></head><body>
<h1>Verify a receipt / 验证认证凭证</h1>
<form method="get" action="/"><label for="token">Receipt text (the QR code's content)</label>
<textarea id="token" name="token" rows="6" maxlength="{limit}">{token}</textarea>
<button type="submit">Verify / 验证</button></form>{verdict}
<p><a href="/key.pem">Central's public key</a></p></body></html>"""


def verify_app(keys: list[ec.EllipticCurvePublicKey]) -> Starlette:
    """The public verify page for receipts signed by one of ``keys``."""
    verifiers = receipts.published_keys(keys)
    pem = b"".join(
        k.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        for k in keys
    )

    def check(token: str) -> tuple[int, dict[str, Any]]:
        try:
            found = receipts.verify(token, verifiers)
        except receipts.ReceiptError as exc:
            return 422, {"valid": False, "problem": str(exc)}
        return 200, {
            "valid": True,
            "result_id": str(found.result_id),
            "id_number": found.masked_id,
            "certified_on": found.certified_on.isoformat(),
            "certified_until": found.certified_until.isoformat(),
            "kid": found.kid,
        }

    async def page(request: Request) -> Response:
        token = request.query_params.get("token", "")[: receipts.MAX_TOKEN + 1]
        verdict = ""
        if token:
            _, answer = check(token)
            if answer["valid"]:
                verdict = (
                    '<p class="ok">Valid receipt / 凭证有效: ID {id_number} certified on '
                    "{certified_on}, until {certified_until} (result {result_id}).</p>"
                ).format(**{k: html.escape(str(v)) for k, v in answer.items()})
            else:
                verdict = (
                    f'<p class="bad">Not valid / 凭证无效: {html.escape(answer["problem"])}</p>'
                )
        body = _PAGE.format(limit=receipts.MAX_TOKEN, token=html.escape(token), verdict=verdict)
        return HTMLResponse(
            body,
            headers={"Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'"},
        )

    async def api(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():  # read no more than a receipt can be
            body += chunk
            if len(body) > receipts.MAX_TOKEN * 2:
                too_large = {"valid": False, "problem": "too large for a receipt"}
                return JSONResponse(too_large, status_code=413)
        status, answer = check(body.decode("utf-8", "replace"))
        return JSONResponse(answer, status_code=status)

    async def key(_request: Request) -> Response:
        return Response(pem, media_type="application/x-pem-file")

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/verify", api, methods=["POST"]),
            Route("/key.pem", key),
        ]
    )
