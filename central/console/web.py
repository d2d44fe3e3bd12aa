"""The console's HTTP plumbing: security headers and a body limit (pure ASGI, no
per-request middleware object), JSON and CSV responses."""

import datetime as dt
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi.responses import JSONResponse, Response
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from central.people import csvio


def csv_response(
    rows: Iterator[dict[str, Any]], columns: list[str], filename: str
) -> StreamingResponse:
    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csvio.writer(out)
        writer.writerow(columns)
        for n, row in enumerate(rows, 1):
            writer.writerow([row[c] for c in columns])
            if n % 2000 == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"strict-transport-security", b"max-age=31536000"),
]


class SecurityHeaders:
    """ASGI middleware: the headers above on every response (no script, no framing, no
    caching of staff data)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def _json_default(value: Any) -> str:
    if isinstance(value, dt.date | dt.datetime | uuid.UUID):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_response(data: Any) -> Response:
    """``data`` as JSON, dates as ISO text (straight ``json.dumps``: lists of rows are
    the API's bulk)."""
    return Response(json.dumps(data, default=_json_default), media_type="application/json")


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, unread."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLargeError
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLargeError:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        await JSONResponse(
            {"error": f"request body over {self.limit} bytes", "field": "body"}, status_code=413
        )({"type": "http"}, _nothing, send)


class _TooLargeError(Exception):
    pass


async def _nothing() -> Message:
    return {"type": "http.disconnect"}
