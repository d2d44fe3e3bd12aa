"""The ingest core: verify a signed result and apply it exactly once.

Pure of MQTT: it takes ``(topic, payload, received_at)`` and a database engine,
and returns what happened plus the ack (if any) to send. A batch runs in one
transaction with a SAVEPOINT per message, so one bad message never aborts the
others. Every refused message lands in ``quarantine`` with a reason code.

Which refusals are acked (docs/design.md): a result whose signature verified
but that breaks a rule gets a ``rejected`` ack so the terminal stops re-sending;
a message we cannot attribute to a device (bad signature, unknown key, revoked
or mismatched identity, malformed) gets none.
"""

import datetime as dt
import hashlib
import json
import logging
import uuid
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from central.certification.devices import DeviceTrust, Standing
from central.certification.policy import certified_until
from central.certification.settings import Policy
from central.certification.versions import PolicyBook
from central.staff.tables import staff as _staff
from central.store import schema
from central.store.db import StoreBusyError, StoreError, is_transient
from common.errors import LifecertError
from protocol import messages, signing, topics
from protocol.errors import MessageError, SignatureError
from protocol.limits import MAX_RESULT_BYTES
from protocol.messages import Ack, AckStatus, Channel, Decision, Method, Result

log = logging.getLogger(__name__)

QUARANTINE_HEAD_BYTES: Final = 2048
"""How much of a refused payload is kept (a sealed template stays sealed: we never open it);
``internal_error`` keeps the whole payload, for ``replay``."""


# Statements built once (compiled once per engine): this is the hot path.
_res, _ret, _q = schema.results, schema.retirees, schema.quarantine
_CLASH = sa.select(_res.c.result_id, _res.c.device_id, _res.c.seq).where(
    sa.or_(
        _res.c.result_id == sa.bindparam("b_result"),
        sa.and_(_res.c.device_id == sa.bindparam("b_device"), _res.c.seq == sa.bindparam("b_seq")),
    )
)
_EXTEND = (
    _ret.update()
    .where(_ret.c.id_number == sa.bindparam("b_retiree"))
    .values(certified_until=sa.bindparam("b_until"), updated_at=sa.bindparam("b_at"))
)
_BATCH_RESULTS = sa.select(_res.c.result_id, _res.c.device_id, _res.c.seq).where(
    sa.or_(
        _res.c.result_id.in_(sa.bindparam("b_results", expanding=True)),
        sa.tuple_(_res.c.device_id, _res.c.seq).in_(sa.bindparam("b_pairs", expanding=True)),
    )
)
_BATCH_RETIREES = (
    sa.select(_ret.c.id_number, _ret.c.certified_until, _ret.c.birth_date, _ret.c.status)
    .where(_ret.c.id_number.in_(sa.bindparam("b_retirees", expanding=True)))
    .order_by(_ret.c.id_number)
    .with_for_update()
)
_INSERT_RESULT = _res.insert()
_LAST_PASS = (
    sa.select(_res.c.method)
    .where(_res.c.retiree_id == sa.bindparam("b_retiree"), _res.c.applied)
    .order_by(_res.c.device_time.desc())
    .limit(1)
)
_STAFF_SITES = sa.select(_staff.c.staff_id, _staff.c.sites).where(
    _staff.c.staff_id.in_(sa.bindparam("b_staff", expanding=True)), _staff.c.active
)
_INSERT_FLAG = schema.fraud_flags.insert()
_FLAGGED = sa.select(schema.fraud_flags.c.id).where(
    schema.fraud_flags.c.result_id == sa.bindparam("b_result")
)
INACTIVE: Final = (schema.RetireeStatus.DECEASED.value, schema.RetireeStatus.TERMINATED.value)
"""A pass for a retiree in one of these statuses certifies nothing (refused, and flagged)."""
_INSERT_EVENT = schema.events.insert()
_INSERT_QUARANTINE = _q.insert()
_QUARANTINED = (
    sa.select(_q.c.id)
    .where(_q.c.result_id == sa.bindparam("b_result"), _q.c.reason == sa.bindparam("b_reason"))
    .limit(1)
)


class ReplayError(LifecertError, ValueError):
    """A quarantined message that cannot be replayed; the message says why."""


