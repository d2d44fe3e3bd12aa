"""Assisted desk mode: staff log in with a PIN, then drive the session for the retiree at the desk.

``Desk`` is the session's ``Desk`` port (``edge.session.ports``) for the kiosk page.

With ``[kiosk] staff_directory`` set, only the central staff that central's signed directory
lists for this terminal's site may log in (``edge.kiosk.directory``); the PIN stays the
local second factor. Staff PINs live in the ``[kiosk] staff_file``, one
``staff_id:scrypt$n$r$p$salt$hash`` line each
(``hash_pin`` writes one; hashlib.scrypt, base64 salt and hash). An unknown staff id costs the
same scrypt as a wrong PIN, so timing does not tell which ids exist. Wrong PINs are counted and
locked out durably by ``edge.kiosk.lockout.PinLockout``. Commands from the staff screen are
queued and run on the session's thread.
"""

import base64
import hashlib
import hmac
import queue
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from common.errors import ConfigError
from edge.kiosk.directory import DirectoryFile
from edge.kiosk.lockout import PinLockout
from edge.session.model import Order

_N, _R, _P = 2**14, 8, 1


def hash_pin(pin: str) -> str:
    """A staff file hash for ``pin`` (scrypt, random salt)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


@dataclass(frozen=True)
class _Hash:
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, stored: str) -> "_Hash":
        """Salt and digest of a ``hash_pin`` string (this version's parameters); else ValueError."""
        scheme, n, r, p, salt, digest = stored.split("$")
        if (scheme, n, r, p) != ("scrypt", str(_N), str(_R), str(_P)):
            raise ValueError(f"not a scrypt hash with n={_N}, r={_R}, p={_P}")
        return cls(base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True))

    def matches(self, pin: str) -> bool:
        got = hashlib.scrypt(pin.encode(), salt=self.salt, n=_N, r=_R, p=_P)
        return hmac.compare_digest(got, self.digest)


MIN_PIN: Final = 4
MAX_PIN: Final = 64
MAX_ID: Final = 64


def add_staff(path: Path, staff_id: str, pin: str) -> bool:
    """Write ``staff_id``'s PIN hash into the staff file (0600); True when it replaced one."""
    if (
        not staff_id
        or len(staff_id) > MAX_ID
        or any(c in staff_id for c in ":#")
        or staff_id != staff_id.strip()
    ):
        raise ValueError(
            f"staff id {staff_id!r}: at most {MAX_ID} letters, digits, '-' or '_' (no ':' or '#')"
        )
    if not MIN_PIN <= len(pin) <= MAX_PIN or not pin.isdigit():
        raise ValueError(f"PIN: {MIN_PIN} to {MAX_PIN} digits")
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if line.partition(":")[0].strip() != staff_id]
    kept.append(f"{staff_id}:{hash_pin(pin)}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(kept) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return len(kept) == len(lines)


class StaffBook:
    """Staff ids and PIN hashes from the staff file."""

    def __init__(self, path: Path) -> None:
        self.hashes: dict[str, _Hash] = {}
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"kiosk.staff_file: cannot read {path}: {exc}") from None
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.startswith("#"):
                continue
            staff_id, _, stored = line.strip().partition(":")
            try:
                if not staff_id:
                    raise ValueError("no staff id")
                self.hashes[staff_id] = _Hash.parse(stored)
            except ValueError:
                raise ConfigError(
                    f"kiosk.staff_file: {path} line {number}: write 'staff_id:<hash>' "
                    "(lifecert-edge staff add, or edge.kiosk.desk.hash_pin)"
                ) from None
        self._decoy = _Hash.parse(hash_pin(secrets.token_hex(16)))

    def known(self, staff_id: str) -> bool:
        """True when ``staff_id`` is in the staff file."""
        return staff_id in self.hashes

    def verify(self, staff_id: str, pin: str) -> bool:
        """True when ``pin`` is ``staff_id``'s; an unknown id costs the same scrypt."""
        stored = self.hashes.get(staff_id)
        ok = (stored or self._decoy).matches(pin)
        return ok and stored is not None


@dataclass(frozen=True)
class Login:
    """A log-in's outcome: a token, or none and how long the id (or every id) is locked."""

    token: str | None
    retry_after: float = 0.0


class Desk:
    """Who is logged in (one staff member at a time) and the queue of their commands."""

    def __init__(
        self, book: StaffBook, lockout: PinLockout, directory: DirectoryFile | None = None
    ) -> None:
        self.book, self.lockout, self.directory = book, lockout, directory
        self.staff: str | None = None
        self.token: str | None = None
        self._orders: queue.SimpleQueue[Order] = queue.SimpleQueue()
        self._lock = threading.Lock()

    def login(self, staff_id: str, pin: str) -> Login:
        """A session token for the staff screen, unless the PIN is wrong, the id locked, or
        (with central's staff directory) the id not listed for this site."""
        listed = self.directory is None or self.directory.allows(staff_id)
        verdict = self.lockout.attempt(
            staff_id,
            self.book.known(staff_id) and listed,
            lambda: self.book.verify(staff_id, pin) and listed,
        )
        if not verdict.ok:
            return Login(None, verdict.retry_after)
        with self._lock:
            self.staff, self.token = staff_id, secrets.token_urlsafe(24)
            return Login(self.token)

    def logout(self) -> None:
        """End desk mode (the kiosk serves retirees on their own again)."""
        with self._lock:
            staff, self.staff, self.token = self.staff, None, None
        if staff is not None:
            self.lockout.audit("staff_logout", staff)
        self._orders.put(Order("end"))

    def allowed(self, token: str | None) -> bool:
        """True when ``token`` is the logged-in staff member's."""
        with self._lock:
            return bool(token and self.token and hmac.compare_digest(token, self.token))

    def order(self, order: Order) -> None:
        """Queue a command for the session thread."""
        self._orders.put(order)

    def next(self, timeout: float) -> Order | None:
        """The next command, or ``None`` after ``timeout`` seconds."""
        try:
            return self._orders.get(timeout=timeout)
        except queue.Empty:
            return None
