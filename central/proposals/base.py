"""What every kind of proposal is: its errors, the ``Kind`` interface, the fingerprint.

A kind checks and normalises what is proposed (``prepare``), says what data the
proposal depends on (``fingerprint``: if that changed since, approving it is refused
as stale) and makes the change on the last approval (``apply``). Kinds whose change
leaves the database (a file, an upload) or runs its own transaction are ``external``:
they are applied after the approving transaction commits, under a lease; a proposal left
``applying`` by a crash is finished by ``resume``, which asks the kind whether its change is
already made (``finished``) before making it.
"""

import datetime as dt
import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import Connection, Engine

from central.certification.settings import Policy
from central.payments.settings import BankSettings
from central.proposals.settings import ProposalSettings
from central.staff.settings import StaffSettings
from common.errors import LifecertError


class ProposalError(LifecertError, ValueError):
    """What is proposed is not valid (the message names the field and the fix)."""


class RefusedError(LifecertError, PermissionError):
    """This person may not take this step (wrong role, already acted, entered it)."""


class StaleError(LifecertError, RuntimeError):
    """The data the proposal was made against changed since: propose it again."""


class NotFoundError(LifecertError, LookupError):
    """No proposal has this id."""


class ClosedError(LifecertError, RuntimeError):
    """The proposal was already decided (applied, rejected or failed)."""


class Settings(Protocol):
    """The sections of ``central.toml`` the proposals read (``CentralConfig`` has them)."""

    @property
    def policy(self) -> Policy: ...

    @property
    def bank(self) -> BankSettings: ...

    @property
    def proposals(self) -> ProposalSettings: ...

    @property
    def staff(self) -> StaffSettings: ...


class Resources(Protocol):
    """What applying the payment kinds needs beyond the database (``central.bootstrap.Central``
    is one)."""

    @property
    def cfg(self) -> Settings: ...

    @property
    def sign_key(self) -> ec.EllipticCurvePrivateKey: ...


@dataclass(frozen=True)
class Change:
    """One row of a proposal's diff: a retiree added or changed, field by field."""

    line: int
    retiree_id: str
    change: str  # added / changed
    before: dict[str, Any] | None
    after: dict[str, Any]


@dataclass
class Prepared:
    """A checked proposal: normalised payload, what it is about, and its diff rows."""

    payload: dict[str, Any]
    target: str
    summary: str
    rows: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    """Where a step happens: the time and, for the payment kinds, central's resources."""

    now: dt.datetime
    resources: Resources | None = None

    def need(self, kind: str) -> Resources:
        if self.resources is None:
            raise ProposalError(f"applying a {kind} proposal needs central's config and keys")
        return self.resources


def digest(value: Any) -> str:
    """The SHA-256 of ``value`` as canonical JSON (dates as ISO text)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def text(payload: dict[str, Any], name: str, limit: int, least: int = 0) -> str:
    """A printable text field of ``payload`` (``least``-``limit`` characters)."""
    value = payload.get(name, "")
    if not isinstance(value, str) or not least <= len(value) <= limit or not value.isprintable():
        raise ProposalError(
            f"{name}: {least}-{limit} printable characters (no tabs, newlines or control "
            "characters)"
        )
    return value


FieldType = Literal[
    "text",
    "textarea",
    "pem",
    "number",
    "decimal",
    "date",
    "month",
    "select",
    "boolean",
    "checkbox",
    "checkboxes",
    "list",
    "file",
]
"""How a person enters a value: one line, a paragraph (its line breaks become spaces), a PEM
block (kept as typed), a whole number, an amount, a date, a month (YYYY-MM), one of
``choices``, yes/no (``choices`` "true"/"false" with labels: a JSON boolean), a tick (a JSON
boolean), several of ``choices`` (a list), names separated by commas (a list), or an
uploaded CSV file (the payload's ``csv`` text)."""


@dataclass(frozen=True)
class PayloadField:
    """One field of a kind's payload as a person enters it: the console's per-kind forms are
    made from these. They only shape the entry; ``prepare`` still checks every value."""

    name: str
    label: str
    type: FieldType = "text"
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()  # (value, label)
    required: bool = True
    max_length: int | None = None
    group: str = ""
    """Nested under ``payload[group]`` (the policy's ``params``)."""


def pick(*values: str) -> tuple[tuple[str, str], ...]:
    """Choices labelled by their values."""
    return tuple((v, v) for v in values)


class Kind(ABC):
    """One kind of change to money or eligibility."""

    name: ClassVar[str]
    fields: ClassVar[tuple[PayloadField, ...]] = ()
    """The payload's fields, as a person enters them (the console's form)."""
    external: ClassVar[bool] = False
    about_staff: ClassVar[bool] = False
    """A staff change: an administrator enters it, ``[proposals] staff_approver`` decides,
    and nobody enters or decides a change to their own account (the ``target``)."""
    levels_setting: ClassVar[str] = ""
    """The ``[proposals]`` field with its number of levels (default: the kind's name)."""

    @abstractmethod
    def prepare(self, conn: Connection, payload: dict[str, Any], ctx: Context) -> Prepared:
        """Check and normalise ``payload`` against the data (``ProposalError`` if bad)."""

    @abstractmethod
    def fingerprint(self, conn: Connection, proposal: Any) -> str:
        """The digest of the data ``proposal`` (a ``proposals`` row) depends on, as it is now."""

    def apply(self, conn: Connection, proposal: Any, actor: str, ctx: Context) -> dict[str, Any]:
        """Make the change in ``conn``'s transaction (kinds that are not ``external``)."""
        raise NotImplementedError

    def apply_outside(
        self, engine: Engine, proposal: Any, actor: str, ctx: Context
    ) -> dict[str, Any]:
        """Make the change after the approval is committed (``external`` kinds)."""
        raise NotImplementedError

    def finished(self, engine: Engine, proposal: Any, ctx: Context) -> dict[str, Any] | None:
        """What ``apply_outside`` returned if its change is already made (a resumed
        proposal whose applier died after the change, before recording it); None when it is
        not made; ``ProposalError`` when the data is neither (``external`` kinds)."""
        return None
