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

from starlette.requests import Request
from starlette.types import ASGIApp, Scope

from edge.kiosk.guard import HEADERS, Guard

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


class PhoneGuard(Guard):
    """ASGI middleware applying the rules above in front of ``app`` (the kiosk's guard with
    the phone page's names, headers and bodies)."""

    headers = _HEADERS
    unknown_host = "unknown Host: open the page at its published address"

    def __init__(
        self, app: ASGIApp, hosts: Iterable[str], max_frame: int, max_json: int = 4096
    ) -> None:
        super().__init__(app, hosts, max_json)
        self.origins = frozenset(f"{s}://{h}" for h in self.hosts for s in ("http", "https"))
        self.max_frame, self.max_json = max_frame, max_json

    def _body_rule(self, scope: Scope) -> tuple[str, int, str]:
        frame = scope["path"] == FRAME_PATH
        wanted, limit = (
            ("image/jpeg", self.max_frame) if frame else ("application/json", self.max_json)
        )
        return (
            wanted,
            limit,
            f"body larger than {limit} bytes: send a smaller {'image' if frame else 'request'}",
        )
