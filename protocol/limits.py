"""Size limits on the wire; anything larger is refused before parsing."""

from typing import Final

MAX_RESULT_BYTES: Final = 64 * 1024
"""A signed result (JWS compact), sealed template included."""

MAX_TEMPLATE_BYTES: Final = 16 * 1024
"""A sealed template (JWE compact)."""

MAX_ACK_BYTES: Final = 4 * 1024
MAX_REQUEST_BYTES: Final = 8 * 1024
MAX_REPLY_BYTES: Final = 64 * 1024
