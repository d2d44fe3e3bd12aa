"""Who may call what: one table (endpoint -> permissions), sessions that expire, CSRF tokens.

Every route names its entry of ``PERMISSIONS`` and is checked on the server; the tests
build the whole endpoint x role matrix from this table. A coordinator who is nothing else
sees only their communities (``scope``). The proposals endpoints also admit, through
``staff_only``, administrators, who see, enter and decide staff proposals only (the routes
refuse them every other kind).
"""

import datetime as dt
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from central.staff import permissions
from central.staff.identity import Actor, Role
from central.staff.permissions import Permission

P = Permission


@dataclass(frozen=True)
class Rule:
    """Permissions needed (all of ``needs``, and one of ``any_of`` when given; none: any
    signed-in staff member); ``session=False``: the staff certificate alone (sign-in,
    style sheet)."""

    needs: frozenset[Permission] = frozenset()
    session: bool = True
    any_of: frozenset[Permission] = frozenset()  # and at least one of these, when given
    staff_only: frozenset[Permission] = frozenset()
    """Or all of these, for staff proposals only (``central.proposals.staffing``)."""


PERMISSIONS: dict[str, Rule] = {
    "signin": Rule(session=False),
    "static": Rule(session=False),
    "signout": Rule(),
    "me": Rule(),
    "openapi": Rule(),
    "dashboard": Rule(frozenset({P.DASHBOARD_READ})),
    "retirees": Rule(frozenset({P.PEOPLE_READ})),
    "certifications": Rule(frozenset({P.RESULTS_READ})),
    "payments": Rule(frozenset({P.PAYMENTS_READ})),
    "reviews": Rule(frozenset({P.RESULTS_READ, P.FRAUD_READ})),
    "review_decide": Rule(frozenset({P.RESULTS_READ, P.FRAUD_READ, P.REVIEW_DECIDE})),
    "audit": Rule(frozenset({P.AUDIT_READ})),
    "assisted": Rule(frozenset({P.RESULTS_READ, P.FRAUD_READ})),
    "reminders": Rule(frozenset({P.DASHBOARD_READ, P.PEOPLE_READ})),
    "fleet": Rule(frozenset({P.RESULTS_READ, P.FRAUD_READ})),
    "proposals": Rule(
        frozenset({P.PEOPLE_READ, P.PAYMENTS_READ}), staff_only=frozenset({P.STAFF_READ})
    ),
    "proposal_enter": Rule(
        frozenset({P.PEOPLE_READ, P.PAYMENTS_READ, P.PROPOSAL_ENTER}),
        staff_only=frozenset({P.STAFF_READ, P.STAFF_MANAGE}),
    ),
    "proposal_decide": Rule(
        frozenset({P.PEOPLE_READ, P.PAYMENTS_READ}),
        any_of=frozenset({P.PROPOSAL_RECHECK, P.PROPOSAL_APPROVE}),
        staff_only=frozenset({P.STAFF_READ, P.STAFF_MANAGE}),
    ),
    "proposal_resume": Rule(
        frozenset({P.PEOPLE_READ, P.PAYMENTS_READ, P.PROPOSAL_APPROVE}),
        staff_only=frozenset({P.STAFF_READ, P.STAFF_MANAGE}),
    ),
}
"""Endpoint -> the permissions it needs: the one table every route is authorised from
(roles hold permissions by ``central.staff.permissions.GRANTS``)."""

WIDE = frozenset({Role.ENTRY_CLERK, Role.REVIEWER, Role.APPROVER, Role.AUDITOR})
"""Roles that see every community."""


def _fully(rule: Rule, roles: frozenset[Role]) -> bool:
    held = permissions.permissions(roles)
    return bool(roles) and rule.needs <= held and (not rule.any_of or bool(rule.any_of & held))


def _holds(rule: Rule, roles: frozenset[Role]) -> bool:
    held = permissions.permissions(roles)
    return _fully(rule, roles) or (bool(rule.staff_only) and rule.staff_only <= held)


def roles_for(endpoint: str) -> frozenset[Role]:
    """The roles that may call ``endpoint`` (for the docs and the tests' matrix)."""
    rule = PERMISSIONS[endpoint]
    return frozenset(r for r in Role if _holds(rule, frozenset({r})))


def allowed(actor: Actor, endpoint: str) -> bool:
    """Whether ``actor`` may call ``endpoint`` (an unknown endpoint: nobody)."""
    rule = PERMISSIONS.get(endpoint)
    return rule is not None and _holds(rule, actor.roles)


def staff_only(actor: Actor, endpoint: str) -> bool:
    """Whether ``actor`` may call ``endpoint`` for staff proposals only (an administrator
    on the proposals pages: every other kind is refused)."""
    rule = PERMISSIONS.get(endpoint)
    return rule is not None and _holds(rule, actor.roles) and not _fully(rule, actor.roles)


def scope(actor: Actor) -> frozenset[str] | None:
    """The communities ``actor`` sees: None (all) for wide roles, else their own."""
    return None if actor.roles & WIDE else actor.communities


@dataclass
class Session:
    """A signed-in staff member on one certificate, with its CSRF token."""

    token: str
    actor: Actor
    fingerprint: str
    csrf: str
    started: dt.datetime
    seen: dt.datetime
    checked: dt.datetime


def fingerprint(der: bytes) -> str:
    """SHA-256 of a certificate's DER bytes, hex."""
    return hashlib.sha256(der).hexdigest()


@dataclass
class Sessions:
    """Sessions in memory (a restart signs everyone out): idle and absolute expiry."""

    idle: dt.timedelta
    lifetime: dt.timedelta
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    _by_token: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, actor: Actor, cert_fingerprint: str) -> Session:
        now = self.clock()
        made = Session(
            secrets.token_urlsafe(32),
            actor,
            cert_fingerprint,
            secrets.token_urlsafe(32),
            now,
            now,
            now,
        )
        with self._lock:
            self._expire(now)
            self._by_token[made.token] = made
        return made

    def get(self, token: str | None, cert_fingerprint: str) -> Session | None:
        """The live session of ``token`` on this certificate (None: none, expired, other
        certificate); touching it keeps it alive."""
        if not token:
            return None
        now = self.clock()
        with self._lock:
            found = self._by_token.get(token)
            if found is None:
                return None
            if now - found.seen > self.idle or now - found.started > self.lifetime:
                del self._by_token[token]
                return None
            if not hmac.compare_digest(found.fingerprint, cert_fingerprint):
                return None
            found.seen = now
            return found

    def end(self, token: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)

    def _expire(self, now: dt.datetime) -> None:
        gone = [
            t
            for t, s in self._by_token.items()
            if now - s.seen > self.idle or now - s.started > self.lifetime
        ]
        for token in gone:
            del self._by_token[token]


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time CSRF token check."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
