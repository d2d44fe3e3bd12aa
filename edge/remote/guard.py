"""What the phone page's server refuses before any route runs.

Like the kiosk's guard (``edge.kiosk.guard``), for a page on the public internet:

* ``Host`` must be one of the remote terminal's names (``[remote] public_hosts`` or its
  listen address); a browser's cross-site or same-site ``Sec-Fetch-Site`` is refused.
* A ``POST`` needs an ``Origin`` (or ``Referer``) of one of those names, a ``Content-Length``
  and the type its route takes: JSON of at most ``max_json`` bytes, or one JPEG frame of at
  most ``max_frame`` bytes on ``/api/frame``. A body that turns out longer than it said is
  cut off by the route's own limit (``read_body``).
"""

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.kiosk.guard import HEADERS, SAFE_METHODS

FRAME_PATH = "/api/frame"
_HEADERS = {
    **HEADERS,
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}


class BodyTooLargeError(ValueError):
    """A body longer than its limit (whatever its Content-Length said)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused once it passes ``limit`` bytes."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class PhoneGuard:
    """ASGI middleware applying the rules above in front of ``app``."""

    def __init__(
        self, app: ASGIApp, hosts: Iterable[str], max_frame: int, max_json: int = 4096
    ) -> None:
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)
        self.origins = frozenset(f"{s}://{h}" for h in self.hosts for s in ("http", "https"))
        self.max_frame, self.max_json = max_frame, max_json

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = Headers(scope=scope)
        if headers.get("host", "").lower() not in self.hosts:
            return 400, "unknown Host: open the page at its published address"
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return 403, "requests from other sites are refused"
        if scope["method"] in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is None and "referer" in headers:
            parts = urlsplit(headers["referer"])
            origin = f"{parts.scheme}://{parts.netloc}"
        if origin is None or origin.lower() not in self.origins:
            return 403, "requests from other origins are refused"
        media = headers.get("content-type", "").partition(";")[0].strip().lower()
        frame = scope["path"] == FRAME_PATH
        wanted, limit = (
            ("image/jpeg", self.max_frame) if frame else ("application/json", self.max_json)
        )
        if media != wanted:
            return 415, f"send Content-Type: {wanted}"
        length = headers.get("content-length", "")
        if not length.isdigit():
            return 411, "send a Content-Length"
        if int(length) > limit:
            return (
                413,
                f"body larger than {limit} bytes: send a smaller {'image' if frame else 'request'}",
            )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(_HEADERS)
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            status, error = refusal
            await JSONResponse({"error": error}, status)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
