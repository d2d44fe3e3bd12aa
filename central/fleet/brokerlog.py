"""Mosquitto's connection log, read as events for the fleet audit.

The broker config ``lifecert fleet broker-config`` writes logs every connection
(``connection_messages true``, ``log_timestamp_format %Y-%m-%dT%H:%M:%S``; the
default epoch-seconds stamps are read too, both taken as UTC). Mosquitto 2.0.11 names
no certificate when a TLS handshake fails, so a failure is tied to the address of the
connection it follows; a refused login (wrong password or client id) likewise.
"""

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

MAX_LINE = 4096

_STAMP = re.compile(r"^(?P<ts>\d{10,}|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d): (?P<msg>.*)$")
_NEW = re.compile(r"^New connection from (?P<addr>\S+):(?P<port>\d+) on port \d+\.$")
_CONNECTED = re.compile(
    r"^New client connected from (?P<addr>\S+):(?P<port>\d+) as (?P<cid>\S+) \(.*\)\.$"
)
_TAKEOVER = re.compile(r"^Client (?P<cid>\S+) already connected, closing old connection\.$")
_GONE = re.compile(r"^Client (?P<cid>\S+) (?:disconnected|has exceeded timeout)")
_TLS_FAIL = re.compile(r"^OpenSSL Error\[\d+\]: (?P<why>.*certificate verify failed.*)$")
_FAILED = re.compile(r"^Client connection from (?P<addr>\S+) failed: (?P<why>.*)$")
_REFUSED = re.compile(r"^Client <unknown> disconnected, not authori[sz]ed\.$")


class Kind(StrEnum):
    """What a log line says happened."""

    CONNECTED = "connected"
    TAKEOVER = "takeover"
    DISCONNECTED = "disconnected"
    TLS_REFUSED = "tls_refused"
    LOGIN_REFUSED = "login_refused"


@dataclass(frozen=True)
class Event:
    """One connection event: when, what, from which host, as which client id, the line."""

    at: dt.datetime
    kind: Kind
    host: str
    client_id: str
    line: str


def _time(stamp: str) -> dt.datetime | None:
    try:
        if stamp.isdigit():
            return dt.datetime.fromtimestamp(int(stamp), dt.UTC)
        return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None


def events(lines: Iterable[str]) -> Iterator[Event]:
    """The connection events in a broker log (other lines, and over-long ones, skipped)."""
    last_host = ""  # the address of the newest "New connection": what a failure belongs to
    open_hosts: dict[str, str] = {}
    for raw in lines:
        line = raw.rstrip("\n")
        match = _STAMP.match(line[:MAX_LINE])
        if match is None or (at := _time(match["ts"])) is None:
            continue
        msg = match["msg"]
        if m := _NEW.match(msg):
            last_host = m["addr"]
        elif m := _CONNECTED.match(msg):
            open_hosts[m["cid"]] = m["addr"]
            yield Event(at, Kind.CONNECTED, m["addr"], m["cid"], line)
        elif m := _TAKEOVER.match(msg):
            yield Event(at, Kind.TAKEOVER, open_hosts.get(m["cid"], ""), m["cid"], line)
        elif _REFUSED.match(msg):
            yield Event(at, Kind.LOGIN_REFUSED, last_host, "", line)
        elif m := _GONE.match(msg):
            if m["cid"] != "<unknown>":
                yield Event(at, Kind.DISCONNECTED, open_hosts.pop(m["cid"], ""), m["cid"], line)
        elif _TLS_FAIL.match(msg):
            yield Event(at, Kind.TLS_REFUSED, last_host, "", line)
        elif (m := _FAILED.match(msg)) and "certificate" in m["why"]:
            yield Event(at, Kind.TLS_REFUSED, m["addr"], "", line)