class Reason(StrEnum):
    """Why a message was refused (the ``quarantine.reason`` codes)."""

    OVERSIZE = "oversize"
    BAD_TOPIC = "bad_topic"
    MALFORMED = "malformed"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_KID = "unknown_kid"
    REVOKED_DEVICE = "revoked_device"
    EXPIRED_DEVICE = "expired_device"
    IDENTITY_MISMATCH = "identity_mismatch"
    BAD_SIGNATURE = "bad_signature"
    SCHEMA = "schema"
    RESULT_ID_CONFLICT = "result_id_conflict"
    SEQ_REUSED = "seq_reused"
    FUTURE_TIME = "future_time"
    TOO_OLD = "too_old"
    UNKNOWN_RETIREE = "unknown_retiree"
    RETIREE_INACTIVE = "retiree_inactive"
    UNKNOWN_STAFF = "unknown_staff"
    STAFF_NOT_AT_SITE = "staff_not_at_site"
    WRONG_CHANNEL = "wrong_channel"
    NO_PHONE_CODE = "no_phone_code"
    INTERNAL_ERROR = "internal_error"


class Status(StrEnum):
    """What happened to one message."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    QUARANTINED = "quarantined"


@dataclass(frozen=True)
class Inbound:
    """One message as received from the broker."""

    topic: str
    payload: bytes
    received_at: dt.datetime


@dataclass(frozen=True)
class Outcome:
    """The result of ingesting one message; ``ack`` is what to send to ``ack.device_id``."""

    status: Status
    reason: Reason | None = None
    detail: str = ""
    ack: Ack | None = None


@dataclass(frozen=True)
class _Verified:
    msg: Inbound
    result: Result
    kid: str
    site: str = topics.DEFAULT_SITE  # the device certificate's OU


@dataclass(frozen=True)
class _Refused:
    msg: Inbound
    reason: Reason
    detail: str
    device_id: str | None = None
    kid: str | None = None
    result_id: uuid.UUID | None = None
    ack_to: str | None = None


@dataclass
class _Snapshot:
    """What a batch's transaction knows of the results and retirees it touches.

    Read once per batch (retiree rows locked, in ID order) and kept current as the
    batch applies results, so each message needs no lookups of its own.
    """

    results: dict[uuid.UUID, str]
    seqs: dict[tuple[str, int], uuid.UUID]
    retirees: dict[str, dt.date | None]
    people: dict[str, tuple[dt.date, str]] = field(default_factory=dict)  # birth date, status
    last_pass: dict[str, str] = field(default_factory=dict)  # method of the batch's last pass
    staff: dict[str, frozenset[str]] = field(default_factory=dict)  # active staff: their sites

    @classmethod
    def read(cls, conn: Connection, items: Sequence["_Verified"]) -> "_Snapshot":
        snap = cls({}, {}, {})
        if not items:
            return snap
        rows = conn.execute(
            _BATCH_RESULTS,
            {
                "b_results": sorted({i.result.result_id for i in items}),
                "b_pairs": sorted({(i.result.device_id, i.result.seq) for i in items}),
            },
        )
        for row in rows:
            snap.note(row.result_id, row.device_id, row.seq)
        ids = sorted({i.result.retiree_id for i in items})
        for person in conn.execute(_BATCH_RETIREES, {"b_retirees": ids}):
            snap.retirees[person.id_number] = person.certified_until
            snap.people[person.id_number] = (person.birth_date, person.status)
        if named := sorted({i.result.assisted.staff_id for i in items if i.result.assisted}):
            for member in conn.execute(_STAFF_SITES, {"b_staff": named}):
                snap.staff[member.staff_id] = frozenset(member.sites or ())
        return snap

    def note(self, result_id: uuid.UUID, device_id: str, seq: int) -> None:
        self.results[result_id] = device_id
        self.seqs[(device_id, seq)] = result_id


class _Writes:
    """A batch's writes: executed at once (careful) or gathered for one flush (fast)."""

    def __init__(self, conn: Connection, deferred: bool) -> None:
        self.conn = conn
        self.deferred = deferred
        self.results: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.extends: dict[str, dict[str, Any]] = {}

    def apply(
        self, until: dict[str, Any] | None, result: dict[str, Any], events: list[dict[str, Any]]
    ) -> None:
        """Extend a retiree's certification (if ``until``), store the result and its events."""
        if not self.deferred:
            if until is not None:
                self.conn.execute(_EXTEND, until)
            self.conn.execute(_INSERT_RESULT, result)
            self.conn.execute(_INSERT_EVENT, events)
            return
        if until is not None:
            self.extends[until["b_retiree"]] = until  # the batch's last value wins
        self.results.append(result)
        self.events += events

    def flush(self) -> None:
        """Execute what was gathered: one statement per table for the whole batch."""
        if self.extends:
            self.conn.execute(_EXTEND, list(self.extends.values()))
        if self.results:
            self.conn.execute(_INSERT_RESULT, self.results)
        if self.events:
            self.conn.execute(_INSERT_EVENT, self.events)
        self.results, self.events, self.extends = [], [], {}


