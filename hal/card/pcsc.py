"""Social-security card reader over PC/SC (pyscard, imported only here)."""

import datetime as dt
import logging
from typing import Any

from common import idnumber
from hal.card import CardReader
from hal.card.identity import Identity
from hal.card.sscard import AID, OK, RECORDS, read_record, select_aid, unbcd
from hal.errors import BackendUnavailableError, CardReadError, WrongCardError

log = logging.getLogger(__name__)

NO_PHOTO = "social-security cards carry no photo readable without the issuer's keys"
# PC/SC codes meaning "no card ready right now" (removed, or inserted but not powered yet)
_NOT_READY = {0x8010000C, 0x80100067, 0x80100069}


class PcscCardReader(CardReader):
    """The first PC/SC reader whose name contains ``reader`` (any reader when empty)."""

    def __init__(self, reader: str = "") -> None:
        try:
            from smartcard.Exceptions import CardConnectionException, NoCardException
            from smartcard.pcsc.PCSCExceptions import EstablishContextException
            from smartcard.System import readers
        except ImportError:
            raise BackendUnavailableError(
                "card backend 'pcsc' needs the Python package pyscard "
                "(pip install 'lifecert[pcsc]'; it builds with libpcsclite-dev and swig)"
            ) from None
        self._errors = (NoCardException, CardConnectionException)
        try:
            available = readers()
        except EstablishContextException as exc:
            raise BackendUnavailableError(
                f"card backend 'pcsc': the PC/SC daemon is not reachable ({exc}): "
                "start pcscd (apt install pcscd)"
            ) from None
        matching = [r for r in available if reader in str(r)]
        if not matching:
            names = ", ".join(str(r) for r in available) or "none"
            raise BackendUnavailableError(
                f"card backend 'pcsc': no reader matching {reader!r} (readers: {names}); "
                "plug the reader in or fix hal.ss_card.reader"
            )
        self.reader = matching[0]
        self.name = str(self.reader)

    def _transmit(self, conn: Any, apdu: list[int]) -> tuple[bytes, int]:
        data, sw1, sw2 = conn.transmit(apdu)
        if sw1 == 0x6C:  # wrong Le: repeat with the length the card asks for
            data, sw1, sw2 = conn.transmit([*apdu[:4], sw2])
        while sw1 == 0x61:  # more data waiting: GET RESPONSE
            more, sw1, sw2 = conn.transmit([0x00, 0xC0, 0x00, 0x00, sw2])
            data = list(data) + list(more)
        return bytes(data), (sw1 << 8) | sw2

    def poll(self) -> Identity | None:
        no_card, failed = self._errors
        conn = self.reader.createConnection()
        try:
            conn.connect()
        except no_card:
            conn.release()
            return None
        except failed as exc:
            conn.release()
            if getattr(exc, "hresult", None) in _NOT_READY:
                return None
            raise CardReadError(f"{self.name}: cannot talk to the card: {exc}") from None
        try:
            return self._read(conn)
        except failed as exc:
            raise CardReadError(f"{self.name}: card removed or unreadable: {exc}") from None
        finally:
            try:
                conn.disconnect()
                conn.release()
            except failed:
                log.debug("disconnect after read failed", exc_info=True)

    def _read(self, conn: Any) -> Identity:
        _, sw = self._transmit(conn, select_aid())
        if sw != OK:
            raise WrongCardError(
                f"the card is not a social-security card (no application "
                f"{AID.decode('gbk')!r}: status {sw:04X})"
            )
        fields: dict[str, bytes] = {}
        for tag, (sfi, name) in RECORDS.items():
            record, sw = self._transmit(conn, read_record(tag, sfi))
            if sw != OK or len(record) < 2 or record[0] != tag or record[1] != len(record) - 2:
                raise CardReadError(f"record {tag:02X} of EF{sfi:02X}: status {sw:04X}")
            fields[name] = record[2:]
        return self._identity(fields)

    def _identity(self, fields: dict[str, bytes]) -> Identity:
        try:
            ssn = idnumber.validate(fields["ssn"].decode("ascii"))
            name = fields["name"].decode("gbk").strip(" \x00")
            birth = dt.datetime.strptime(unbcd(fields["birth_date"]), "%Y%m%d").date()
            until_text = unbcd(fields["valid_until"])
            valid_until = (
                None
                if until_text == "99991231"
                else dt.datetime.strptime(until_text, "%Y%m%d").date()
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise CardReadError(f"social-security card data is malformed: {exc}") from None
        sex = {b"1": "M", b"2": "F"}.get(fields["sex"])
        if sex is None:
            raise CardReadError(f"social-security card sex code {fields['sex']!r} is invalid")
        return Identity(
            id_number=ssn,
            name=name,
            sex=sex,
            nation=unbcd(fields["nation"]),
            birth_date=birth,
            source="social-security",
            valid_until=valid_until,
            card_number=fields["card_number"].decode("ascii", "replace").strip(),
            photo_reason=NO_PHOTO,
        )
