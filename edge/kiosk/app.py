"""The kiosk web app: the session's screens as JSON (long-poll), a live preview, a language switch.

Served on loopback only (``[kiosk] host``): the preview frames never leave the
terminal. Chromium in kiosk mode shows ``/``; the page polls ``/api/state``.
"""

import asyncio
import io
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edge.session import prompts
from edge.session.desk import Desk, Order
from edge.session.model import Observation, Screen
from hal.camera import Frame

STATIC = Path(__file__).with_name("static")


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
        return data

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


def create_app(display: KioskDisplay, set_language: Any, desk: Desk | None = None) -> Starlette:
    """The Starlette app over ``display``; ``set_language(lang)`` switches the session.

    With a ``desk``, staff log in (``/api/desk/login``, an HttpOnly cookie) and send commands.
    """

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def state(request: Request) -> Response:
        after = int(request.query_params.get("after", "-1"))
        await asyncio.to_thread(display.wait, after, 10.0)
        data = display.state()
        data["desk"] = None if desk is None else desk.staff
        data["desk_enabled"] = desk is not None
        return JSONResponse(data, headers={"Cache-Control": "no-store"})

    async def desk_login(request: Request) -> Response:
        if desk is None:
            return JSONResponse({"error": "no desk mode on this terminal"}, 404)
        body = await request.json()
        token = await asyncio.to_thread(
            desk.login, str(body.get("staff_id", "")), str(body.get("pin", ""))
        )
        if token is None:
            return JSONResponse({"error": "wrong staff id or PIN"}, 403)
        display.touch()
        response = JSONResponse({"staff_id": desk.staff})
        response.set_cookie(_COOKIE, token, httponly=True, samesite="strict")
        return response

    async def desk_order(request: Request) -> Response:
        if desk is None or not desk.allowed(request.cookies.get(_COOKIE)):
            return JSONResponse({"error": "log in as staff first"}, 403)
        body = await request.json()
        command, document = body.get("command"), body.get("document", "id_card")
        if command not in _COMMANDS or document not in ("id_card", "ss_card", "other"):
            return JSONResponse({"error": f"command must be one of {_COMMANDS}"}, 400)
        desk.order(Order(command, document, str(body.get("note", ""))[:500]))
        return JSONResponse({"queued": command})

    async def desk_logout(request: Request) -> Response:
        if desk is not None and desk.allowed(request.cookies.get(_COOKIE)):
            desk.logout()
            display.touch()
        response = JSONResponse({"staff_id": None})
        response.delete_cookie(_COOKIE)
        return response

    async def preview(request: Request) -> Response:
        data = await asyncio.to_thread(display.jpeg)
        if data is None:
            return Response(status_code=204)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def language(request: Request) -> Response:
        body = await request.json()
        lang = str(body.get("language", ""))
        if lang not in prompts.LANGUAGES:
            return JSONResponse({"error": f"language must be one of {prompts.LANGUAGES}"}, 400)
        set_language(lang)
        return JSONResponse({"language": lang})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/state", state),
            Route("/api/preview.jpg", preview),
            Route("/api/language", language, methods=["POST"]),
            Route("/api/desk/login", desk_login, methods=["POST"]),
            Route("/api/desk/order", desk_order, methods=["POST"]),
            Route("/api/desk/logout", desk_logout, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
