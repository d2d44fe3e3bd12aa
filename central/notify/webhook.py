"""Deliver messages as an HTTP POST of JSON to the message's recipient URL.

The body is the message's fields as one JSON object; ``Idempotency-Key`` carries
``Message.key`` so a receiver can drop a repeat. With a ``signer`` each attempt is signed
anew (Standard Webhooks: ``webhook-id`` = the key, ``webhook-timestamp`` = that attempt's
time, ``webhook-signature``; see :mod:`central.notify.signature`), so a retry carries a
fresh timestamp a receiver's replay window accepts. Each attempt has a timeout; a connection
error, a timeout, 408, 429 or a 5xx is tried again after a doubling pause, up to
``attempts``; any other status is final (``DeliveryError(retryable=False)``). Logs name
only the URL's scheme and host (a webhook path or query often holds a token).
"""

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from central.notify.base import DeliveryError, Message
from central.notify.signature import Signer

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 429})


def _where(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a redirect is an answer (3xx), not somewhere else to POST to


class WebhookNotifier:
    """POSTs each message as JSON to ``url``, or to ``message.recipient`` (an http or https
    URL) when no ``url`` is given; signed when a ``signer`` is given (timestamps from
    ``clock``, unix seconds)."""

    def __init__(
        self,
        timeout_s: float = 5.0,
        attempts: int = 3,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        url: str | None = None,
        signer: Signer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.signer = signer
        self._clock = clock
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirect)

    def deliver(self, message: Message) -> None:
        """POST ``message``; ``DeliveryError`` once every attempt failed or one was refused."""
        url = self.url or message.recipient
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise DeliveryError(f"webhook recipient is not an http(s) URL: {url[:40]!r}", False)
        body = json.dumps(
            {
                "channel": message.channel,
                "subject": message.subject,
                "body": message.body,
                "key": message.key,
                "language": message.language,
                "data": message.data,
            },
            ensure_ascii=False,
        ).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.key}
        last = ""
        for attempt in range(1, self.attempts + 1):
            signed = headers
            if self.signer is not None:
                signed = headers | self.signer.headers(message.key, int(self._clock()), body)
            request = urllib.request.Request(url, data=body, headers=signed, method="POST")
            try:
                with self._opener.open(request, timeout=self.timeout_s) as response:
                    response.read(1024)
                return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code not in _RETRY_STATUSES:
                    raise DeliveryError(
                        f"webhook {_where(url)} refused message {message.key}: {last}", False
                    ) from None
            except (urllib.error.URLError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
            if attempt < self.attempts:
                pause = self.backoff_s * 2 ** (attempt - 1)
                log.info("webhook %s: attempt %d failed (%s), retrying in %.1fs",
                         _where(url), attempt, last, pause)  # fmt: skip
                self._sleep(pause)
        raise DeliveryError(
            f"webhook {_where(url)}: message {message.key} not delivered after "
            f"{self.attempts} attempt(s): {last}"
        )
