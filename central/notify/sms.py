"""The SMS adapter: one JSON POST per message to an HTTP SMS gateway.

The body is ``{"to": ..., "from": ..., "text": ..., "language": ...}``; headers carry
``Idempotency-Key`` (a hash of the message key: a repeat after a lost reply is the same
key, and the gateway drops it) and, when configured, ``Authorization: Bearer <token>``.
A 2xx reply is delivered; 408, 425, 429, 5xx and network errors are worth a retry; any
other status is final. Errors name the status, never the number or the text.
"""

import json
import urllib.error
import urllib.request

from central.notify.base import DeliveryError, Message
from central.notify.outbox import idempotency_key
from central.notify.settings import SmsSettings, read_secret

_RETRY = {408, 425, 429}


class HttpSmsNotifier:
    """Delivers ``sms`` messages to the gateway of ``[notify.sms]``."""

    def __init__(self, settings: SmsSettings) -> None:
        self.settings = settings
        self._token = read_secret(settings.token_file, "notify.sms.token_file")
        # no proxies from the environment: the gateway is configured, not discovered
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def deliver(self, message: Message) -> None:
        """POST ``message``; ``DeliveryError`` (retryable or not) when the gateway says no."""
        s = self.settings
        body = json.dumps(
            {
                "to": message.recipient,
                "from": s.sender_id,
                "text": message.body,
                "language": message.language,
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key(message.key),
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(str(s.url), data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=s.timeout_s) as reply:
                reply.read(4096)
        except urllib.error.HTTPError as exc:
            retry = exc.code in _RETRY or exc.code >= 500
            raise DeliveryError(f"gateway said HTTP {exc.code}", retryable=retry) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"gateway unreachable: {reason}") from None
