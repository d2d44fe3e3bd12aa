"""Deliver the outbox: publish due results within a window, apply verified acks.

The publisher owns no thread and no socket: the service calls it from its loop
and gives it a ``send`` function (the MQTT link's publish), so tests drive it
with a real outbox and real signatures but no broker.
"""

import logging
from collections import Counter
from collections.abc import Callable, Iterable

from edge import acks
from edge.adapters.outbox import AckOutcome, Outbox, backoff
from protocol.errors import MessageError, SignatureError
from protocol.messages import Ack, AckStatus
from protocol.signing import Verifier

log = logging.getLogger(__name__)

Send = Callable[[str], bool]
REFUSED = "refused"


class Publisher:
    """Keeps at most ``max_inflight`` results awaiting central's ack."""

    def __init__(
        self, outbox: Outbox, verifier: Verifier, send: Send, max_inflight: int = 200
    ) -> None:
        self._outbox = outbox
        self._verifier = verifier
        self._send = send
        self._max_inflight = max_inflight
        self._inflight: dict[str, float] = {}
        self._resend = True

    @property
    def inflight(self) -> int:
        """Results published and neither acked nor overdue."""
        return len(self._inflight)

    def connected(self, session_present: bool) -> None:
        """After a connect: if the broker lost our session, re-send everything unacked.

        Also true on the first connect of a process, whose predecessor's
        unacked sends may have died with it.
        """
        if not session_present:
            self._resend = True

    def apply_acks(self, payloads: Iterable[bytes]) -> Counter[str]:
        """Verify acks and mark their rows; forged, malformed or foreign acks change nothing."""
        tally: Counter[str] = Counter()
        verified: list[Ack] = []
        for payload in payloads:
            try:
                verified.extend(acks.verify(payload, self._verifier, self._outbox.device_id))
            except (SignatureError, MessageError, acks.ForeignAckError) as exc:
                tally[REFUSED] += 1
                log.warning("ack refused: %s", exc)
        for ack, outcome in zip(verified, self._outbox.mark_acked_many(verified), strict=True):
            tally[outcome.value] += 1
            result_id = str(ack.result_id)
            self._inflight.pop(result_id, None)
            if outcome is AckOutcome.UNKNOWN:
                log.warning("ack for unknown result %s ignored", result_id)
            elif outcome is AckOutcome.MARKED and ack.status is AckStatus.REJECTED:
                log.warning("central rejected result %s: %s", result_id, ack.reason)
            elif outcome is AckOutcome.MARKED:
                log.info("result %s delivered (%s)", result_id, ack.status.value)
        return tally

    def publish_due(self) -> int:
        """Publish results that are due while the window has room; how many were sent."""
        if self._resend:
            count = self._outbox.retry_now()
            self._resend = False
            self._inflight.clear()
            if count:
                log.info("re-sending %d unacked result(s)", count)
        now = self._outbox.clock()
        for result_id in [r for r, deadline in self._inflight.items() if deadline <= now]:
            del self._inflight[result_id]
        room = self._max_inflight - len(self._inflight)
        if room <= 0:
            return 0
        sent = []
        for pending in self._outbox.due(room):
            if not self._send(pending.jws):
                break
            sent.append(pending.result_id)
            wait = backoff(
                pending.attempts + 1, self._outbox.ack_timeout_s, self._outbox.backoff_max_s
            )
            self._inflight[pending.result_id] = now + wait
            if pending.attempts:
                log.debug("re-sent result %s (seq %d)", pending.result_id, pending.seq)
        self._outbox.mark_sent(sent)
        return len(sent)
