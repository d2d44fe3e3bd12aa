"""The kiosk web app: the session's screens as JSON (long-poll), a live preview, a language switch.

Served on loopback (``[kiosk] host``; another address needs ``allow_remote``): the preview
frames never leave the terminal. Chromium in kiosk mode shows ``/``; the page polls
``/api/state``; ``/api/choice`` arms "check my status" for the next card. After a pass, and on
the status screen, ``/api/receipt.svg`` is the receipt's QR code.
``edge.kiosk.guard.Guard`` refuses foreign hosts, pages and bodies before any
route runs; log-ins run one at a time and long-polls in their own few threads, so neither can
starve the other.
"""

import hashlib
import io
import json
import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from anyio import CapacityLimiter, fail_after, to_thread
from PIL import Image
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edge.adapters.receipts import qr_svg
from edge.kiosk.desk import MAX_ID, MAX_PIN, Desk
from edge.kiosk.guard import Guard
from edge.kiosk.lockout import LockoutError
from edge.kiosk.menu import Menu
from edge.session import prompts
from edge.session.model import Observation, Order, Screen
from hal.camera import Frame

STATIC = Path(__file__).with_name("static")
log = logging.getLogger(__name__)


class KioskDisplay:
    """The session's ``Display`` port for the web page: latest screen and preview frame."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._screen = Screen(step="idle", prompt="idle")
        self._version = 0
        self._frame: np.ndarray | None = None

    def show(self, screen: Screen) -> None:
        with self._cond:
            self._screen = screen
            self._version += 1
            self._cond.notify_all()

    def touch(self) -> None:
        """Wake the pages waiting for a new state (desk login or logout)."""
        with self._cond:
            self._version += 1
            self._cond.notify_all()

    def preview(self, frame: Frame, observation: Observation) -> None:
        with self._cond:
            self._frame = frame.rgb

    def state(self) -> dict[str, Any]:
        """The current screen with its texts in both languages."""
        with self._cond:
            screen, version = self._screen, self._version
        data: dict[str, Any] = {
            "version": version,
            "step": screen.step,
            "prompt": screen.prompt,
            "text": prompts.TEXTS[screen.prompt],
            "language": screen.language,
            "attempt": screen.attempt,
            "challenge": screen.challenge,
            "seconds_left": screen.seconds_left,
            "receipt": screen.receipt,
            "decision": screen.decision,
            "retiree": screen.retiree,
        }
        if screen.decision:
            data["next"] = prompts.NEXT[screen.decision]
        data["status"] = None if screen.status is None else prompts.status_rows(screen.status)
        data["receipt_text"] = prompts.RECEIPT.get(screen.token_state or "")
        data["qr"] = None
        if screen.token is not None:
            digest = hashlib.sha256(screen.token.encode()).hexdigest()[:16]
            data["qr"] = f"/api/receipt.svg?r={digest}"
        return data

    def qr(self) -> str | None:
        """The QR code (SVG) of the receipt on screen, ``None`` without one."""
        with self._cond:
            token = self._screen.token
        return None if token is None else qr_svg(token)

    def wait(self, after: int, timeout: float) -> None:
        """Block until the version passes ``after`` or ``timeout`` seconds pass."""
        with self._cond:
            self._cond.wait_for(lambda: self._version > after, timeout)

    def jpeg(self) -> bytes | None:
        """The last preview frame as JPEG, mirrored like a mirror (``None`` before any)."""
        with self._cond:
            frame = self._frame
        if frame is None:
            return None
        out = io.BytesIO()
        Image.fromarray(frame[:, ::-1]).save(out, "JPEG", quality=70)
        return out.getvalue()


_COOKIE = "lifecert_desk"
_COMMANDS = ("face", "assisted", "vein")
_DOCUMENTS = ("id_card", "ss_card", "other")
_POLLS = 8  # long-polls waiting at once; more wait for a thread


_BODY_S = 5.0  # a body not received by then is refused (the page sends < 1 KiB at once)


class BadRequestError(ValueError):
    """A request the kiosk refuses with ``status`` (400 unless said) and this message."""

    def __init__(self, error: str, status: int = 400) -> None:
        super().__init__(error)
        self.status = status


async def _bad_request(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, getattr(exc, "status", 400))


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.error("staff log-in unavailable: %s", exc)
    return JSONResponse({"error": "staff log-in unavailable, try again"}, 503)


async def _json(request: Request) -> dict[str, Any]:
    """The body as a JSON object (the guard has checked its type and size)."""
    try:
        with fail_after(_BODY_S):
            raw = await request.body()
    except TimeoutError:
        raise BadRequestError(f"body: not received within {_BODY_S:.0f} s", 408) from None
    except ClientDisconnect:
        raise BadRequestError("body: the connection closed before it ended") from None
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequestError("body: send a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequestError("body: send a JSON object")
    return body


def _text(body: dict[str, Any], field: str, default: str, limit: int) -> str:
    value = body.get(field, default)
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequestError(f"{field}: send a string of at most {limit} characters")
    return value


def create_app(
    display: KioskDisplay,
    set_language: Any,
    desk: Desk | None = None,
    *,
    hosts: Iterable[str],
    menu: Menu | None = None,
) -> Starlette:
    """The Starlette app over ``display``; ``set_language(lang)`` switches the session.

    ``hosts`` are the ``Host`` values it answers (``guard.authorities(host, port)``). With a
    ``desk``, staff log in (``/api/desk/login``, an HttpOnly cookie) and send commands. With a
    ``menu``, the idle screen offers "check my status" (``/api/choice``).
    """
    logins, polls = CapacityLimiter(1), CapacityLimiter(_POLLS)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def state(request: Request) -> Response:
        try:
            after = int(request.query_params.get("after", "-1"))
        except ValueError:
            raise BadRequestError("after: send the version number of the last state") from None
        await to_thread.run_sync(display.wait, after, 10.0, limiter=polls)
        data = display.state()
        data["desk"] = None if desk is None else desk.staff
        data["desk_enabled"] = desk is not None
        data["choice"] = None if menu is None else menu.pending()
        data["choice_text"] = prompts.TEXTS["status_card"] if menu is not None else None
        return JSONResponse(data, headers={"Cache-Control": "no-store"})

    async def desk_login(request: Request) -> Response:
        if desk is None:
            return JSONResponse({"error": "no desk mode on this terminal"}, 404)
        body = await _json(request)
        staff_id, pin = _text(body, "staff_id", "", MAX_ID), _text(body, "pin", "", MAX_PIN)
        login = await to_thread.run_sync(desk.login, staff_id, pin, limiter=logins)
        if login.retry_after > 0:
            wait = max(1, round(login.retry_after))
            return JSONResponse(
                {"error": "locked: too many wrong PINs", "retry_after": wait},
                429,
                headers={"Retry-After": str(wait)},
            )
        if login.token is None:
            return JSONResponse({"error": "wrong staff id or PIN"}, 403)
        display.touch()
        response = JSONResponse({"staff_id": desk.staff})
        response.set_cookie(_COOKIE, login.token, httponly=True, samesite="strict")
        return response

    async def desk_order(request: Request) -> Response:
        if desk is None or not desk.allowed(request.cookies.get(_COOKIE)):
            return JSONResponse({"error": "log in as staff first"}, 403)
        body = await _json(request)
        command, document = body.get("command"), body.get("document", "id_card")
        if command not in _COMMANDS or document not in _DOCUMENTS:
            return JSONResponse(
                {"error": f"command must be one of {_COMMANDS}, document one of {_DOCUMENTS}"},
                400,
            )
        desk.order(Order(command, document, _text(body, "note", "", 500)))
        return JSONResponse({"queued": command})

    async def desk_logout(request: Request) -> Response:
        if desk is not None and desk.allowed(request.cookies.get(_COOKIE)):
            await to_thread.run_sync(desk.logout)
            display.touch()
        response = JSONResponse({"staff_id": None})
        response.delete_cookie(_COOKIE)
        return response

    async def choice(request: Request) -> Response:
        if menu is None:
            return JSONResponse({"error": "no status lookup on this terminal"}, 404)
        chosen = (await _json(request)).get("choice")
        if chosen is not None and display.state()["step"] != "idle":
            return JSONResponse({"error": "choice: only before a card is inserted"}, 409)
        try:
            menu.choose(chosen)
        except ValueError as exc:
            raise BadRequestError(str(exc)) from None
        return JSONResponse({"choice": chosen})

    async def preview(request: Request) -> Response:
        data = await to_thread.run_sync(display.jpeg)
        if data is None:
            return Response(status_code=204)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def receipt(request: Request) -> Response:
        svg = await to_thread.run_sync(display.qr)
        if svg is None:
            return Response(status_code=404)
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    async def language(request: Request) -> Response:
        lang = _text(await _json(request), "language", "", 8)
        if lang not in prompts.LANGUAGES:
            return JSONResponse({"error": f"language must be one of {prompts.LANGUAGES}"}, 400)
        set_language(lang)
        return JSONResponse({"language": lang})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/state", state),
            Route("/api/preview.jpg", preview),
            Route("/api/receipt.svg", receipt),
            Route("/api/language", language, methods=["POST"]),
            Route("/api/choice", choice, methods=["POST"]),
            Route("/api/desk/login", desk_login, methods=["POST"]),
            Route("/api/desk/order", desk_order, methods=["POST"]),
            Route("/api/desk/logout", desk_logout, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(Guard, hosts=hosts)],
        exception_handlers={BadRequestError: _bad_request, LockoutError: _unavailable},
    )
