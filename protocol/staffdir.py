"""The staff directory: which central staff may log in at a terminal's desk, per site.

Central signs it (JWS ES256 with its signing key, the one terminals already verify acks
with) for one site, for a few days; the terminal accepts it only for its own site (its
certificate's OU), within its validity, and lets only the staff it lists log in. The
``kind`` field keeps a signed ack or reply from passing for a directory.
"""

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from protocol import signing, topics
from protocol.errors import MessageError
from protocol.messages import Text, UtcDateTime, _Strict, decode, encode

MAX_STAFF = 5000
MAX_BYTES = 1024 * 1024
STAFF_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"

Site = Annotated[str, AfterValidator(topics.check_site)]


class DirectoryEntry(_Strict):
    """One staff member allowed at the site."""

    staff_id: str = Field(pattern=STAFF_ID_PATTERN)
    name: Text = Field(min_length=1, max_length=100)


class StaffDirectory(_Strict):
    """The staff allowed at one site, signed by central."""

    kind: Literal["staff_directory"]  # required: no other signed message has it
    v: Literal[1] = 1
    site: Site
    issued_at: UtcDateTime
    expires_at: UtcDateTime
    staff: tuple[DirectoryEntry, ...] = Field(max_length=MAX_STAFF)

    def allows(self, staff_id: str) -> bool:
        """Whether ``staff_id`` may log in at the site's desks."""
        return any(entry.staff_id == staff_id for entry in self.staff)


class DirectoryError(MessageError):
    """A staff directory that is not for this terminal, out of date, or not central's."""


def sign(directory: StaffDirectory, signer: signing.Signer) -> str:
    """The directory as a JWS compact string."""
    return signer.sign(encode(directory))


def verify(
    token: bytes, verifier: signing.Verifier, *, site: str, now: dt.datetime
) -> StaffDirectory:
    """The directory in ``token`` if central signed it for ``site`` and it is valid ``now``."""
    if len(token) > MAX_BYTES:
        raise DirectoryError(f"staff directory larger than {MAX_BYTES} bytes")
    directory = decode(StaffDirectory, verifier.verify(token.strip()))
    if directory.site != site:
        raise DirectoryError(f"staff directory is for site {directory.site!r}, not {site!r}")
    if not directory.issued_at - dt.timedelta(minutes=5) <= now <= directory.expires_at:
        raise DirectoryError(
            f"staff directory valid {directory.issued_at:%Y-%m-%d %H:%M} to "
            f"{directory.expires_at:%Y-%m-%d %H:%M} UTC, not now: get a fresh one from central"
        )
    return directory
