"""Signed commands from central: verified, bound to this device, unexpired, never twice.

A command is carried out only if its JWS verifies with central's signing key, it names
this device, ``issued_at <= now < expires_at`` (with ``CLOCK_SKEW`` of slack), its
lifetime is at most ``protocol.fleet.MAX_COMMAND_LIFETIME``, and its ``command_id`` is not
in the seen-list (a table in ``edge.sqlite`` kept until the command would have expired):
a replayed command (the same token again, or an old one) is refused.
"""

import datetime as dt
import sqlite3
import uuid
from pathlib import Path
from typing import Final

from protocol import fleet, messages, signing
from protocol.errors import MessageError, SignatureError

CLOCK_SKEW: Final = dt.timedelta(minutes=5)


class CommandRefusedError(ValueError):
    """Why a command is not carried out (the reason goes into a ``refused`` ack)."""

    def __init__(self, reason: str, command_id: uuid.UUID | None = None) -> None:
        super().__init__(reason)
        self.command_id = command_id


class CommandGate:
    """Checks commands and remembers the ones accepted; a context manager."""

    def __init__(self, db_path: Path, device_id: str, verifier: signing.Verifier) -> None:
        self.device_id, self.verifier = device_id, verifier
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(db_path, timeout=10, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS fleet_commands_seen "
            "(command_id TEXT PRIMARY KEY, expires_at REAL NOT NULL)"
        )
        self._db.commit()

    def accept(self, token: bytes, now: dt.datetime) -> fleet.Command:
        """The command if it may be carried out (now remembered as seen); else
        ``CommandRefusedError`` with the reason (and the id, when it could be read)."""
        if len(token) > fleet.MAX_COMMAND_BYTES:
            raise CommandRefusedError(f"{len(token)} bytes, more than {fleet.MAX_COMMAND_BYTES}")
        try:
            command = messages.decode(fleet.Command, self.verifier.verify(token))
        except (SignatureError, MessageError) as exc:
            raise CommandRefusedError(f"not a command signed by central: {exc}") from None
        cid = command.command_id
        if command.device_id != self.device_id:
            raise CommandRefusedError(
                f"signed for {command.device_id}, not for {self.device_id}", cid
            )
        if command.expires_at - command.issued_at > fleet.MAX_COMMAND_LIFETIME:
            raise CommandRefusedError("valid for longer than a command may be", cid)
        if now < command.issued_at - CLOCK_SKEW:
            raise CommandRefusedError(
                f"issued in the future ({command.issued_at:%Y-%m-%dT%H:%M}Z)", cid
            )
        if now >= command.expires_at:
            raise CommandRefusedError(f"expired at {command.expires_at:%Y-%m-%dT%H:%M:%S}Z", cid)
        with self._db:
            self._db.execute(
                "DELETE FROM fleet_commands_seen WHERE expires_at < ?",
                ((now - CLOCK_SKEW).timestamp(),),
            )
            try:
                self._db.execute(
                    "INSERT INTO fleet_commands_seen VALUES (?, ?)",
                    (str(cid), command.expires_at.timestamp()),
                )
            except sqlite3.IntegrityError:
                raise CommandRefusedError("already received (replayed)", cid) from None
        return command

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "CommandGate":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
