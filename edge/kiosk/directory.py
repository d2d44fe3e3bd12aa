"""Central's signed staff directory on the terminal: only the staff it lists for this
terminal's site may log in at the desk (``[kiosk] staff_directory``).

The file is re-read when it changes. A missing, unsigned, foreign-site or expired
directory lets nobody in (and says why in the log): the desk fails closed.
"""

import datetime as dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from common.errors import ConfigError
from protocol import signing, staffdir, topics
from protocol.errors import MessageError, SignatureError

log = logging.getLogger(__name__)


def certificate_site(cert_file: Path) -> str:
    """The site of this terminal: its certificate's OU (the default site without one)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"mqtt.tls.cert_file: cannot read {cert_file}: {exc}") from None
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    site = str(units[0].value) if len(units) == 1 else ""
    return site if topics.SITE_RE.match(site) else topics.DEFAULT_SITE


class DirectoryFile:
    """The staff directory at ``path``, verified with central's key for ``site``."""

    def __init__(
        self,
        path: Path,
        verifier: signing.Verifier,
        site: str,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.path, self.site = path, site
        self._verifier, self._clock = verifier, clock
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._directory: staffdir.StaffDirectory | None = None
        self._problem: str | None = "not read yet"

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp is not None and stamp == self._stamp:
            return
        self._stamp, self._directory = stamp, None
        try:
            token = self.path.read_bytes()
            self._directory = staffdir.verify(
                token, self._verifier, site=self.site, now=self._clock()
            )
            self._problem = None
            log.info("staff directory: %d staff for site %s", len(self._directory.staff), self.site)
        except (OSError, MessageError, SignatureError) as exc:
            self._problem = str(exc)
            log.error("staff directory %s refused, nobody may log in: %s", self.path, exc)

    def allows(self, staff_id: str) -> bool:
        """Whether ``staff_id`` is listed in a valid directory for this site, now."""
        with self._lock:
            self._refresh()
            directory = self._directory
            if directory is None:
                return False
            if self._clock() > directory.expires_at:
                log.error("staff directory %s expired: nobody may log in", self.path)
                return False
            return directory.allows(staff_id)
