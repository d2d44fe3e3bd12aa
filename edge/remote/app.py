"""The phone page's server: ask for a code, check it, then certify with the phone's camera.

* ``POST /api/code`` ``{id_number}``: central texts a code to the roster's phone for that
  ID number; the answer is the same whether or not the ID number exists (central does the
  same work for both), and goes out no sooner than ``code_answer_s`` after the request
  arrived, so its time does not tell them apart either.
* ``POST /api/verify`` ``{id_number, code[, purpose]}``: central checks the code (the same
  work, and the same answer, for a wrong code, an expired one and none at all; no sooner
  than ``code_answer_s`` after the request arrived either); on success
  this terminal asks central for the retiree's last certified template (none: the first
  certification stays in person) and starts a session; its token is an HttpOnly cookie.
  With ``purpose: "status"`` it asks central for the retiree's status instead (certified
  until, next due date, last certification, this month's payment decision) and starts
  nothing.
* ``POST /api/frame`` (``image/jpeg``, at most ``[remote] frame_max_bytes``): one camera frame.
* ``GET /api/state?after=N``: the session's screen (long-poll), texts in both languages.
* ``GET /api/receipt`` and ``/api/receipt.svg``: after a pass, central's signed receipt
  (the token, and its QR code); 202 until central has applied the result.
* ``POST /api/end``: leave the session.

Every refusal is one clear message in both languages; nothing is changed by a refused request.
"""

import asyncio
import io
import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from anyio import CapacityLimiter, to_thread
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from common import idnumber
from edge.adapters.receipts import qr_svg
from edge.adapters.templates import Fetch, ReplyError, to_template
from edge.remote.codes import CentralCodes
from edge.remote.guard import BodyTooLargeError, PhoneGuard, read_body
from edge.remote.limits import AddressLimits
from edge.remote.prompts import MESSAGES
from edge.remote.sessions import BusyError, PhoneSession, Sessions
from edge.session import prompts
from edge.session.core import mask
from edge.session.ports import UnknownRetireeError
from hal.errors import CameraError
from protocol import lookups

STATIC = Path(__file__).with_name("static")
COOKIE = "lifecert_phone"
log = logging.getLogger(__name__)

_CENTRAL = 8  # requests to central at once (each waits on MQTT)
_POLLS = 32  # long-polls waiting at once
_CODE_RE_LEN = 6


class RefusedError(Exception):
    """A request refused with ``status``, a field-level ``error`` and a message for people."""

    def __init__(self, status: int, error: str, message: str = "") -> None:
        super().__init__(error)
        self.status, self.error, self.message = status, error, message

    def response(self) -> Response:
        body: dict[str, Any] = {"error": self.error}
        if self.message:
            body["message"] = MESSAGES[self.message]
        headers = {"Retry-After": "3600"} if self.status == 429 else None
        return JSONResponse(body, self.status, headers=headers)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RefusedError)
    return exc.response()


async def _json(request: Request) -> dict[str, Any]:
    try:
        raw = await asyncio.wait_for(read_body(request, 4096), 5.0)
    except TimeoutError:
        raise RefusedError(408, "body: not received within 5 s") from None
    except (BodyTooLargeError, ClientDisconnect) as exc:
        raise RefusedError(413, f"body: {exc}") from None
    try:
        body = json.loads(raw)
    except ValueError:
        raise RefusedError(400, "body: send a JSON object") from None
    if not isinstance(body, dict):
        raise RefusedError(400, "body: send a JSON object")
    return body


def _id_number(body: dict[str, Any]) -> str:
    value = body.get("id_number")
    if not isinstance(value, str) or len(value) > 32:
        raise RefusedError(400, "id_number: send the 18-character ID number")
    try:
        return idnumber.validate(value.strip().upper())
    except idnumber.IdNumberError as exc:
        raise RefusedError(400, f"id_number: {exc}") from None


