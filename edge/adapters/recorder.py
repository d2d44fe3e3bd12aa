"""The session's ``Recorder`` port: build the signed ``Result`` and store it durably.

:meth:`Recorder.record` is the one call a certification flow (the session, the
desk command line) makes with a :class:`~edge.session.model.Draft`: it seals any
new template to central, signs the result with the next ``seq`` and returns a
:class:`~edge.session.model.Receipt` only after the outbox has committed it.
"""

import datetime as dt
import uuid
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from edge.adapters.keys import Keys
from edge.adapters.outbox import Entry, Outbox
from edge.session.model import Draft, Receipt, describe
from protocol import messages, sealing
from protocol.errors import MessageError
from protocol.limits import MAX_RESULT_BYTES
from protocol.messages import Result

Now = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The device's current time in UTC."""
    return dt.datetime.now(dt.UTC)


class Recorder:
    """Signs drafts with the device key and stores them in the outbox."""

    def __init__(self, outbox: Outbox, keys: Keys, now: Now = utc_now) -> None:
        self._outbox = outbox
        self._keys = keys
        self._now = now

    def record(self, draft: Draft) -> Receipt:
        """Store one outcome durably; the receipt means it is on disk."""
        return self.record_many([draft])[0]

    def record_many(self, drafts: Sequence[Draft]) -> list[Receipt]:
        """Store several outcomes in one transaction (consecutive ``seq``)."""
        return self._outbox.enqueue_many([self._builder(d) for d in drafts])

    def _builder(self, draft: Draft) -> Callable[[int], Entry]:
        keys = self._keys
        sealed, vein = (
            None if clear is None else sealing.seal(clear, keys.seal_pub, kid=keys.seal_kid)
            for clear in (draft.template, draft.vein_template)
        )

        def build(seq: int) -> Entry:
            try:
                result = Result(
                    result_id=uuid.uuid4(),
                    device_id=self._outbox.device_id,
                    seq=seq,
                    device_time=self._now(),
                    retiree_id=draft.retiree_id,
                    method=draft.method,
                    decision=draft.decision,
                    channel=draft.channel,
                    match=draft.match,
                    liveness=draft.liveness,
                    assisted=draft.assisted,
                    template=sealed,
                    vein_template=vein,
                )
            except ValidationError as exc:
                raise MessageError(f"invalid result: {describe(exc)}") from None
            jws = self._keys.signer.sign(messages.encode(result))
            if len(jws) > MAX_RESULT_BYTES:
                raise MessageError(f"signed result is {len(jws)} bytes, over {MAX_RESULT_BYTES}")
            return Entry(
                result_id=str(result.result_id),
                jws=jws,
                retiree_id=result.retiree_id,
                method=result.method.value,
                decision=result.decision.value,
            )

        return build
