"""GA467CardReader against the GA/T 467 emulator over a real pty, with real face photos."""

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common import idnumber
from hal.card.ga467 import GA467CardReader
from hal.card.identity import CardText
from hal.emulators.ga467 import GA467Emulator, ResidentCard
from hal.errors import BackendUnavailableError, CardReadError, NoCardError

BORN = dt.date(1951, 7, 8)


def text(id_number: str | None = None) -> CardText:
    return CardText(
        id_number=id_number or idnumber.make("330106", BORN, 43),
        name="李桂兰",
        sex="F",
        nation="01",
        birth_date=BORN,
        address="浙江省杭州市西湖区文三路8号",
        authority="杭州市公安局西湖分局",
        valid_from=dt.date(2016, 1, 12),
        valid_until=None,
    )


@pytest.fixture
def face(shared_data: Path) -> Path:
    return shared_data / "faces/lfw/images/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"


@pytest.fixture
def emulator(face: Path) -> Iterator[GA467Emulator]:
    with GA467Emulator(ResidentCard.with_photo_file(text(), face)) as emu:
        yield emu


@pytest.fixture
def reader(emulator: GA467Emulator) -> Iterator[GA467CardReader]:
    with GA467CardReader(emulator.path, timeout=0.3, retries=3) as r:
        yield r


def test_reads_identity_and_jpeg_photo(reader: GA467CardReader, face: Path) -> None:
    identity = reader.poll()
    assert identity is not None
    assert identity.id_number == text().id_number
    assert identity.name == "李桂兰" and identity.sex == "F" and identity.birth_date == BORN
    assert identity.valid_until is None and identity.source == "resident-id"
    with Image.open(face) as img:
        assert np.array_equal(identity.photo, np.asarray(img.convert("RGB")))
    assert identity.photo_reason is None


def test_wlt_photo_without_decoder_still_reads(emulator: GA467Emulator) -> None:
    emulator.insert(ResidentCard(text(), bytes(range(256)) * 4))
    with GA467CardReader(emulator.path) as reader:
        identity = reader.poll()
    assert identity is not None and identity.photo is None
    assert identity.photo_reason is not None and "WLT" in identity.photo_reason


def test_no_card_and_removal(emulator: GA467Emulator, reader: GA467CardReader) -> None:
    emulator.remove()
    assert reader.poll() is None
    assert emulator.commands[-1] == "FIND"


def test_wait_sees_a_card_inserted_later(emulator: GA467Emulator, reader: GA467CardReader) -> None:
    card = ResidentCard(text(), b"")
    emulator.remove()
    threading.Timer(0.2, emulator.insert, args=(card,)).start()
    identity = reader.wait(timeout=3, interval=0.05)
    assert identity.id_number == text().id_number
    assert identity.photo_reason == "the reader delivered no photo"


def test_wait_times_out(emulator: GA467Emulator, reader: GA467CardReader) -> None:
    emulator.remove()
    with pytest.raises(NoCardError):
        reader.wait(timeout=0.3, interval=0.05)


@pytest.mark.parametrize("fault", ["checksum", "garbage", "silent"])
def test_recovers_from_a_line_fault(
    emulator: GA467Emulator, reader: GA467CardReader, fault: str
) -> None:
    emulator.faults.inject(**{fault: 2})
    identity = reader.poll()
    assert identity is not None and identity.id_number == text().id_number
    assert emulator.faults.history == [fault, fault]


def test_reader_side_checksum_error_is_retried(
    emulator: GA467Emulator, reader: GA467CardReader
) -> None:
    # garbage in front of our command: the emulator sees a bad frame and answers 0x10
    reader._serial.write(b"\xaa\xaa\xaa\x96\x69\x00\x03\x20\x01\x00")
    assert reader.poll() is not None
    assert "bad-frame" in emulator.commands


def test_persistent_corruption_is_a_clear_error(
    emulator: GA467Emulator, reader: GA467CardReader
) -> None:
    emulator.faults.inject(checksum=10)
    with pytest.raises(CardReadError, match="FIND failed: frame checksum mismatch"):
        reader.poll()


def test_slow_replies_within_timeout_are_fine(
    emulator: GA467Emulator, reader: GA467CardReader
) -> None:
    emulator.faults.inject(delay=0.1)
    assert reader.poll() is not None


def test_replies_slower_than_timeout_fail_after_retries(
    emulator: GA467Emulator, reader: GA467CardReader
) -> None:
    emulator.faults.inject(delay=1.5)
    reader.retries = 2
    start = time.monotonic()
    with pytest.raises(CardReadError, match="no reply"):
        reader.poll()
    assert time.monotonic() - start >= 2 * 0.3


def test_select_and_read_failures_are_retried(
    emulator: GA467Emulator, reader: GA467CardReader
) -> None:
    emulator.faults.inject(select_fail=1, read_fail=1)
    assert reader.poll() is not None
    assert emulator.commands.count("FIND") == 3


def test_unreadable_card_after_retries(emulator: GA467Emulator, reader: GA467CardReader) -> None:
    emulator.faults.inject(read_fail=5)
    with pytest.raises(CardReadError, match="could not be read after 3 attempts"):
        reader.poll()


def test_invalid_id_number_on_card(emulator: GA467Emulator, reader: GA467CardReader) -> None:
    good = text().id_number
    emulator.insert(ResidentCard(text(good[:17] + ("1" if good[17] == "0" else "0")), b""))
    with pytest.raises(CardReadError, match="check digit"):
        reader.poll()


def test_missing_port_is_named() -> None:
    with pytest.raises(BackendUnavailableError, match="/dev/ttyUSB77"):
        GA467CardReader("/dev/ttyUSB77")
