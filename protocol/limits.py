"""Size limits on the wire; anything larger is refused before parsing."""

from typing import Final

MAX_RESULT_BYTES: Final = 64 * 1024
"""A signed result (JWS compact), sealed template included."""

MAX_TEMPLATE_BYTES: Final = 16 * 1024
"""A sealed template (JWE compact)."""

MAX_ACK_BYTES: Final = 64 * 1024
"""A signed batch of acks for one device."""

MAX_ACKS_PER_MESSAGE: Final = 200
"""Acks in one batch (each is about 200 bytes of JSON)."""

MAX_REQUEST_BYTES: Final = 8 * 1024
MAX_REPLY_BYTES: Final = 64 * 1024
