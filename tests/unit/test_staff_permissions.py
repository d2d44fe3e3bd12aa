"""The role -> permission table: least privilege and separation of duties hold in it."""

import pytest

from central.staff.identity import Actor, Role
from central.staff.permissions import (
    GRANTS,
    MONEY_OR_ELIGIBILITY,
    NotPermittedError,
    Permission,
    allowed,
    check,
    permissions,
    scope,
)

WRITES = {p for p in Permission if not p.value.endswith(".read")}


def test_every_role_has_a_row_and_every_permission_a_holder() -> None:
    assert set(GRANTS) == set(Role)
    assert permissions(frozenset(Role)) == set(Permission)


def test_the_administrator_never_touches_money_or_eligibility() -> None:
    assert not GRANTS[Role.ADMINISTRATOR] & MONEY_OR_ELIGIBILITY
    assert Permission.AUDIT_READ not in GRANTS[Role.ADMINISTRATOR]


def test_the_auditor_reads_everything_and_changes_nothing() -> None:
    reads = {p for p in Permission if p.value.endswith(".read")}
    assert GRANTS[Role.AUDITOR] == reads
    assert not GRANTS[Role.AUDITOR] & WRITES


@pytest.mark.parametrize(
    ("role", "write"),
    [
        (Role.ENTRY_CLERK, {Permission.PROPOSAL_ENTER}),
        (Role.REVIEWER, {Permission.PROPOSAL_RECHECK, Permission.REVIEW_DECIDE}),
        (Role.APPROVER, {Permission.PROPOSAL_APPROVE, Permission.REVIEW_DECIDE}),
        (Role.COORDINATOR, set()),
        (Role.ADMINISTRATOR, {Permission.STAFF_MANAGE, Permission.STAFF_CERTS}),
    ],
)
def test_each_role_writes_only_its_own_step(role: Role, write: set[Permission]) -> None:
    assert GRANTS[role] & WRITES == write


def test_check_names_who_may() -> None:
    clerk = Actor("li", frozenset({Role.ENTRY_CLERK}))
    assert check(clerk, Permission.PROPOSAL_ENTER) is clerk
    with pytest.raises(NotPermittedError, match=r"li \(entry_clerk\) .* one of approver"):
        check(clerk, Permission.PROPOSAL_APPROVE)
    assert not allowed(Actor("nobody", frozenset()), Permission.PEOPLE_READ)


def test_a_coordinator_sees_only_their_communities() -> None:
    only = Actor("c", frozenset({Role.COORDINATOR}), frozenset({"Hepingli"}))
    assert scope(only) == {"Hepingli"}
    assert scope(Actor("a", frozenset({Role.AUDITOR}))) is None
    assert scope(Actor("r", frozenset({Role.COORDINATOR, Role.REVIEWER}), frozenset({"X"}))) is None
