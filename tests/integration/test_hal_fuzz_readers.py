"""Both serial backends fed random bytes by a peer over a real pty: they never crash or hang."""

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hal.card.ga467 import GA467CardReader
from hal.card.ga467_frames import Status, response
from hal.emulators.pty import PtyPeer
from hal.errors import CardReadError, VeinSensorError
from hal.vein.serialport import SerialVeinSensor


class RandomPeer(PtyPeer):
    """Answers every write with the next of ``replies`` (cycling)."""

    def __init__(self, replies: list[bytes]) -> None:
        super().__init__()
        self.replies = replies or [b""]
        self.count = 0

    def handle(self, data: bytes) -> None:
        reply = self.replies[self.count % len(self.replies)]
        self.count += 1
        if reply:
            self.send(reply)


FUZZ = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_card_reader_on_random_replies(replies: list[bytes]) -> None:
    with RandomPeer(replies) as peer, GA467CardReader(peer.path, timeout=0.05, retries=2) as r:
        start = time.monotonic()
        try:
            result = r.poll()
        except CardReadError:
            result = None
        assert result is None  # random bytes are never a valid card
        assert time.monotonic() - start < 5


@FUZZ
@given(garbage=st.binary(min_size=1, max_size=200))
def test_card_reader_resynchronises_after_garbage(garbage: bytes) -> None:
    """Garbage before a valid 'no card' reply: the reader still hears 'no card'."""
    peer = RandomPeer([garbage + response(Status.NO_CARD)])
    with peer, GA467CardReader(peer.path, timeout=0.2, retries=3) as reader:
        assert reader.poll() is None


@FUZZ
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_vein_sensor_on_random_replies(replies: list[bytes]) -> None:
    with RandomPeer(replies) as peer:
        start = time.monotonic()
        with pytest.raises(VeinSensorError):
            SerialVeinSensor(peer.path, timeout=0.05, retries=2)
        assert time.monotonic() - start < 5
