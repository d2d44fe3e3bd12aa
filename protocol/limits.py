"""Size limits on the wire; anything larger is refused before parsing."""

import datetime as dt
from typing import Final

MAX_RESULT_BYTES: Final = 64 * 1024
"""A signed result (JWS compact), sealed template included."""

MAX_TEMPLATE_BYTES: Final = 16 * 1024
"""A sealed template (JWE compact)."""

MAX_ACK_BYTES: Final = 64 * 1024
"""A signed batch of acks for one device."""

MAX_ACKS_PER_MESSAGE: Final = 200
"""Acks in one batch (each is about 200 bytes of JSON)."""

MAX_TELEMETRY_BYTES: Final = 4 * 1024
"""One telemetry message (JSON, a few hundred bytes in practice)."""

MAX_STATUS_BYTES: Final = 16
"""A retained status: ``online``, ``offline`` or ``stopped``."""

MAX_REQUEST_BYTES: Final = 8 * 1024
MAX_REPLY_BYTES: Final = 64 * 1024

MAX_SEQ: Final = 2**63 - 1
"""A result's ``seq``: what a signed 64-bit database integer holds."""

MAX_MAGNITUDE: Final = 1e6
"""Scores and thresholds are finite and within +-this (distances and similarities are small)."""

EARLIEST_TIME: Final = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST_TIME: Final = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
"""Times and dates on the wire lie in this range (both engines hold it; arithmetic on it
cannot overflow)."""
