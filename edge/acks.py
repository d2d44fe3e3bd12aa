"""Central's acks: trusted only when signed by central and addressed to this device."""

from common.errors import LifecertError
from protocol import messages
from protocol.errors import MessageError
from protocol.limits import MAX_ACK_BYTES
from protocol.messages import Ack, AckBatch
from protocol.signing import Verifier


class ForeignAckError(LifecertError, ValueError):
    """A verified ack that is not for this terminal."""


def verify(payload: bytes, verifier: Verifier, device_id: str) -> tuple[Ack, ...]:
    """The acks inside ``payload`` (an ``AckBatch``, JWS compact by central's signing key).

    Raises ``SignatureError`` for a forged or tampered batch, ``MessageError``
    for a malformed one, ``ForeignAckError`` when it names another device.
    """
    if len(payload) > MAX_ACK_BYTES:
        raise MessageError(f"ack is {len(payload)} bytes, over {MAX_ACK_BYTES}")
    batch = messages.decode(AckBatch, verifier.verify(payload))
    if batch.device_id != device_id:
        raise ForeignAckError(
            f"acks for {len(batch.acks)} result(s) name device {batch.device_id!r}"
        )
    return batch.acks
