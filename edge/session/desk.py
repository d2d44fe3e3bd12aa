"""Assisted desk mode: staff log in with a PIN, then drive the session for the retiree at the desk.

Staff PINs live in the ``[kiosk] staff_file``, one ``staff_id:scrypt$n$r$p$salt$hash`` line each
(``hash_pin`` writes one; hashlib.scrypt, base64 salt and hash). Five wrong PINs lock a staff id
for ``LOCK_S``. Commands from the staff screen are queued and run on the session's thread.
"""

import base64
import hashlib
import hmac
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from common.errors import ConfigError

_N, _R, _P = 2**14, 8, 1
MAX_FAILURES: Final = 5
LOCK_S: Final = 300.0
Command = Literal["face", "assisted", "vein", "end"]


def hash_pin(pin: str) -> str:
    """A staff file hash for ``pin`` (scrypt, random salt)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def _check(pin: str, stored: str) -> bool:
    scheme, n, r, p, salt, digest = stored.split("$")
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(pin.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(got, base64.b64decode(digest))


MIN_PIN: Final = 4


def add_staff(path: Path, staff_id: str, pin: str) -> bool:
    """Write ``staff_id``'s PIN hash into the staff file (0600); True when it replaced one."""
    if not staff_id or any(c in staff_id for c in ":#") or staff_id != staff_id.strip():
        raise ValueError(f"staff id {staff_id!r}: use letters, digits, '-' or '_' (no ':' or '#')")
    if len(pin) < MIN_PIN or not pin.isdigit():
        raise ValueError(f"PIN: at least {MIN_PIN} digits")
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if line.partition(":")[0].strip() != staff_id]
    kept.append(f"{staff_id}:{hash_pin(pin)}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(kept) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return len(kept) == len(lines)


class StaffBook:
    """Staff ids and PIN hashes from the staff file, with a lock-out after failures."""

    def __init__(self, path: Path) -> None:
        self.hashes: dict[str, str] = {}
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"kiosk.staff_file: cannot read {path}: {exc}") from None
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.startswith("#"):
                continue
            staff_id, _, stored = line.strip().partition(":")
            if not staff_id or stored.count("$") != 5:
                raise ConfigError(
                    f"kiosk.staff_file: {path} line {number}: write 'staff_id:<hash>' "
                    "(hash with edge.session.desk.hash_pin)"
                )
            self.hashes[staff_id] = stored
        self._failures: dict[str, tuple[int, float]] = {}

    def verify(self, staff_id: str, pin: str, now: float | None = None) -> bool:
        """True when the PIN is right and the id is not locked out."""
        now = time.monotonic() if now is None else now
        count, since = self._failures.get(staff_id, (0, now))
        if count >= MAX_FAILURES and now - since < LOCK_S:
            return False
        stored = self.hashes.get(staff_id)
        if stored is not None and _check(pin, stored):
            self._failures.pop(staff_id, None)
            return True
        self._failures[staff_id] = (count + 1 if now - since < LOCK_S else 1, now)
        return False


@dataclass(frozen=True)
class Order:
    """A staff command with what it needs."""

    command: Command
    document: Literal["id_card", "ss_card", "other"] = "id_card"
    note: str = ""


class Desk:
    """Who is logged in (one staff member at a time) and the queue of their commands."""

    def __init__(self, book: StaffBook) -> None:
        self.book = book
        self.staff: str | None = None
        self.token: str | None = None
        self._orders: queue.SimpleQueue[Order] = queue.SimpleQueue()
        self._lock = threading.Lock()

    def login(self, staff_id: str, pin: str) -> str | None:
        """A session token for the staff screen, or ``None`` for a wrong PIN."""
        if not self.book.verify(staff_id, pin):
            return None
        with self._lock:
            self.staff, self.token = staff_id, secrets.token_urlsafe(24)
            return self.token

    def logout(self) -> None:
        """End desk mode (the kiosk serves retirees on their own again)."""
        with self._lock:
            self.staff = self.token = None
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