def _code(body: dict[str, Any]) -> str:
    value = body.get("code")
    if not isinstance(value, str) or len(value) != _CODE_RE_LEN or not value.isdigit():
        raise RefusedError(400, f"code: send the {_CODE_RE_LEN} digits of the text message")
    return value


def _language(body: dict[str, Any]) -> str:
    lang = body.get("language", "zh")
    if lang not in prompts.LANGUAGES:
        raise RefusedError(400, f"language: one of {', '.join(prompts.LANGUAGES)}")
    return str(lang)


def decode_frame(data: bytes, max_px: int) -> np.ndarray:
    """A JPEG as RGB uint8; ``RefusedError`` for anything else or a side over ``max_px``."""
    try:
        image = Image.open(io.BytesIO(data))
        if image.format != "JPEG":
            raise RefusedError(415, "frame: send a JPEG image")
        if max(image.size) > max_px or min(image.size) < 16:
            w, h = image.size
            raise RefusedError(413, f"frame: {w}x{h} px: send at most {max_px} px a side")
        return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise RefusedError(400, "frame: not a readable JPEG image") from None


def create_app(
    sessions: Sessions,
    codes: CentralCodes,
    fetch: Fetch,
    limits: AddressLimits,
    status: Callable[[str], lookups.StatusData] | None = None,
    receipt: Callable[[uuid.UUID], tuple[str, Any]] | None = None,
    *,
    hosts: frozenset[str],
    frame_max_bytes: int,
    frame_max_px: int,
    code_answer_s: float,
    secure_cookie: bool = False,
) -> Starlette:
    """The Starlette app; ``fetch`` asks central for a retiree's last certified template,
    ``status`` for where a retiree stands; code requests and checks are answered
    ``code_answer_s`` after they arrived at the soonest."""
    central, polls = CapacityLimiter(_CENTRAL), CapacityLimiter(_POLLS)

    def client(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def limited(request: Request) -> None:
        if not limits.take(client(request)):
            raise RefusedError(429, "too many requests from this address", "too_many")

    async def ask(call: Callable[..., Any], *args: Any) -> Any:
        try:
            return await to_thread.run_sync(call, *args, limiter=central)
        except (TimeoutError, OSError, ReplyError) as exc:
            log.warning("central could not answer a phone request: %s", exc)
            raise RefusedError(503, "central: not reachable", "unavailable") from None

    async def floored(arrived: float, call: Callable[..., Any], *args: Any) -> Any:
        """``ask``, answered no sooner than ``code_answer_s`` after ``arrived``."""
        try:
            return await ask(call, *args)
        finally:  # whatever central did or said, the answer's time is the same
            await asyncio.sleep(code_answer_s - (time.monotonic() - arrived))

    def session_of(request: Request) -> PhoneSession:
        phone = sessions.get(request.cookies.get(COOKIE))
        if phone is None:
            raise RefusedError(401, "session: none, or it has ended; start again with a new code")
        return phone

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def send_code(request: Request) -> Response:
        arrived = time.monotonic()
        body = await _json(request)
        retiree = _id_number(body)
        limited(request)
        sent = await floored(arrived, codes.send, retiree, client(request))
        if sent == "rate_limited":
            raise RefusedError(429, "too many codes for this ID number or phone", "too_many")
        return JSONResponse({"sent": True, "message": MESSAGES["code_sent"]})

    async def verify(request: Request) -> Response:
        arrived = time.monotonic()
        body = await _json(request)
        retiree, code, language = _id_number(body), _code(body), _language(body)
        purpose = body.get("purpose", "certify")
        if purpose not in ("certify", "status") or (purpose == "status" and status is None):
            raise RefusedError(400, "purpose: certify or status")
        limited(request)
        if purpose == "certify" and sessions.running() >= sessions.max_sessions:
            raise RefusedError(503, "sessions: all taken", "busy")
        outcome = await floored(arrived, codes.check, retiree, code, client(request))
        if outcome == "locked":
            raise RefusedError(429, "code: too many wrong tries", "code_locked")
        if outcome != "ok":
            raise RefusedError(403, "code: wrong or expired", "code_wrong")
        if purpose == "status":
            assert status is not None
            try:
                found = await ask(status, retiree)
            except UnknownRetireeError:
                raise RefusedError(403, "code: wrong or expired", "code_wrong") from None
            fields = found.model_dump(mode="json", exclude={"request_id", "device_id"})
            return JSONResponse({"status": fields | {"retiree_id": mask(retiree)}})
        try:
            data = await ask(fetch, retiree)
        except UnknownRetireeError:
            data = None
        if data is None:
            log.info(
                "phone: no certified template for %s: first certification in person", mask(retiree)
            )
            raise RefusedError(409, "template: no earlier certification", "first_in_person")
        try:
            phone = sessions.start(retiree, to_template(data), language)
        except BusyError:
            raise RefusedError(503, "sessions: all taken", "busy") from None
        response = JSONResponse(phone.display.state())
        response.set_cookie(
            COOKIE, phone.token, httponly=True, samesite="strict", secure=secure_cookie
        )
        return response

    async def frame(request: Request) -> Response:
        phone = session_of(request)
        try:
            data = await asyncio.wait_for(read_body(request, frame_max_bytes), 5.0)
        except TimeoutError:
            raise RefusedError(408, "frame: not received within 5 s") from None
        except (BodyTooLargeError, ClientDisconnect) as exc:
            raise RefusedError(413, f"frame: {exc}") from None
        rgb = await to_thread.run_sync(decode_frame, data, frame_max_px)
        try:
            phone.camera.feed(rgb)
        except CameraError:
            raise RefusedError(409, "session: it has ended") from None
        return JSONResponse({"version": phone.display.state()["version"]})

    async def state(request: Request) -> Response:
        phone = session_of(request)
        try:
            after = int(request.query_params.get("after", "-1"))
        except ValueError:
            raise RefusedError(400, "after: send the version number of the last state") from None
        await to_thread.run_sync(phone.display.wait, after, 10.0, limiter=polls)
        return JSONResponse(phone.display.state())

    async def receipt_token(request: Request) -> str:
        phone = session_of(request)
        outcome = phone.outcome
        if receipt is None or outcome is None or outcome.decision != "pass":
            raise RefusedError(404, "receipt: only a certification that passed has one")
        assert outcome.result_id is not None
        try:
            token, _ = await to_thread.run_sync(
                receipt, uuid.UUID(outcome.result_id), limiter=central
            )
        except (TimeoutError, OSError, ReplyError) as exc:
            log.info("receipt not ready: %s", exc)
            raise RefusedError(202, "receipt: not ready yet, ask again in a moment") from None
        return str(token)

    async def receipt_json(request: Request) -> Response:
        return JSONResponse({"receipt": await receipt_token(request)})

    async def receipt_svg(request: Request) -> Response:
        svg = qr_svg(await receipt_token(request))
        return Response(svg, media_type="image/svg+xml")

    async def language(request: Request) -> Response:
        phone = session_of(request)
        lang = _language(await _json(request))
        phone.session.set_language(lang)
        return JSONResponse({"language": lang})

    async def end(request: Request) -> Response:
        phone = sessions.get(request.cookies.get(COOKIE))
        if phone is not None:
            phone.end()
        response = JSONResponse({"ended": True})
        response.delete_cookie(COOKIE)
        return response

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/code", send_code, methods=["POST"]),
            Route("/api/verify", verify, methods=["POST"]),
            Route("/api/frame", frame, methods=["POST"]),
            Route("/api/state", state),
            Route("/api/receipt", receipt_json),
            Route("/api/receipt.svg", receipt_svg),
            Route("/api/language", language, methods=["POST"]),
            Route("/api/end", end, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(PhoneGuard, hosts=hosts, max_frame=frame_max_bytes)],
        exception_handlers={RefusedError: _refused},
    )
