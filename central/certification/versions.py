"""Policy parameters versioned with effective dates: the ``policy_versions`` table.

A version is a complete set of the versioned ``[policy]`` parameters and the date from
which it is in force; versions are only ever added (an approved ``policy`` proposal,
``central.proposals.policy``; triggers refuse UPDATE and DELETE), never edited. The policy
in force on a day is the latest version effective on or before it (of two on the same
day, the later one); before the first version, ``central.toml``'s ``[policy]``.
``PolicyBook`` answers that from a cached copy of the (small) table.
"""

import bisect
import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.certification.settings import Policy
from central.store.schema import UtcDateTime, metadata

VERSIONED = (
    "validity_months",
    "grace_days",
    "assisted_review_age",
    "assisted_review_repeat",
)
"""The ``[policy]`` parameters a version sets (the time zone, clock skew and birthday
anchoring stay configuration: they describe the deployment, not the rules)."""

policy_versions = sa.Table(
    "policy_versions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("effective_from", sa.Date, nullable=False, index=True),
    sa.Column("params", sa.JSON, nullable=False),  # every VERSIONED parameter
    sa.Column("note", sa.String(500), nullable=False),
    sa.Column("proposal_id", sa.BigInteger, nullable=False),
    sa.Column("approved_by", sa.String(100), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)


@dataclass(frozen=True)
class Version:
    """One stored version."""

    id: int
    effective_from: dt.date
    params: dict[str, Any]
    note: str
    proposal_id: int
    approved_by: str
    created_at: dt.datetime


def params_of(policy: Policy) -> dict[str, Any]:
    """The versioned parameters of ``policy``."""
    return {name: getattr(policy, name) for name in VERSIONED}


def history(conn: Connection) -> list[Version]:
    """Every version, in the order they take effect (effective date, then id)."""
    rows = conn.execute(
        sa.select(policy_versions).order_by(policy_versions.c.effective_from, policy_versions.c.id)
    ).all()
    return [
        Version(
            r.id,
            r.effective_from,
            dict(r.params),
            r.note,
            r.proposal_id,
            r.approved_by,
            r.created_at,
        )
        for r in rows
    ]


def in_force(versions: list[Version], day: dt.date, fallback: Policy) -> Policy:
    """The policy in force on ``day`` among ``versions`` (ordered as ``history`` returns)."""
    at = bisect.bisect_right([v.effective_from for v in versions], day)
    if at == 0:
        return fallback
    return fallback.model_copy(update=versions[at - 1].params)


def add(
    conn: Connection,
    effective_from: dt.date,
    params: dict[str, Any],
    note: str,
    proposal_id: int,
    approved_by: str,
    now: dt.datetime,
) -> int:
    """Store a new version (an approved proposal's); its id."""
    return int(
        conn.execute(
            policy_versions.insert()
            .values(
                effective_from=effective_from,
                params=params,
                note=note,
                proposal_id=proposal_id,
                approved_by=approved_by,
                created_at=now,
            )
            .returning(policy_versions.c.id)
        ).scalar_one()
    )


class PolicyBook:
    """The policy in force on a day, from the versions re-read at most every ``ttl_s``
    seconds (ingest asks per result: a cached answer costs a bisect)."""

    def __init__(self, engine: Engine, fallback: Policy, ttl_s: float = 30.0) -> None:
        self.engine, self.fallback, self.ttl_s = engine, fallback, ttl_s
        self._lock = threading.Lock()
        self._loaded = -float("inf")
        self._dates: list[dt.date] = []
        self._policies: list[Policy] = []

    def _refresh(self, conn: Connection | None) -> None:
        if conn is None:
            with self.engine.connect() as own:
                versions = history(own)
        else:
            versions = history(conn)
        self._dates = [v.effective_from for v in versions]
        self._policies = [self.fallback.model_copy(update=v.params) for v in versions]
        self._loaded = time.monotonic()

    def on(self, day: dt.date, conn: Connection | None = None) -> Policy:
        """The policy in force on ``day`` (re-read through ``conn`` when given: a caller
        inside a write transaction on SQLite must not open a second connection)."""
        with self._lock:
            if time.monotonic() - self._loaded > self.ttl_s:
                self._refresh(conn)
            at = bisect.bisect_right(self._dates, day)
            return self.fallback if at == 0 else self._policies[at - 1]

    def forget(self) -> None:
        """Re-read the versions at the next question."""
        with self._lock:
            self._loaded = -float("inf")