def _loose_result_id(body: bytes) -> uuid.UUID | None:
    """The ``result_id`` of a verified but invalid payload, if one can be read, to ack it."""
    try:
        data = json.loads(body)
        return uuid.UUID(str(data["result_id"])) if isinstance(data, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


MobileGate = Callable[[Connection, Result], str | None]


class Ingestor:
    """Verifies results against the fleet's devices and applies them to the store."""

    def __init__(
        self,
        engine: Engine,
        trust: DeviceTrust,
        policy: Policy,
        root: str = topics.ROOT,
        remote_devices: frozenset[str] = frozenset(),
        mobile_gate: MobileGate | None = None,
        book: PolicyBook | None = None,
    ) -> None:
        """``remote_devices``: the remote terminals (``[phone] remote_devices``), the only
        devices whose results may say channel ``mobile``, and which may say nothing else;
        ``mobile_gate`` says why a ``mobile`` result must be refused (``central.channels``:
        no one-time code checked for it), or ``None``. ``book``: the versioned policy
        (``policy_versions``); a pass's validity and the assisted review rules are those in
        force on its date (``policy`` alone without it)."""
        self.engine = engine
        self.book = book
        self.remote_devices = remote_devices
        self.mobile_gate = mobile_gate
        self.trust = trust
        self.policy = policy
        self.root = root
        self._zone = zoneinfo.ZoneInfo(policy.timezone)

    # -- verification (no database) -------------------------------------------------------

    def verify(self, msg: Inbound) -> _Verified | _Refused:
        """Check size, topic, header, device, signature, schema and identities."""
        if len(msg.payload) > MAX_RESULT_BYTES:
            return _Refused(msg, Reason.OVERSIZE, f"{len(msg.payload)} bytes > {MAX_RESULT_BYTES}")
        try:
            topic_device, kind = topics.parse(msg.topic, self.root)
        except ValueError as exc:
            return _Refused(msg, Reason.BAD_TOPIC, str(exc))
        if kind != "result":
            return _Refused(msg, Reason.BAD_TOPIC, f"not a result topic: {kind}", topic_device)
        try:
            kid = str(signing.unverified_header(msg.payload)["kid"])
        except SignatureError as exc:
            return _Refused(msg, Reason.MALFORMED, str(exc), topic_device)
        device = self.trust.by_kid(kid)
        if device is None:
            if self.trust.is_enrolled(topic_device):
                return _Refused(
                    msg, Reason.UNKNOWN_KID, "no enrolled certificate", topic_device, kid
                )
            return _Refused(msg, Reason.UNKNOWN_DEVICE, "device not enrolled", topic_device, kid)
        if device.device_id != topic_device:
            return _Refused(
                msg,
                Reason.IDENTITY_MISMATCH,
                f"signed by {device.device_id}, published on {topic_device}'s topic",
                topic_device,
                kid,
            )
        try:
            body = device.verifier.verify(msg.payload)
        except SignatureError as exc:
            return _Refused(msg, Reason.BAD_SIGNATURE, str(exc), topic_device, kid)
        try:
            result = messages.decode(Result, body)
        except MessageError as exc:
            rid = _loose_result_id(body)
            return _Refused(
                msg, Reason.SCHEMA, str(exc), topic_device, kid, rid, topic_device if rid else None
            )
        if result.device_id != device.device_id:
            return _Refused(
                msg,
                Reason.IDENTITY_MISMATCH,
                f"payload names {result.device_id}, certificate is {device.device_id}",
                topic_device,
                kid,
                result.result_id,
            )
        standing = device.standing(self.trust.revoked, msg.received_at)
        if standing is not Standing.TRUSTED:
            # Signed while the device was trusted, perhaps, but queued past its revocation
            # or expiry: kept for staff with what it says, and acked so it is not re-sent.
            reason = (
                Reason.REVOKED_DEVICE if standing is Standing.REVOKED else Reason.EXPIRED_DEVICE
            )
            detail = (
                f"certificate {standing.value}: {result.decision.value} by {result.method.value} "
                f"for retiree {result.retiree_id} at {result.device_time:%Y-%m-%dT%H:%M:%SZ}"
            )
            return _Refused(msg, reason, detail, topic_device, kid, result.result_id, topic_device)
        remote = device.device_id in self.remote_devices
        if (result.channel is Channel.MOBILE) != remote:
            detail = (
                f"channel {result.channel.value} from {'a remote' if remote else 'a'} terminal "
                "([phone] remote_devices): only remote terminals certify by phone, and only that"
            )
            return _Refused(
                msg, Reason.WRONG_CHANNEL, detail, topic_device, kid, result.result_id, topic_device
            )
        return _Verified(msg, result, kid, device.site)

    def _verify_safely(self, msg: Inbound) -> "_Verified | _Refused":
        """``verify``, with any exception (a bug, a library surprise) as ``internal_error``."""
        try:
            return self.verify(msg)
        except Exception as exc:
            log.exception("internal error verifying a message from %s", _printable(msg.topic))
            return _Refused(msg, Reason.INTERNAL_ERROR, f"verify: {type(exc).__name__}: {exc}")

    def replay(self, quarantine_id: int) -> Outcome:
        """Ingest again a message quarantined with ``internal_error`` (kept whole), once the
        cause is fixed: judged as of when it first arrived; applying it twice is harmless."""
        q = schema.quarantine
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(q).where(q.c.id == quarantine_id)).first()
        if row is None:
            raise ReplayError(f"no quarantined message {quarantine_id}: see `quarantine list`")
        if row.reason != Reason.INTERNAL_ERROR.value:
            raise ReplayError(
                f"message {quarantine_id} was refused for {row.reason!r}, which a replay would "
                "not change; only internal_error messages can be replayed"
            )
        payload = bytes(row.payload_head)
        if len(payload) != row.payload_size:
            raise ReplayError(f"message {quarantine_id} was not kept whole: cannot replay it")
        return self.apply(Inbound(row.topic, payload, row.received_at))

    # -- application (one transaction) ----------------------------------------------------

    def apply(self, msg: Inbound) -> Outcome:
        """Ingest one message in its own transaction."""
        return self.apply_batch([msg])[0]

    def apply_batch(self, batch: Sequence[Inbound]) -> list[Outcome]:
        """Ingest ``batch`` in one transaction; outcomes in order.

        First the fast way (writes gathered, one statement per table); if anything goes
        wrong (a race with another consumer, a bug) the transaction is rolled back and
        the batch is applied again with a SAVEPOINT per message.

        Raises ``StoreBusyError`` (nothing committed; retry the batch) on a transient
        database problem and ``StoreError`` when the database is unusable.
        """
        checked = [self._verify_safely(m) for m in batch]
        # A stable lock order (retiree, result) keeps concurrent consumers from deadlocking.
        order = sorted(
            range(len(checked)),
            key=lambda i: (
                (0, checked[i].result.retiree_id, str(checked[i].result.result_id))  # type: ignore[union-attr]
                if isinstance(checked[i], _Verified)
                else (1, "", "")
            ),
        )
        try:
            return self._run_batch(checked, order, careful=False)
        except Exception:  # a race, a bug, or one message the database refuses: go carefully
            log.debug("fast path failed; applying the batch message by message", exc_info=True)
        try:
            return self._run_batch(checked, order, careful=True)
        except DBAPIError as exc:
            if is_transient(exc):
                raise StoreBusyError(f"database busy, batch not applied: {exc.orig}") from None
            log.warning("batch of %d failed as a whole (%s); isolating", len(batch), exc.orig)
        except Exception:
            log.exception("batch of %d failed as a whole; isolating its messages", len(batch))
        return [self._isolated(item) for item in checked]

    def _isolated(self, item: "_Verified | _Refused") -> Outcome:
        """One message in a transaction of its own; if it still fails, it alone is quarantined.

        If even the quarantine row cannot be written, the database (not the message) is
        the problem: ``StoreError``, and the batch is retried as a whole later.
        """
        try:
            return self._run_batch([item], [0], careful=True)[0]
        except DBAPIError as exc:
            if is_transient(exc):
                raise StoreBusyError(f"database busy, batch not applied: {exc.orig}") from None
            refused = _failed(item, exc)
        except Exception as exc:
            refused = _failed(item, exc)
        try:
            with self.engine.begin() as conn:
                return self._quarantine(conn, refused)
        except DBAPIError as exc:
            cls = StoreBusyError if is_transient(exc) else StoreError
            raise cls(f"database error, batch not applied: {exc.orig}") from None

    def _run_batch(
        self, checked: list["_Verified | _Refused"], order: list[int], careful: bool
    ) -> list[Outcome]:
        """One transaction. Fast: writes gathered and flushed once, any error aborts it all.
        Careful: a SAVEPOINT per message, so one bad message never aborts the others."""
        outcomes: list[Outcome | None] = [None] * len(checked)
        with self.engine.begin() as conn:
            snap = _Snapshot.read(conn, [c for c in checked if isinstance(c, _Verified)])
            writes = _Writes(conn, deferred=not careful)
            for i in order:
                item = checked[i]
                if careful:
                    outcomes[i] = self._one(conn, item, snap, writes)
                elif isinstance(item, _Refused):
                    outcomes[i] = self._quarantine(conn, item)
                else:
                    outcomes[i] = self._apply(conn, item, snap, writes)
            writes.flush()
        return [o for o in outcomes if o is not None]

    def _one(
        self, conn: Connection, item: _Verified | _Refused, snap: _Snapshot, writes: "_Writes"
    ) -> Outcome:
        for attempt in range(2):
            try:
                with conn.begin_nested():
                    if isinstance(item, _Refused):
                        return self._quarantine(conn, item)
                    if attempt:
                        self._reread(conn, item.result, snap)
                    return self._apply(conn, item, snap, writes)
            except DBAPIError as exc:
                if isinstance(exc, IntegrityError) and not attempt:
                    continue  # another consumer committed the same result meanwhile: re-check
                if is_transient(exc):
                    raise
                failed = _failed(item, exc)
            except Exception as exc:  # a bug must not kill the batch or the consumer
                failed = _failed(item, exc)
            with conn.begin_nested():
                return self._quarantine(conn, failed)
        raise AssertionError("unreachable")

    @staticmethod
    def _reread(conn: Connection, r: Result, snap: _Snapshot) -> None:
        """Refresh ``snap`` for one result after a concurrent consumer's commit got in first."""
        params = {"b_result": r.result_id, "b_device": r.device_id, "b_seq": r.seq}
        for row in conn.execute(_CLASH, params):
            snap.note(row.result_id, row.device_id, row.seq)

    def _apply(
        self, conn: Connection, item: _Verified, snap: _Snapshot, writes: "_Writes"
    ) -> Outcome:
        r, msg = item.result, item.msg
        owner = snap.results.get(r.result_id)
        if owner is not None:
            if owner == r.device_id:
                return Outcome(
                    Status.DUPLICATE,
                    ack=Ack(
                        result_id=r.result_id,
                        device_id=r.device_id,
                        status=AckStatus.DUPLICATE,
                        certified_until=snap.retirees.get(r.retiree_id),
                    ),
                )
            return self._reject(
                conn, item, Reason.RESULT_ID_CONFLICT, "result_id used by another device"
            )
        if (other := snap.seqs.get((r.device_id, r.seq))) is not None:
            return self._reject(
                conn, item, Reason.SEQ_REUSED, f"seq {r.seq} already used by {other}"
            )
        skew = (r.device_time - msg.received_at).total_seconds()
        if skew > self.policy.max_future_skew_s:
            return self._reject(conn, item, Reason.FUTURE_TIME, f"device clock {skew:.0f} s ahead")
        if -skew > self.policy.max_result_age_days * 86_400:
            return self._reject(
                conn, item, Reason.TOO_OLD, f"result is {-skew / 86_400:.1f} days old"
            )
        if r.method is Method.ASSISTED and (refusal := self._assistant(item, snap)) is not None:
            return self._reject(conn, item, *refusal)
        if r.retiree_id not in snap.retirees:
            return self._reject(conn, item, Reason.UNKNOWN_RETIREE, "retiree not on the roster")
        gate = self.mobile_gate if r.channel is Channel.MOBILE else None
        if gate is not None and (why := gate(conn, r)) is not None:
            return self._reject(conn, item, Reason.NO_PHONE_CODE, why)
        born, status = snap.people[r.retiree_id]
        if r.decision is Decision.PASS and status in INACTIVE:
            self._flag_inactive(conn, item, status)
            return self._reject(
                conn,
                item,
                Reason.RETIREE_INACTIVE,
                f"retiree is {status}: a pass certifies nothing",
            )
        old = new = snap.retirees[r.retiree_id]
        until = None
        referred: dict[str, Any] = {}
        if r.decision is Decision.PASS:
            passed_on = r.device_time.astimezone(self._zone).date()
            policy = self.book.on(passed_on, conn) if self.book else self.policy
            candidate = certified_until(passed_on, born, policy)
            why = self._review(conn, r, born, passed_on, snap, policy)
            if why is not None:  # stored unapplied: an approved assisted_review proposal
                # (central.proposals) certifies until ``referred_until``
                referred = {"referred": why, "referred_until": candidate.isoformat()}
            elif old is None or candidate > old:
                new = candidate
                until = {"b_retiree": r.retiree_id, "b_until": new, "b_at": msg.received_at}
            if not referred:
                snap.last_pass[r.retiree_id] = r.method.value
        writes.apply(
            until,
            {
                "result_id": r.result_id,
                "device_id": r.device_id,
                "seq": r.seq,
                "kid": item.kid,
                "retiree_id": r.retiree_id,
                "method": r.method.value,
                "decision": r.decision.value,
                "channel": r.channel.value,
                "device_time": r.device_time,
                "received_at": msg.received_at,
                "applied": r.decision is Decision.PASS and not referred,
                "evidence": r.model_dump(
                    mode="json", include={"match", "liveness", "assisted"}, exclude_none=True
                ),
                "template_sealed": r.template,
                "vein_template_sealed": r.vein_template,
            },
            [
                self._event(
                    item,
                    "certification_referred" if referred else f"certification_{r.decision.value}",
                    {
                        "method": r.method.value,
                        "channel": r.channel.value,
                        "certified_until": [_iso(old), _iso(new)],
                    }
                    | referred,
                )
            ],
        )
        snap.note(r.result_id, r.device_id, r.seq)
        snap.retirees[r.retiree_id] = new
        return Outcome(
            Status.APPLIED,
            ack=Ack(
                result_id=r.result_id,
                device_id=r.device_id,
                status=AckStatus.APPLIED,
                reason="referred_for_review" if referred else None,
                certified_until=new,
            ),
        )

    @staticmethod
    def _assistant(item: _Verified, snap: _Snapshot) -> tuple[Reason, str] | None:
        """Why an assisted result's staff member does not count (None: they do): central
        must know them (an active account) and allow them at the terminal's site."""
        assert item.result.assisted is not None  # an assisted result always names them
        staff_id = item.result.assisted.staff_id
        sites = snap.staff.get(staff_id)
        if sites is None:
            return Reason.UNKNOWN_STAFF, f"staff member {staff_id!r} is no active account"
        if item.site not in sites:
            allowed = ", ".join(sorted(sites)) or "none"
            return (
                Reason.STAFF_NOT_AT_SITE,
                f"staff member {staff_id!r} may not assist at site {item.site!r} "
                f"(their sites: {allowed})",
            )
        return None

    def _review(
        self,
        conn: Connection,
        r: Result,
        born: dt.date,
        passed_on: dt.date,
        snap: _Snapshot,
        policy: Policy,
    ) -> str | None:
        """Why the policy sends this pass to review instead of certifying at once (None: it
        does not): an assisted pass of a retiree at least ``assisted_review_age`` old, or
        right after another assisted pass (``assisted_review_repeat``)."""
        if r.method is not Method.ASSISTED:
            return None
        limit = policy.assisted_review_age
        age = (
            passed_on.year - born.year - ((passed_on.month, passed_on.day) < (born.month, born.day))
        )
        if limit is not None and age >= limit:
            return f"age {age} >= {limit} ([policy] assisted_review_age)"
        if policy.assisted_review_repeat:
            last = snap.last_pass.get(r.retiree_id) or conn.scalar(
                _LAST_PASS, {"b_retiree": r.retiree_id}
            )
            if last == Method.ASSISTED.value:
                return "second assisted pass in a row ([policy] assisted_review_repeat)"
        return None

    @staticmethod
    def _event(item: _Verified, kind: str, detail: dict[str, Any]) -> dict[str, Any]:
        return {
            "at": item.msg.received_at,
            "kind": kind,
            "retiree_id": item.result.retiree_id,
            "result_id": item.result.result_id,
            "device_id": item.result.device_id,
            "actor": f"device:{item.result.device_id}",
            "detail": detail,
        }

    def _flag_inactive(self, conn: Connection, item: _Verified, status: str) -> None:
        """A pass for a deceased or terminated retiree: a fraud flag (once) and its event."""
        r = item.result
        if conn.scalar(_FLAGGED, {"b_result": r.result_id}) is not None:
            return
        kind = f"pass_while_{status}"
        detail = {"device_time": r.device_time.isoformat(), "method": r.method.value}
        conn.execute(
            _INSERT_FLAG,
            {
                "kind": kind,
                "retiree_id": r.retiree_id,
                "result_id": r.result_id,
                "detail": detail,
                "created_at": item.msg.received_at,
                "status": "open",
            },
        )
        conn.execute(_INSERT_EVENT, [self._event(item, "fraud_flag", {"kind": kind} | detail)])

    def _reject(self, conn: Connection, item: _Verified, reason: Reason, detail: str) -> Outcome:
        r = item.result
        refused = _Refused(
            item.msg, reason, detail, r.device_id, item.kid, r.result_id, r.device_id
        )
        return self._quarantine(conn, refused)

    def _quarantine(self, conn: Connection, item: _Refused) -> Outcome:
        seen = item.result_id is not None and conn.scalar(
            _QUARANTINED, {"b_result": item.result_id, "b_reason": item.reason.value}
        )
        if not seen:  # a terminal re-sending a rejected result adds no new row
            conn.execute(
                _INSERT_QUARANTINE,
                {
                    "received_at": item.msg.received_at,
                    "topic": _printable(item.msg.topic)[:256],
                    "device_id": item.device_id,
                    "kid": _printable(item.kid or "")[:64] or None,
                    "result_id": item.result_id,
                    "reason": item.reason.value,
                    "detail": _printable(item.detail)[:500],
                    "acked": item.ack_to is not None,
                    "payload_size": len(item.msg.payload),
                    "payload_sha256": hashlib.sha256(item.msg.payload).hexdigest(),
                    "payload_head": item.msg.payload
                    if item.reason is Reason.INTERNAL_ERROR
                    else item.msg.payload[:QUARANTINE_HEAD_BYTES],
                },
            )
        log.warning(
            "quarantined message on %s: %s (%s)",
            _printable(item.msg.topic)[:256],
            item.reason.value,
            _printable(item.detail)[:200],
        )
        if item.ack_to is None or item.result_id is None:
            return Outcome(Status.QUARANTINED, item.reason, item.detail)
        ack = Ack(
            result_id=item.result_id,
            device_id=item.ack_to,
            status=AckStatus.REJECTED,
            reason=item.reason.value,
        )
        return Outcome(Status.REJECTED, item.reason, item.detail, ack)


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def _printable(text: str) -> str:
    """``text`` safe for a database column and a log line: control characters escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def _failed(item: "_Verified | _Refused", exc: Exception) -> "_Refused":
    """Log ``exc`` with its traceback (call it in ``except``) and refuse ``item`` with
    ``internal_error``: acked when verified, so it is not re-sent forever; the quarantine
    row keeps the whole payload so staff can replay it once the cause is fixed."""
    log.exception("internal error ingesting a message from %s", _printable(item.msg.topic))
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    why = f"{type(cause).__name__}: {cause}"
    if isinstance(item, _Verified):
        r = item.result
        return _Refused(
            item.msg, Reason.INTERNAL_ERROR, why, r.device_id, item.kid, r.result_id, r.device_id
        )
    return _Refused(item.msg, Reason.INTERNAL_ERROR, why, item.device_id, item.kid, item.result_id)
