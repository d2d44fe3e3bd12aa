"""What the kiosk refuses before any route runs: foreign hosts, foreign pages, odd bodies.

* ``Host`` must be the kiosk's own ``host:port`` (a DNS-rebound name is refused; 400, not 421,
  which browsers retry).
* A browser's ``Sec-Fetch-Site`` of ``cross-site`` or ``same-site`` (another page, or another
  port on the same address) is refused for every request, so foreign pages cannot even read
  or hold the long-poll.
* State-changing methods need ``Origin`` (or, without it, ``Referer``) of the kiosk's own
  origin, ``Content-Type: application/json`` (what the page sends: a form or ``text/plain``
  post from elsewhere is refused) and a ``Content-Length`` of at most ``max_body`` bytes.

Every answer carries headers that keep it out of other pages' frames and resources.
"""

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD"})
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def authorities(host: str, port: int) -> frozenset[str]:
    """The ``Host`` header values a browser sends for the kiosk at ``host``:``port``."""
    name = f"[{host}]" if ":" in host else host
    names = {f"{name}:{port}".lower()}
    if port == 80:
        names.add(name.lower())
    return frozenset(names)


class Guard:
    """ASGI middleware applying the rules above in front of ``app``."""

    headers: Mapping[str, str] = HEADERS
    unknown_host = "unknown Host: open the kiosk at its configured address"

    def __init__(self, app: ASGIApp, hosts: Iterable[str], max_body: int = 4096) -> None:
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)
        self.origins = frozenset(f"http://{h}" for h in self.hosts)
        self.max_body = max_body

    def _body_rule(self, scope: Scope) -> tuple[str, int, str]:
        """The media type a state-changing request must send, its most bytes, and the
        answer to a larger one."""
        return "application/json", self.max_body, f"body larger than {self.max_body} bytes"

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = Headers(scope=scope)
        if headers.get("host", "").lower() not in self.hosts:
            return 400, self.unknown_host
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
        wanted, limit, too_large = self._body_rule(scope)
        if media != wanted:
            return 415, f"send Content-Type: {wanted}"
        length = headers.get("content-length", "")
        if not length.isdigit():
            return 411, "send a Content-Length"
        if int(length) > limit:
            return 413, too_large
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(self.headers)
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            status, error = refusal
            await JSONResponse({"error": error}, status)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
