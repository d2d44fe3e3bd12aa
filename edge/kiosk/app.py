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


def create_app(display: KioskDisplay, set_language: Any) -> Starlette:
    """The Starlette app over ``display``; ``set_language(lang)`` switches the session."""

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def state(request: Request) -> Response:
        after = int(request.query_params.get("after", "-1"))
        await asyncio.to_thread(display.wait, after, 10.0)
        return JSONResponse(display.state(), headers={"Cache-Control": "no-store"})

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
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
