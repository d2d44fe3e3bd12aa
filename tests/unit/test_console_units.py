"""The console's pure parts: the permission table, sessions, freshness, charts, the
proposal forms' fields and their payloads."""

import datetime as dt
import threading
import time
from pathlib import Path

import pytest

from central.certification import versions
from central.console import access, charts, proposing
from central.console.fresh import Fresh
from central.proposals import KINDS, ProposalError
from central.proposals.staffing import STAFF_KINDS
from central.staff.identity import Actor, Role


def test_fresh_reuses_a_value_until_it_is_too_old_and_computes_once_at_a_time() -> None:
    now = [0.0]
    fresh = Fresh(10, clock=lambda: now[0])
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        time.sleep(0.05)
        return len(calls)

    threads = [threading.Thread(target=fresh.get, args=("k", compute)) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    now[0] = 9.9
    assert fresh.get("k", compute) == 1
    now[0] = 10.1
    assert fresh.get("k", compute) == 2
    assert Fresh(0).get("k", compute) == 3  # 0: always computed


def test_sessions_expire_idle_and_after_their_lifetime_and_stay_on_their_certificate() -> None:
    now = [dt.datetime(2026, 12, 6, 8, tzinfo=dt.UTC)]
    sessions = access.Sessions(
        dt.timedelta(minutes=30), dt.timedelta(hours=2), clock=lambda: now[0]
    )
    actor = Actor("ann", frozenset({Role.AUDITOR}))
    made = sessions.start(actor, "fp")
    assert sessions.get(made.token, "other-fp") is None
    for _ in range(5):  # busy: 25 minutes apart, never idle for 30
        now[0] += dt.timedelta(minutes=25)
        if now[0] - made.started > dt.timedelta(hours=2):
            assert sessions.get(made.token, "fp") is None
            break
        assert sessions.get(made.token, "fp") is made
    else:
        raise AssertionError("the session outlived its lifetime")
    idle = sessions.start(actor, "fp")
    now[0] += dt.timedelta(minutes=31)
    assert sessions.get(idle.token, "fp") is None


def test_scope_is_wide_for_wide_roles_and_own_communities_for_a_coordinator() -> None:
    coordinator = Actor("c", frozenset({Role.COORDINATOR}), frozenset({"A"}))
    both = Actor("d", frozenset({Role.COORDINATOR, Role.REVIEWER}), frozenset({"A"}))
    assert access.scope(coordinator) == {"A"}
    assert access.scope(both) is None
    admin = Actor("a", frozenset({Role.ADMINISTRATOR}))
    reached = {
        key
        for key, rule in access.PERMISSIONS.items()
        if rule.session and access.allowed(admin, key)
    }
    staff = {"proposals", "proposal_enter", "proposal_decide", "proposal_resume"}
    assert reached == {"me", "openapi", "signout"} | staff
    assert all(access.staff_only(admin, key) for key in staff)
    auditor = Actor("u", frozenset({Role.AUDITOR}))
    assert access.allowed(auditor, "proposals") and not access.staff_only(auditor, "proposals")
    assert not access.allowed(auditor, "proposal_decide")
    assert not access.allowed(auditor, "proposal_enter")  # staff.read without staff.manage
    assert not access.allowed(auditor, "proposal_resume")
    assert not access.allowed(coordinator, "no-such-endpoint")


def test_charts_escape_their_labels() -> None:
    svg = charts.stacked_bars([("<script>", [("certified", 3)])], "a & b")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a &amp; b" in svg
    assert "no history yet" in charts.line([], "trend")


def test_the_docs_table_of_permissions_is_the_codes() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "console.md").read_text()
    section = text.split("## Who may do what", 1)[1].split("\n## ", 1)[0]
    shown: dict[str, frozenset[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("endpoint", "---"):
            continue
        roles = (
            {r.value for r in Role}
            if cells[3] == "all roles"
            else {r.strip().replace(" ", "_") for r in cells[3].split(",")}
        )
        for key in cells[0].split(","):
            shown[key.strip()] = frozenset(roles)
    assert shown.keys() == access.PERMISSIONS.keys()
    for key, roles in shown.items():
        assert roles == {r.value for r in access.roles_for(key)}, key


def test_every_kind_has_a_form_and_the_policy_form_every_versioned_parameter() -> None:
    for kind, handler in KINDS.items():
        assert handler.fields, f"{kind} has no fields: no form"
        names = [proposing.input_name(f) for f in handler.fields]
        assert len(names) == len(set(names)), kind
        assert "proposal_kind" not in names and "csrf_token" not in names
        for field in handler.fields:
            assert field.label and (bool(field.choices) == (field.type in _CHOOSE)), field
    params = {f.name for f in KINDS["policy"].fields if f.group == "params"}
    assert params == set(versions.VERSIONED)


_CHOOSE = ("select", "boolean", "checkboxes")


def test_a_form_becomes_the_payload_the_kinds_read() -> None:
    """Values convert to the JSON types ``prepare`` reads; what does not convert is passed on
    as typed (``prepare`` refuses it by name); empty optional fields are left out."""
    form = {
        "effective_from": ["2027-01-01"],
        "params.grace_days": ["7"],
        "params.validity_months": [""],
        "params.assisted_review_age": ["ninety"],
        "params.assisted_review_repeat": ["false"],
        "note": ["the new\r\n  decree "],
    }
    assert proposing.payload_from_form("policy", form, None) == {
        "effective_from": "2027-01-01",
        "params": {
            "grace_days": 7,
            "assisted_review_age": "ninety",
            "assisted_review_repeat": False,
        },
        "note": "the new decree",
    }
    staff = {"staff_id": [" x.y "], "name": ["X"], "roles": ["auditor", "reviewer"], "sites": [""]}
    assert proposing.payload_from_form(
        "staff_add", staff | {"communities": ["A, B,\nC"]}, None
    ) == {
        "staff_id": "x.y",
        "name": "X",
        "roles": ["auditor", "reviewer"],
        "communities": ["A", "B", "C"],
    }
    pem = "-----BEGIN X-----\r\nAAA\r\n-----END X-----\r\n"
    cert = {"staff_id": ["x"], "csr": [pem], "days": ["30"]}
    assert proposing.payload_from_form("staff_cert", cert, None)["csr"] == pem.replace("\r", "")
    roster = proposing.payload_from_form("roster_import", {"path": ["/etc/passwd"]}, "id_number\n")
    assert roster == {"csv": "id_number\n", "partial": False}  # only the kind's fields
    with pytest.raises(ProposalError, match="control characters"):
        proposing.payload_from_form("hold", {"note": ["a\x00b"]}, None)


def test_an_error_is_shown_by_the_field_it_names() -> None:
    assert proposing.field_of("bank_make", "period: 2026-13 is not a month") == "period"
    assert proposing.field_of("policy", "grace_days: at most 366") == "params.grace_days"
    assert proposing.field_of("hold", "3 proposals wait already: decide some") is None


def test_who_may_enter_which_kind() -> None:
    clerk = Actor("c", frozenset({Role.ENTRY_CLERK}))
    admin = Actor("a", frozenset({Role.ADMINISTRATOR}))
    both = Actor("b", frozenset({Role.ENTRY_CLERK, Role.ADMINISTRATOR}))
    assert set(proposing.enterable(clerk)) == set(KINDS) - STAFF_KINDS
    assert set(proposing.enterable(admin)) == STAFF_KINDS
    assert set(proposing.enterable(both)) == set(KINDS)
    for role in (Role.REVIEWER, Role.APPROVER, Role.AUDITOR, Role.COORDINATOR):
        assert proposing.enterable(Actor("o", frozenset({role}))) == []
