"""PcscCardReader against the real PC/SC stack: pcscd + vsmartcard vpcd + our virtual card."""

import datetime as dt
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common import idnumber
from hal.card.pcsc import NO_PHOTO, PcscCardReader
from hal.card.sscard import SocialSecurityHolder
from hal.emulators.sscard import VirtualSocialSecurityCard
from hal.errors import BackendUnavailableError, WrongCardError
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
READER = "Virtual PCD 00 00"
BORN = dt.date(1947, 12, 9)
HOLDER = SocialSecurityHolder(
    card_number="C98765432",
    ssn=idnumber.make("510104", BORN, 71),
    name="欧阳建华",
    sex="M",
    nation="01",
    birth_date=BORN,
    valid_until=dt.date(2031, 12, 31),
)


def _virtual_reader_listed() -> bool:
    from smartcard.pcsc.PCSCExceptions import EstablishContextException
    from smartcard.System import readers

    try:
        return any(READER in str(r) for r in readers())
    except EstablishContextException:
        return False


@pytest.fixture(scope="module")
def pcscd() -> Iterator[None]:
    """A pcscd with the vpcd driver: reuse a running one, else start ``pcscd -f`` for the module."""
    pytest.importorskip(
        "smartcard", reason="pyscard is not installed (pip install 'lifecert[pcsc]')"
    )
    if shutil.which("pcscd") is None or not VPCD_DRIVER.exists():
        pytest.skip(
            "pcscd and vsmartcard-vpcd are not installed (apt install pcscd vsmartcard-vpcd)"
        )
    if _virtual_reader_listed():
        yield
        return
    proc = subprocess.Popen(
        ["pcscd", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 10
    while not _virtual_reader_listed():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            pytest.skip(f"pcscd cannot run here: {err.strip()[-300:] or 'no virtual reader'}")
        time.sleep(0.1)
    yield
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def reader(pcscd: None) -> Iterator[PcscCardReader]:
    with PcscCardReader(READER) as r:
        yield r


def _until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    wait_until(condition, timeout, "the virtual reader to change state")


@pytest.fixture
def card(reader: PcscCardReader) -> Iterator[VirtualSocialSecurityCard]:
    virtual = VirtualSocialSecurityCard(HOLDER)
    virtual.insert()
    _until(lambda: reader.poll() is not None)
    yield virtual
    virtual.remove()


def test_reads_the_holder(reader: PcscCardReader, card: VirtualSocialSecurityCard) -> None:
    identity = reader.poll()
    assert identity is not None
    assert identity.id_number == HOLDER.ssn
    assert identity.name == "欧阳建华" and identity.sex == "M" and identity.birth_date == BORN
    assert identity.card_number == "C98765432"
    assert identity.valid_until == dt.date(2031, 12, 31)
    assert identity.source == "social-security"
    assert identity.photo is None and identity.photo_reason == NO_PHOTO
    # SELECT by the application name, then READ RECORD by SFI
    assert card.apdus[-8][:5] == bytes([0x00, 0xA4, 0x04, 0x00, 15])
    assert card.apdus[-1][:4] == bytes([0x00, 0xB2, 0x0D, (6 << 3) | 4])


def test_no_card_then_removal(reader: PcscCardReader, card: VirtualSocialSecurityCard) -> None:
    card.remove()
    _until(lambda: reader.poll() is None)
    card.insert()
    _until(lambda: reader.poll() is not None)


def test_wrong_card_is_named(reader: PcscCardReader, card: VirtualSocialSecurityCard) -> None:
    card.aid = bytes.fromhex("A0000000031010")  # a payment application, not ours
    with pytest.raises(WrongCardError, match="not a social-security card"):
        reader.poll()


def test_unknown_reader_lists_the_ones_present(pcscd: None) -> None:
    with pytest.raises(BackendUnavailableError, match="Virtual PCD"):
        PcscCardReader("Acme 3000")
