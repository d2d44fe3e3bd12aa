"""The staff console over real HTTPS with client certificates, on SQLite and PostgreSQL:
handshake refusals, the authorization matrix from the one permission table, CSRF, bad
input, sessions, the dashboard's figures against central's own queries, schemathesis."""

import contextlib
import datetime as dt
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.routing import APIRoute

from central import proposals
from central.certification.settings import Policy
from central.console import access, identity, proposing
from central.console.tables import review_decisions
from central.fleet.health import FleetHealth
from central.notify import reminders
from central.payments import bankfile, runs
from central.payments.period import Period
from central.people import coverage as people_coverage
from central.proposals.staffing import STAFF_KINDS
from central.proposals.tables import proposals as proposal_table
from central.staff import accounts, otp
from central.staff.identity import Actor, Role
from central.store import schema
from protocol import messages, topics
from protocol.messages import Telemetry
from tests.integration.console_support import ADMIN, COMMUNITIES, Console, start

pytestmark = pytest.mark.integration

ADMIN_2 = Actor("admin-2", frozenset({Role.ADMINISTRATOR}))
APPROVER = Actor("approver", frozenset({Role.APPROVER}))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def console(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    """One served console per engine for the module (seeded once)."""
    root = tmp_path_factory.mktemp(f"console-{request.param}")
    if request.param == "sqlite":
        yield from start(root, f"sqlite:///{root / 'central.sqlite'}")
        return
    from tests.fixtures.database import _pg_admin

    name = f"lifecert_console_{os.getpid()}"
    with _pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield from start(root, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    finally:
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _decisions(console: Console) -> int:
    with console.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(review_decisions)).one()[0])


# -- TLS: only staff certificates get an HTTP exchange -----------------------------------


@pytest.mark.parametrize("who", [None, "device", "revoked", "expired"])
def test_the_handshake_refuses_all_but_a_valid_staff_certificate(
    console: Console, who: str | None
) -> None:
    with (
        httpx.Client(base_url=console.url, verify=console.tls(who), timeout=10) as client,
        pytest.raises((httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)),
    ):
        client.post("/api/session", json={})


def test_plain_http_gets_no_page(console: Console) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(console.url.replace("https://", "http://") + "api/me", timeout=5)


def test_a_locked_account_is_refused_at_sign_in(console: Console) -> None:
    with console.client("locked", signed_in=False) as client:
        reply = client.post("/api/session", json={})
        page = client.post("/signin", data={"csrf_token": "x"})
    assert reply.status_code == 403
    assert "locked" in reply.json()["error"]
    assert page.status_code == 403


def test_revoking_a_certificate_ends_its_live_session(console: Console) -> None:
    from central.staff import ca

    sessions = console.ctx.sessions
    with console.client("late") as client:
        assert client.get("/api/me").status_code == 200
        serial = ca.list_certs(console.engine, "late")[0]["serial"]
        ca.revoke(console.engine, console.staff, ADMIN, serial, "left")
        real = sessions.clock
        later = real() + identity.RECHECK + dt.timedelta(seconds=1)
        sessions.clock = lambda: later
        try:
            gone = client.get("/api/me")
            assert gone.status_code == 401 and "revoked" in gone.json()["error"]
            again = client.post("/api/session", json={})  # its connection is already open
            assert again.status_code == 403 and "revoked" in again.json()["error"]
        finally:
            sessions.clock = real
    with (  # a new handshake checks the rewritten CRL: no restart
        httpx.Client(base_url=console.url, verify=console.tls("late"), timeout=10) as fresh,
        pytest.raises((httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)),
    ):
        fresh.post("/api/session", json={})
    with console.client("auditor") as other:  # the rebuilt context still lets the others in
        assert other.get("/api/me").status_code == 200


# -- authorization: every endpoint x every role, from the one table ----------------------


def _routes(console: Console) -> list[APIRoute]:
    return [r for r in console.app.routes if isinstance(r, APIRoute)]


def _sample_path(route: APIRoute, item: str) -> str:
    return (
        route.path.replace("{queue}", "quarantine")
        .replace("{item}", item)
        .replace("{proposal_id}", item)
        .replace("{action}", "recheck")
    )


def test_every_route_has_an_entry_in_the_permission_table(console: Console) -> None:
    for route in _routes(console):
        key = (route.openapi_extra or {}).get("x-permission")
        assert key in access.PERMISSIONS, f"{route.path} has no permission entry"


def _matrix(console: Console) -> list[tuple[APIRoute, str, str, bool]]:
    cases = []
    for route in _routes(console):
        key = route.openapi_extra["x-permission"]  # type: ignore[index]
        permitted = access.roles_for(key)
        for method in sorted(route.methods):
            for role in Role:
                cases.append((route, method, role.value, role in permitted))
    return cases


def test_authorization_matrix(console: Console) -> None:
    """Each (endpoint, method, role): allowed -> not 401/403; denied -> 403; the whole
    matrix is generated from ``access.PERMISSIONS``."""
    checked = 0
    with contextlib.ExitStack() as stack:
        clients = {role.value: stack.enter_context(console.client(role.value)) for role in Role}
        for route, method, role, allowed in _matrix(console):
            if route.path in ("/api/session", "/signin", "/signout"):
                continue  # session endpoints: tested on their own below
            client = clients[role]
            path = _sample_path(route, "999999")
            kwargs: dict[str, Any] = {}
            if method == "POST" and path.startswith("/api/"):
                kwargs["json"] = {"decision": "noted", "reason": "matrix check"}
            elif method == "POST":
                kwargs["data"] = {
                    "decision": "noted",
                    "reason": "matrix check",
                    "csrf_token": client.headers["x-csrf-token"],
                }
            reply = client.request(method, path, **kwargs)
            if allowed:
                assert reply.status_code not in (401, 403), (method, path, role, reply.text)
            else:
                assert reply.status_code == 403, (method, path, role, reply.status_code)
            checked += 1
    assert checked >= 24 * len(Role)
    assert _decisions(console) == 0  # item 999999 is no open item: nothing decided


def test_a_coordinator_sees_only_their_communities(console: Console) -> None:
    with console.client("coordinator") as client:
        board = client.get("/api/dashboard").json()
        names = {r["name"] for r in board["coverage"]} - {"TOTAL"}
        assert names and names <= set(COMMUNITIES)
        assert board["payment_run"] is None and board["open_reviews"] is None
        assert board["fleet"] is None
        rows = client.get("/api/retirees", params={"limit": 1000}).json()["rows"]
        assert rows and {r["community"] for r in rows} <= set(COMMUNITIES)
        other = client.get("/api/retirees", params={"community": "Xuhui"})
        assert other.status_code == 403 and other.json()["field"] == "community"
        csv = client.get("/api/retirees.csv").text.splitlines()
        assert len(csv) == len(rows) + 1
        assert all(re.search("|".join(COMMUNITIES), line) for line in csv[1:])
    with console.client("two-roles") as client:  # coordinator + reviewer: the wide view
        names = {r["name"] for r in client.get("/api/dashboard").json()["coverage"]}
        assert len(names - {"TOTAL"}) > len(COMMUNITIES)


# -- CSRF, sessions, bad input ------------------------------------------------------------


def _open_item(console: Console, client: httpx.Client, queue: str) -> str:
    items = client.get(f"/api/reviews/{queue}").json()["items"]
    assert items, f"no open {queue} item"
    return str(items[0]["item"])


def test_changes_need_the_session_csrf_token(console: Console) -> None:
    with console.client("reviewer") as client:
        item = _open_item(console, client, "quarantine")
        body = {"decision": "noted", "reason": "seen it"}
        path = f"/api/reviews/quarantine/{item}"
        token = client.headers.pop("x-csrf-token")
        assert client.post(path, json=body).status_code == 403
        assert client.post(path, json=body, headers={"x-csrf-token": "wrong"}).status_code == 403
        form = client.post(f"/reviews/quarantine/{item}", data=body)  # HTML form, no token
        assert form.status_code == 403 and "CSRF" in form.text
        assert _decisions(console) == 0
        assert client.post(path, json=body, headers={"x-csrf-token": token}).status_code == 200
        assert _decisions(console) == 1
        again = client.post(path, json=body, headers={"x-csrf-token": token})
        assert again.status_code == 409 and again.json()["field"] == "item"


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/retirees", {"state": "asleep"}, "state"),
        ("/api/retirees", {"as_of": "2026-13-01"}, "as_of"),
        ("/api/retirees", {"limit": "0"}, "limit"),
        ("/api/retirees", {"after": "'; drop table retirees"}, "after"),
        ("/api/retirees.csv", {"community": "Hai\x00dian"}, "community"),  # PostgreSQL: 500
        ("/api/payments", {"period": "2026-1"}, "period"),
        ("/api/certifications", {"channel": "fax"}, "channel"),
    ],
)
def test_bad_query_input_names_the_field(
    console: Console, path: str, params: dict[str, str], field: str
) -> None:
    with console.client("auditor") as client:
        reply = client.get(path, params=params)
    assert reply.status_code == 422
    assert reply.json()["field"] == field and field in reply.json()["error"]


def test_bad_decisions_are_refused_and_change_nothing(console: Console) -> None:
    before = _decisions(console)
    with console.client("approver") as client:
        item = _open_item(console, client, "fraud")
        for body, field, status in [
            ({"decision": "forgive", "reason": "looks fine"}, "decision", 422),
            ({"decision": "cleared", "reason": "ok"}, "reason", 422),
            ({"decision": "cleared", "reason": "fine by me", "extra": 1}, "extra", 422),
            ({"decision": "cleared", "reason": "fine\x00by me"}, "reason", 422),
            ({"decision": "cleared", "reason": "x" * 5000}, "body", 413),
        ]:
            reply = client.post(f"/api/reviews/fraud/{item}", json=body)
            assert reply.status_code == status, body
            assert reply.json()["field"] == field
        unknown = client.post("/api/reviews/lottery/1", json={"decision": "a", "reason": "abc"})
        assert unknown.status_code == 404 and unknown.json()["field"] == "queue"
        page = client.get("/retirees", params={"state": "asleep"})
        assert page.status_code == 422 and "state" in page.text
    assert _decisions(console) == before
    with console.engine.connect() as conn:
        assert conn.execute(sa.select(schema.fraud_flags.c.status)).scalar_one() == "open"


def test_sessions_expire_and_sign_in_again(console: Console) -> None:
    sessions = console.ctx.sessions
    with console.client("auditor") as client:
        assert client.get("/api/me").json()["staff_id"] == "auditor"
        real = sessions.clock
        later = real() + sessions.idle + dt.timedelta(seconds=1)
        sessions.clock = lambda: later
        try:
            expired = client.get("/api/me")
            assert expired.status_code == 401 and "expired" in expired.json()["error"]
            page = client.get("/", follow_redirects=False)
            assert page.status_code == 303 and page.headers["location"].startswith("/signin")
            signin = client.get("/signin")
            token = re.search(r'name="csrf_token" value="([^"]+)"', signin.text)
            assert token is not None
            assert client.post("/signin", data={"csrf_token": "forged"}).status_code == 403
            back = client.post(
                "/signin", data={"csrf_token": token.group(1)}, follow_redirects=False
            )
            assert back.status_code == 303
            assert client.get("/").status_code == 200
        finally:
            sessions.clock = real


def test_a_session_belongs_to_its_certificate(console: Console) -> None:
    with console.client("auditor") as auditor, console.client("coordinator") as other:
        other.cookies.clear()
        other.cookies.update(auditor.cookies)  # a stolen cookie, another certificate
        reply = other.get("/api/me")
    assert reply.status_code == 401


# -- figures ---------------------------------------------------------------------------


def test_the_dashboard_agrees_with_centrals_own_queries(console: Console) -> None:
    today = console.ctx.today()
    expected = people_coverage.report(console.engine, today, console.ctx.policy.reminder_days)
    with console.client("approver") as client:
        board = client.get("/api/dashboard").json()
        page = client.get("/")
    got = {r["name"]: r for r in board["coverage"]}
    for row in expected:
        assert got[row.community]["retirees"] == row.retirees
        assert got[row.community]["certified"] == row.certified
        assert got[row.community]["due"] == row.due
        assert got[row.community]["overdue"] == row.overdue
    run = board["payment_run"]
    with console.engine.connect() as conn:
        summary = conn.execute(sa.select(schema.payment_runs.c.summary)).scalar_one()
    assert run["counts"] == summary["decisions"]
    assert run["sums_cents"]["pay"] + run["sums_cents"].get("resume", 0) == summary["payable_cents"]
    assert got["TOTAL"]["held"] == summary["decisions"]["hold"]
    passes = sum(t["count"] for t in board["today"] if t["decision"] == "pass")
    assert passes == 5
    assert board["open_reviews"]["referred"] == 1
    assert board["trend"] and board["trend"][-1]["retirees"] == got["TOTAL"]["retirees"]
    assert board["fleet"]["terminals"] == {"online": 1, "offline": 1}
    assert [a["subject"] for a in board["fleet"]["open_alerts"]] == ["term-2"]
    assert "offline for 10 min" in page.text
    assert page.status_code == 200 and "<svg" in page.text


def test_assisted_shares_per_terminal(console: Console) -> None:
    with console.client("auditor") as client:
        found = client.get("/api/assisted", params={"days": 7}).json()
        page = client.get("/assisted")
    assert found["terminals"] == [
        {"device_id": "term-1", "results": 6, "assisted": 1, "assisted_pct": 16.7, "referred": 0}
    ]
    assert page.status_code == 200 and "term-1" in page.text
    with console.client("coordinator") as client:
        assert client.get("/api/assisted").status_code == 403


def test_drill_down_pages_and_csv_agree(console: Console) -> None:
    with console.client("reviewer") as client:
        board = client.get("/api/dashboard").json()
        total = next(r for r in board["coverage"] if r["name"] == "TOTAL")
        overdue = client.get("/api/retirees.csv", params={"state": "overdue"})
        assert overdue.headers["content-type"].startswith("text/csv")
        assert len(overdue.text.splitlines()) == total["overdue"] + 1
        seen: list[str] = []
        after = None
        while True:
            params = {"state": "held", "limit": 7} | ({"after": after} if after else {})
            page = client.get("/api/retirees", params=params).json()
            seen += [r["id_number"] for r in page["rows"]]
            after = page["next_after"]
            if after is None:
                break
        assert len(seen) == len(set(seen)) == total["held"]


# -- schemathesis: the OpenAPI document against the running API ------------------------


def test_schemathesis_finds_no_server_error(console: Console) -> None:
    import hypothesis
    import requests
    import schemathesis
    from schemathesis.checks import not_a_server_error

    with console.client("approver") as client:
        document = client.get("/api/openapi.json").json()
        assert all(
            "x-permission" in op for path in document["paths"].values() for op in path.values()
        )
    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    session.cert = tuple(str(p) for p in console.certs["approver"])  # type: ignore[assignment]
    session.verify = str(console.web.ca_file)
    session.trust_env = False  # else $REQUESTS_CA_BUNDLE would override verify

    def sign_in() -> None:
        reply = session.post(console.url + "api/session", json={})
        reply.raise_for_status()
        session.headers["x-csrf-token"] = reply.json()["csrf_token"]

    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        sign_in()  # once per operation: DELETE /api/session ends it (401s, no 5xx)

        @hypothesis.settings(
            max_examples=5,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.generate],
        )
        @hypothesis.given(case=operation.as_strategy())
        def check(case: Any) -> None:
            nonlocal ran
            case.call_and_validate(
                base_url=console.url.rstrip("/"),
                session=session,
                checks=[not_a_server_error],
                verify=session.verify,
            )
            ran += 1

        check()
    assert ran >= 10
    session.close()


# -- proposals ---------------------------------------------------------------------


def test_a_payment_run_is_filed_by_three_people_through_the_api(console: Console) -> None:
    period = console.ctx.today().strftime("%Y-%m")
    with (
        console.client("entry_clerk") as clerk,
        console.client("reviewer") as reviewer,
        console.client("approver") as approver,
    ):
        for payload, field in [
            ({"kind": "bank_make", "payload": {"period": "2026-13"}}, "period"),
            ({"kind": "lottery", "payload": {}}, "kind"),
            ({"kind": "roster_import", "payload": {"path": "/etc/passwd"}}, "payload.path"),
        ]:
            bad = clerk.post("/api/proposals", json=payload)
            assert bad.status_code == 422 and bad.json()["field"] == field, bad.text
        made = clerk.post(
            "/api/proposals", json={"kind": "bank_make", "payload": {"period": period}}
        )
        assert made.status_code == 201, made.text
        pid = made.json()["id"]
        assert made.json()["next_action"] == "recheck" and made.json()["levels"] == 3
        assert clerk.post(f"/api/proposals/{pid}/recheck", json={}).status_code == 403
        waiting = reviewer.get("/api/proposals").json()["waiting"]
        assert [p["id"] for p in waiting] == [pid] and waiting[0]["you_may"] == [
            "recheck",
            "reject",
        ]
        assert approver.get("/api/proposals").json()["waiting"] == []
        early = approver.post(f"/api/proposals/{pid}/recheck", json={})  # an approver's role
        assert early.status_code == 403
        uncoded = reviewer.post(f"/api/proposals/{pid}/recheck", json={"reason": "totals match"})
        assert uncoded.status_code == 403 and uncoded.json()["field"] == "otp", uncoded.text
        assert "needs a second factor" in uncoded.json()["error"]
        malformed = reviewer.post(f"/api/proposals/{pid}/recheck", json={"otp": "12"})
        assert malformed.status_code == 422 and malformed.json()["field"] == "otp"
        # the reviewer has lost their phone: a recovery code (typed loosely) rechecks, and
        # the answer warns that two are left (seven were used before)
        codes = console.phones.recovery["reviewer"]
        _use_recovery_codes(console, "reviewer", codes[:7])
        checked = reviewer.post(
            f"/api/proposals/{pid}/recheck",
            json={"reason": "totals match", "otp": codes[7].lower().replace("-", " ")},
        )
        assert checked.status_code == 200 and checked.json()["done"] == 2, checked.text
        assert checked.json()["recovery_codes_left"] == 2
        assert "only 2 recovery code(s) of reviewer left" in checked.json()["warning"]
        shown = reviewer.get(f"/api/proposals/{pid}").json()
        assert shown["recovery_codes_left"] is None and "warning" not in shown
        again = reviewer.post(f"/api/proposals/{pid}/approve", json={})
        assert again.status_code == 403
        code = console.phones.code("approver")
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        refused = approver.post(f"/api/proposals/{pid}/approve", json={"otp": wrong})
        assert refused.status_code == 403 and "otp: wrong code" in refused.json()["error"]
        assert approver.get(f"/api/proposals/{pid}").json()["status"] == "open"
        reused = approver.post(f"/api/proposals/{pid}/approve", json={"otp": codes[7]})
        assert reused.status_code == 403 and reused.json()["field"] == "otp"  # not theirs
        assert "wrong recovery code" in reused.json()["error"]
        applied = approver.post(f"/api/proposals/{pid}/approve", json={"reason": "ok", "otp": code})
        assert applied.status_code == 200, applied.text
        assert applied.json()["status"] == "applied"
        assert applied.json()["recovery_codes_left"] is None and "warning" not in applied.json()
        assert Path(applied.json()["result"]["path"]).exists()
        closed = approver.post(f"/api/proposals/{pid}/reject", json={"reason": "late"})
        assert closed.status_code == 409
        assert reviewer.get("/api/proposals/999999").status_code == 404
    with console.engine.connect() as conn:
        status = conn.scalar(
            sa.select(schema.payment_runs.c.status).where(schema.payment_runs.c.period == period)
        )
    assert status == "filed"


def _use_recovery_codes(console: Console, who: str, codes: list[str]) -> None:
    """``who`` uses up ``codes`` (recovery codes) for something else."""
    cipher = otp.OtpCipher.from_file(console.staff.otp_key_file)
    actor = Actor(who, frozenset({Role(who)}))
    for code in codes:
        with console.engine.begin() as conn:
            otp.verify(conn, cipher, actor, code, "a test", dt.datetime.now(dt.UTC))


def _open_pair(console: Console, tag: str) -> tuple[Any, Any]:
    """A money proposal (a hold, entered by the entry clerk) and a staff proposal (a new
    account, entered by the administrator ``admin``), both open."""
    with console.engine.connect() as conn:
        retiree = conn.scalar(sa.select(schema.retirees.c.id_number).limit(1))
    clerk = Actor("entry_clerk", frozenset({Role.ENTRY_CLERK}))
    hold = {"retiree_id": retiree, "action": "place", "note": "bank letter returned"}
    money = proposals.propose(console.engine, clerk, "hold", hold, settings=console.ctx.proposals)
    newcomer = {"staff_id": f"new-{tag}", "name": "New Clerk", "roles": ["entry_clerk"]}
    staff = proposals.propose(
        console.engine, ADMIN, "staff_add", newcomer, settings=console.ctx.proposals
    )
    return money, staff


def _close(console: Console, *found: Any) -> None:
    """Reject what is still open (as a reviewer or an administrator, whoever may)."""
    for p in found:
        if proposals.show(console.engine, p.id, 0).status == "open":
            who = ADMIN_2 if p.kind in STAFF_KINDS else APPROVER
            proposals.reject(console.engine, who, p.id, "test over")


def test_the_proposal_routes_by_kind_from_the_one_table(console: Console) -> None:
    """Each proposal route with an id x role x (money, staff) proposal, generated from
    ``access.PERMISSIONS`` and its ``staff_only``: an administrator reads and decides
    staff proposals only; the rest as the matrix above. A decision is a reject without
    its reason: allowed -> 422 (the reason), refused -> 403; a resume of an open proposal:
    allowed -> 409 (nothing to resume); nothing changes."""
    money, staff = _open_pair(console, "matrix")
    checked = 0
    try:
        with contextlib.ExitStack() as stack:
            clients = {r.value: stack.enter_context(console.client(r.value)) for r in Role}
            for route in _routes(console):
                if "{proposal_id}" not in route.path:
                    continue
                key = route.openapi_extra["x-permission"]  # type: ignore[index]
                for role in Role:
                    limited = access.staff_only(Actor("x", frozenset({role})), key)
                    for p in (money, staff):
                        allowed = role in access.roles_for(key) and (
                            p.kind in STAFF_KINDS or not limited
                        )
                        client = clients[role.value]
                        path = route.path.replace("{proposal_id}", str(p.id))
                        path = path.replace("{action}", "reject")
                        if "POST" in route.methods:
                            body: dict[str, Any] = (
                                {"json": {"reason": ""}}
                                if path.startswith("/api/")
                                else {"data": {"csrf_token": client.headers["x-csrf-token"]}}
                            )
                            reply = client.post(path, **body)
                            # a resume: nothing to resume (it is open) -> 409
                            expected = (
                                (409 if path.endswith("/resume") else 422) if allowed else 403
                            )
                        else:
                            reply = client.get(path)
                            expected = 200 if allowed else 403
                        assert reply.status_code == expected, (path, role, p.kind, reply.text)
                        checked += 1
        assert checked == 6 * len(Role) * 2
        for p in (money, staff):
            shown = proposals.show(console.engine, p.id, 0)
            assert (shown.status, len(shown.steps)) == ("open", 1)
    finally:
        _close(console, money, staff)


def test_an_administrator_decides_a_staff_proposal_in_the_console(console: Console) -> None:
    money, staff = _open_pair(console, "api")
    with console.client("admin-2", signed_in=False) as browser:
        form = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/signin").text)
        assert form is not None
        landed = browser.post("/signin", data={"csrf_token": form.group(1)})
        assert landed.headers["location"] == "/proposals"  # no dashboard for them
    try:
        with console.client("admin-2") as admin2, console.client("administrator") as admin:
            listed = admin2.get("/api/proposals").json()
            assert staff.id in [p["id"] for p in listed["waiting"]]
            assert {p["kind"] for p in listed["waiting"] + listed["latest"]} <= STAFF_KINDS
            mine = next(p for p in listed["waiting"] if p["id"] == staff.id)
            assert mine["you_may"] == ["approve", "reject"]
            page = admin2.get("/proposals")
            assert page.status_code == 200 and "add staff new-api" in page.text
            assert money.summary not in page.text
            shown = admin2.get(f"/proposals/{staff.id}")
            assert shown.status_code == 200 and 'action="/proposals/' in shown.text
            for action in ("approve", "recheck", "reject"):  # money: refused at the API
                refused = admin2.post(
                    f"/api/proposals/{money.id}/{action}", json={"reason": "mine now"}
                )
                assert refused.status_code == 403, refused.text
                assert "staff proposals only" in refused.json()["error"]
            own = admin.post(f"/api/proposals/{staff.id}/approve", json={})
            assert own.status_code == 403 and "entered proposal" in own.json()["error"]
            done = admin2.post(
                f"/proposals/{staff.id}/approve",
                data={"reason": "form 7", "csrf_token": admin2.headers["x-csrf-token"]},
            )
            assert done.status_code == 303, done.text
        applied = proposals.show(console.engine, staff.id, 0)
        assert applied.status == "applied" and applied.steps[-1].staff_id == "admin-2"
        assert accounts.get(console.engine, "new-api") is not None
        held = proposals.show(console.engine, money.id, 0)
        assert (held.status, len(held.steps)) == ("open", 1)
    finally:
        _close(console, money, staff)


# -- per-kind proposal forms ---------------------------------------------------------------


CLOSER = Actor("closer", frozenset({Role.REVIEWER, Role.APPROVER}))


def _drop(console: Console, proposal_id: int) -> None:
    """Reject an open proposal whatever step it waits for (a reviewer's or an approver's,
    or the second administrator's)."""
    found = proposals.show(console.engine, proposal_id, 0)
    if found.status == "open":
        who = ADMIN_2 if found.kind in STAFF_KINDS else CLOSER
        proposals.reject(console.engine, who, proposal_id, "form test over")


def _proposal_count(console: Console) -> int:
    with console.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(proposal_table)) or 0)


def _enters(role: Role, kind: str) -> bool:
    """From the table: ``proposal_enter``'s roles; those it admits by ``staff_only`` enter
    the staff kinds only, the others every kind but those."""
    limited = access.staff_only(Actor("x", frozenset({role})), "proposal_enter")
    return role in access.roles_for("proposal_enter") and (kind in STAFF_KINDS) == limited


def test_each_kinds_form_renders_for_those_who_may_enter_it(console: Console) -> None:
    with contextlib.ExitStack() as stack:
        clients = {r: stack.enter_context(console.client(r.value)) for r in Role}
        for role, client in clients.items():
            listed = client.get("/proposals")
            for kind, handler in proposals.KINDS.items():
                page = client.get("/proposals/new", params={"kind": kind})
                if not _enters(role, kind):
                    assert page.status_code == 403, (role, kind, page.status_code)
                    assert f'?kind={kind}"' not in listed.text
                    continue
                assert page.status_code == 200, (role, kind, page.text)
                assert f'name="proposal_kind" value="{kind}"' in page.text
                for field in handler.fields:
                    name = proposing.input_name(field)
                    assert f'name="{name}"' in page.text, (kind, name)
                    assert field.label.replace("'", "&#39;") in page.text, (kind, field.label)
                assert f'href="/proposals/new?kind={kind}"' in listed.text
    assert {k for k in proposals.KINDS if _enters(Role.ENTRY_CLERK, k)} == (
        set(proposals.KINDS) - STAFF_KINDS
    )
    assert {k for k in proposals.KINDS if _enters(Role.ADMINISTRATOR, k)} == STAFF_KINDS
    assert all(
        not _enters(r, k)
        for r in set(Role) - {Role.ENTRY_CLERK, Role.ADMINISTRATOR}
        for k in proposals.KINDS
    )


def _referred(console: Console, retiree: str) -> str:
    """An assisted pass ingest referred to review (as ``central.certification`` stores it)."""
    result = uuid.uuid4()
    now = dt.datetime.now(dt.UTC)
    with console.engine.begin() as conn:
        conn.execute(
            schema.results.insert().values(
                result_id=result,
                device_id="term-forms",
                seq=result.int % 2**31,  # unique per terminal
                kid="0" * 64,
                retiree_id=retiree,
                method="assisted",
                decision="pass",
                channel="desk",
                device_time=now,
                received_at=now,
                applied=False,
                evidence={"assisted": {"staff_id": "desk-7"}},
            )
        )
        conn.execute(
            schema.events.insert().values(
                at=now,
                kind="certification_referred",
                retiree_id=retiree,
                result_id=result,
                device_id="term-forms",
                actor="ingest",
                detail={
                    "referred": "assisted pass of a repeat",
                    "referred_until": (now.date() + dt.timedelta(days=360)).isoformat(),
                },
            )
        )
    return str(result)


def _runs(console: Console) -> tuple[str, str]:
    """This month's payment run filed (to send; the API test before files it too) and the
    next month's computed (to file): runs follow each other, at most a month ahead."""
    resources = console.ctx.resources
    assert resources is not None
    bank = resources.cfg.bank
    second = Period.of(console.ctx.today())
    first = second.shift(1)

    def status(period: Period) -> str | None:
        with console.engine.connect() as conn:
            return conn.scalar(
                sa.select(schema.payment_runs.c.status).where(
                    schema.payment_runs.c.period == str(period)
                )
            )

    for period in (second, first):
        if status(period) is None:
            runs.run(console.engine, period, Policy())
    if status(second) == "computed":
        key = bankfile.load_public_key(bank.encrypt_pub, "bank.encrypt_pub")
        bankfile.make(console.engine, second, bank.payer, bank.out_dir, resources.sign_key, key)
    return str(first), str(second)


def _csr(staff_id: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, staff_id)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


FormCase = tuple[str, str, dict[str, Any], dict[str, Any], str | None]
"""(who, kind, the API's payload, the form's fields, the uploaded CSV)."""


def _good_forms(console: Console) -> list[FormCase]:
    """A good entry of every kind, as the API's JSON and as the form's fields."""
    today = console.ctx.today()
    with console.engine.connect() as conn:
        people = conn.execute(
            sa.select(schema.retirees)
            .where(
                schema.retirees.c.status == "active",
                schema.retirees.c.certified_until < today,
            )
            .order_by(schema.retirees.c.id_number)
            .limit(2)
        ).all()
    one, two = people
    roster_csv = (
        "id_number,name,sex,birth_date,community,monthly_amount,bank_account,account_name\n"
        f"{one.id_number},{one.name},{one.sex},{one.birth_date},{one.community},"
        f"{(one.monthly_amount_cents + 5_000) / 100:.2f},{one.bank_account},{one.account_name}\n"
    )
    death_csv = f"id_number,birth_date,death_date\n{two.id_number},{two.birth_date},{today}\n"
    to_file, to_send = _runs(console)
    result = _referred(console, two.id_number)
    until = (today + dt.timedelta(days=60)).isoformat()
    later = (today + dt.timedelta(days=40)).isoformat()
    csr = _csr("auditor")
    clerk, admin = "entry_clerk", "administrator"
    return [
        (clerk, "roster_import", {"csv": roster_csv}, {}, roster_csv),
        (
            clerk,
            "registry_import",
            {"kind": "death", "csv": death_csv, "partial": False},
            {"kind": "death"},
            death_csv,
        ),
        (
            clerk,
            "hold",
            {"retiree_id": one.id_number, "action": "place", "note": "bank letter returned"},
            {"retiree_id": one.id_number, "action": "place", "note": "bank letter\r\nreturned"},
            None,
        ),
        (
            clerk,
            "retiree_change",
            {"retiree_id": one.id_number, "monthly_amount": "2345.67", "note": "court order"},
            {
                "retiree_id": f" {one.id_number} ",
                "monthly_amount": "2345.67",
                "bank_account": "",
                "account_name": "",
                "note": "court order",
            },
            None,
        ),
        (
            clerk,
            "certification",
            {
                "retiree_id": one.id_number,
                "certified_until": until,
                "reason": "home visit",
                "evidence": "letter 2026/118",
            },
            {
                "retiree_id": one.id_number,
                "certified_until": until,
                "reason": "home visit",
                "evidence": "letter 2026/118",
            },
            None,
        ),
        (clerk, "bank_make", {"period": to_file}, {"period": to_file}, None),
        (clerk, "bank_send", {"period": to_send}, {"period": to_send}, None),
        (
            clerk,
            "assisted_review",
            {"result_id": result, "decision": "certify", "reason": "seen at the desk"},
            {"result_id": result, "decision": "certify", "reason": "seen at the desk"},
            None,
        ),
        (
            clerk,
            "policy",
            {
                "effective_from": later,
                "params": {"grace_days": 7, "assisted_review_repeat": False},
                "note": "the new decree",
            },
            {
                "effective_from": later,
                "params.validity_months": "",
                "params.grace_days": "7",
                "params.assisted_review_age": "",
                "params.assisted_review_repeat": "false",
                "note": "the new decree",
            },
            None,
        ),
        (
            admin,
            "staff_add",
            {"staff_id": "form-new", "name": "Form Newcomer", "roles": ["entry_clerk"]},
            {
                "staff_id": "form-new",
                "name": "Form Newcomer",
                "roles": ["entry_clerk"],
                "communities": "",
                "sites": "",
            },
            None,
        ),
        (
            admin,
            "staff_grant",
            {"staff_id": "reviewer", "role": "coordinator", "communities": ["Chaoyang"]},
            {"staff_id": "reviewer", "role": "coordinator", "communities": "Chaoyang"},
            None,
        ),
        (
            admin,
            "staff_revoke_role",
            {"staff_id": "two-roles", "role": "reviewer"},
            {"staff_id": "two-roles", "role": "reviewer"},
            None,
        ),
        (
            admin,
            "staff_active",
            {"staff_id": "locked", "active": False},
            {"staff_id": "locked", "active": "false"},
            None,
        ),
        (
            admin,
            "staff_cert",
            {"staff_id": "auditor", "csr": csr, "days": 30},
            {"staff_id": "auditor", "csr": csr.replace("\n", "\r\n"), "days": "30"},
            None,
        ),
    ]


def _post_form(
    client: httpx.Client, kind: str, fields: dict[str, Any], csv_text: str | None
) -> httpx.Response:
    files = {"csv": ("upload.csv", csv_text.encode(), "text/csv")} if csv_text else None
    return client.post("/proposals", data={"proposal_kind": kind, **fields}, files=files)


def _stored(console: Console, proposal_id: int) -> tuple[str, str, str, dict[str, Any]]:
    found = proposals.show(console.engine, proposal_id, 0)
    return found.kind, found.target, found.summary, found.payload


def test_a_good_form_enters_what_the_api_would(console: Console) -> None:
    """Every kind entered through its form is the proposal the API makes of the same values
    (kind, target, summary and the stored payload)."""
    cases = _good_forms(console)
    assert {kind for _, kind, *_ in cases} == set(proposals.KINDS)
    with console.client("entry_clerk") as clerk, console.client("administrator") as admin:
        for who, kind, api_payload, fields, csv_text in cases:
            client = clerk if who == "entry_clerk" else admin
            made = client.post("/api/proposals", json={"kind": kind, "payload": api_payload})
            assert made.status_code == 201, (kind, made.text)
            by_api = proposals.show(console.engine, made.json()["id"], 0)
            _drop(console, by_api.id)  # a second open one of some kinds is refused
            entered = _post_form(client, kind, fields, csv_text)
            assert entered.status_code == 303, (kind, entered.text)
            form_id = int(entered.headers["location"].rsplit("/", 1)[1])
            try:
                assert _stored(console, form_id) == _stored(console, by_api.id), kind
                assert proposals.show(console.engine, form_id, 0).created_by == (
                    "admin" if who == "administrator" else "entry_clerk"
                )
            finally:
                _drop(console, form_id)


def test_the_assisted_page_links_each_referral_to_its_form_filled_in(console: Console) -> None:
    with console.engine.connect() as conn:
        retiree = conn.scalar(
            sa.select(schema.retirees.c.id_number).order_by(schema.retirees.c.id_number).limit(1)
        )
    result = _referred(console, retiree)
    with console.client("entry_clerk") as clerk, console.client("reviewer") as reviewer:
        link = f"/proposals/new?kind=assisted_review&amp;result_id={result}"
        assert link in clerk.get("/assisted").text
        assert link not in reviewer.get("/assisted").text  # not theirs to enter
        form = clerk.get(link.replace("&amp;", "&"))
        assert form.status_code == 200
        assert f'name="result_id" id="result_id" value="{result}"' in form.text


@pytest.mark.parametrize(
    ("who", "kind", "fields", "csv_text", "field", "kept"),
    [
        (
            "entry_clerk",
            "hold",
            {"retiree_id": "12345", "action": "place", "note": "returned letter"},
            None,
            "retiree_id",
            "returned letter",
        ),
        ("entry_clerk", "bank_make", {"period": "2026-13"}, None, "period", "2026-13"),
        (
            "entry_clerk",
            "policy",
            {"effective_from": "2099-01-01", "params.grace_days": "400", "note": "decree 9"},
            None,
            "params.grace_days",
            "decree 9",
        ),
        (
            "entry_clerk",
            "certification",
            {"retiree_id": "", "certified_until": "soon", "reason": "x", "evidence": "y"},
            None,
            "retiree_id",
            'value="soon"',
        ),
        (
            "entry_clerk",
            "roster_import",
            {"partial": "true"},
            "id_number,name\nnot-a-number,Nobody\n",
            "csv",
            "choose the file again",
        ),
        (
            "administrator",
            "staff_cert",
            {"staff_id": "auditor", "csr": "not a request", "days": "30"},
            None,
            "csr",
            "not a request",
        ),
        (
            "administrator",
            "staff_add",
            {"staff_id": "form-bad", "name": "Bad Roles", "roles": ["entry_clerk", "auditor"]},
            None,
            "staff_id",
            "Bad Roles",
        ),
    ],
)
def test_a_bad_form_is_shown_again_with_its_message(
    console: Console,
    who: str,
    kind: str,
    fields: dict[str, Any],
    csv_text: str | None,
    field: str,
    kept: str,
) -> None:
    """The kind's ``prepare`` refuses: the form again (422), the values kept, the message
    next to the field it names; nothing is entered."""
    before = _proposal_count(console)
    with console.client(who) as client:
        page = _post_form(client, kind, fields, csv_text)
        assert page.status_code == 422, page.text
        shown = re.search(
            rf'<span class="problem" role="alert" id="{re.escape(field)}-error">([^<]*)', page.text
        )
        assert shown is not None, page.text
        assert shown.group(1).startswith(field.rsplit(".", maxsplit=1)[-1] + ":"), shown.group(1)
        assert kept in page.text.replace("&#34;", '"')
        assert f'name="proposal_kind" value="{kind}"' in page.text
        token = client.headers.pop("x-csrf-token")  # and without the session's token: refused
        unsafe = _post_form(client, kind, fields, csv_text)
        assert unsafe.status_code == 403 and "CSRF" in unsafe.text
        client.headers["x-csrf-token"] = token
    assert _proposal_count(console) == before


def test_an_administrator_enters_staff_proposals_by_form_only(console: Console) -> None:
    """The administrator enters a new account through its form; a money kind is refused at
    the page, the form and the API; an entry clerk is refused the staff form."""
    with console.engine.connect() as conn:
        retiree = conn.scalar(sa.select(schema.retirees.c.id_number).limit(1))
    hold = {"retiree_id": retiree, "action": "place", "note": "mine now"}
    before = _proposal_count(console)
    with console.client("administrator") as admin, console.client("entry_clerk") as clerk:
        listed = admin.get("/proposals").text
        assert 'href="/proposals/new?kind=staff_add"' in listed
        assert 'href="/proposals/new?kind=hold"' not in listed
        page = admin.get("/proposals/new", params={"kind": "hold"})
        assert page.status_code == 403 and "staff proposals only" in page.text
        form = _post_form(admin, "hold", hold, None)
        assert form.status_code == 403 and "staff proposals only" in form.text
        api = admin.post("/api/proposals", json={"kind": "hold", "payload": hold})
        assert api.status_code == 403 and api.json()["field"] == "kind", api.text
        assert _proposal_count(console) == before
        newcomer = {"staff_id": "form-admin", "name": "Form Admin", "roles": ["reviewer"]}
        refused = _post_form(clerk, "staff_add", newcomer, None)
        assert refused.status_code == 403
        assert _proposal_count(console) == before
        entered = _post_form(admin, "staff_add", newcomer, None)
        assert entered.status_code == 303, entered.text
        shown = admin.get(entered.headers["location"])
        assert shown.status_code == 200 and "add staff form-admin" in shown.text
    made = proposals.show(console.engine, int(entered.headers["location"].rsplit("/", 1)[1]), 0)
    try:
        assert (made.kind, made.created_by, made.status) == ("staff_add", "admin", "open")
        assert made.payload["roles"] == ["reviewer"]
    finally:
        _close(console, made)


# -- audit -------------------------------------------------------------------------


def test_decisions_are_in_the_audit_chain_auditors_verify_and_export_it(
    console: Console,
) -> None:
    with console.client("reviewer") as client:
        item = _open_item(console, client, "registry")
        decided = client.post(
            f"/api/reviews/registry/{item}",
            json={"decision": "not_ours", "reason": "another city's record"},
        )
        assert decided.status_code == 200
        assert client.get("/api/audit").status_code == 403
    with console.client("auditor") as client:
        entries = client.get("/api/audit", params={"limit": 1000}).json()["entries"]
        mine = [e for e in entries if e["action"] == "review.decide"]
        assert any(e["target"] == f"registry:{item}" and e["staff_id"] == "reviewer" for e in mine)
        signins = [e for e in entries if e["action"] == "staff.signin"]
        assert {e["via"] for e in signins} >= {"api"}
        assert client.get("/api/audit/verify").json()["ok"] is True
        export = client.get("/api/audit.csv")
        assert export.status_code == 200
        assert len(export.text.splitlines()) >= len(entries) + 1
        assert "Chain intact" in client.get("/audit", params={"verify": "true"}).text


# -- the command --------------------------------------------------------------------


def test_console_print_url_and_a_bad_certificate_path(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from central.cli import main

    config = tmp_path / "central.toml"
    config.write_text('[console]\nhost = "127.0.0.1"\nport = 9443\ncert_file = "missing.pem"\n')
    printed = CliRunner().invoke(main, ["--config", str(config), "console", "--print-url"])
    assert printed.exit_code == 0 and printed.output.strip() == "https://127.0.0.1:9443/"
    refused = CliRunner().invoke(main, ["--config", str(config), "console"])
    assert refused.exit_code == 2
    assert "console.cert_file" in refused.output and "Traceback" not in refused.output


def test_a_tampered_audit_log_shows_as_broken(console: Console) -> None:
    """Last in the module: it leaves the chain broken."""
    from central.staff.tables import audit_log

    with console.engine.connect() as conn:
        target = conn.scalar(
            sa.select(sa.func.min(audit_log.c.id)).where(audit_log.c.action == "review.decide")
        )
    with console.engine.begin() as conn:  # past the append-only triggers, as a DBA could
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
        else:
            conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        conn.execute(audit_log.update().where(audit_log.c.id == target).values(staff_id="x"))
    with console.client("auditor") as client:
        broken = client.get("/api/audit/verify").json()
        page = client.get("/audit", params={"verify": "true"}).text
    assert broken["ok"] is False and broken["entry_id"] == target
    assert "changed" in broken["problem"]
    assert f"Chain broken at entry {target}" in page


def test_systemd_hears_ready_watchdog_and_stopping(
    console: Console, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import threading
    import time

    from central.console import server
    from provisioning.stack import free_port

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    settings = console.ctx.settings.model_copy(update={"port": free_port()})
    served = server.server(console.app, settings, server.tls_context(settings, console.staff))
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    heard: list[str] = []
    deadline = time.monotonic() + 10
    while "WATCHDOG=1" not in heard and time.monotonic() < deadline:
        heard += listener.recv(4096).decode().splitlines()
    served.should_exit = True
    while "STOPPING=1" not in heard and time.monotonic() < deadline:
        heard += listener.recv(4096).decode().splitlines()
    thread.join(10)
    listener.close()
    # (the module's own console, in this process too, pings the same socket meanwhile)
    ready = heard.index("READY=1")
    assert heard[ready + 1] == f"STATUS=serving https://127.0.0.1:{settings.port}/"
    assert "WATCHDOG=1" in heard and heard[-1] == "STOPPING=1"


def test_reminders_show_who_did_not_react_to_their_coordinator(console: Console) -> None:
    """Reminders as `reminders run` records them: the coordinator sees those of their
    communities only, and who has not certified since; the auditor sees everyone."""
    with console.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                schema.retirees.c.id_number,
                schema.retirees.c.community,
                schema.retirees.c.certified_until,
            ).order_by(schema.retirees.c.id_number)
        ).all()
    mine = next(r for r in rows if r.community in COMMUNITIES)
    other = next(r for r in rows if r.community not in COMMUNITIES)
    # due the day after they are certified until: they have not certified since (not reacted)
    with console.engine.begin() as conn:
        conn.execute(
            reminders.reminders.insert(),
            [
                {"key": f"matrix-{r.id_number}", "retiree_id": r.id_number, "stage": "before",
                 "due_date": (r.certified_until or dt.date.today()) + dt.timedelta(days=1),
                 "reminded_on": dt.date.today(), "channel": "sms"}
                for r in (mine, other)
            ],
        )  # fmt: skip
    mine, other = mine.id_number, other.id_number
    try:
        with console.client("coordinator") as client:
            seen = client.get("/api/reminders", params={"not_reacted": "true"}).json()["rows"]
            assert mine in {r["retiree_id"] for r in seen}
            assert other not in {r["retiree_id"] for r in seen}
            page = client.get("/reminders")
            assert page.status_code == 200 and mine in page.text and other not in page.text
        with console.client("auditor") as client:
            seen = client.get("/api/reminders").json()["rows"]
            assert {mine, other} <= {r["retiree_id"] for r in seen}
        with console.client("administrator") as client:
            assert client.get("/api/reminders").status_code == 403
    finally:
        with console.engine.begin() as conn:
            conn.execute(
                reminders.reminders.delete().where(reminders.reminders.c.key.like("matrix-%"))
            )


# -- fleet: each terminal's health, as `fleet status` -----------------------------------


def _mqtt(device_id: str, kind: str, payload: bytes) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid=1, topic=topics.device_topic(device_id, kind).encode())
    msg.payload = payload
    return msg


def test_the_fleet_page_lists_each_terminal(console: Console) -> None:
    """A terminal heard through the real status/telemetry handlers shows with its figures;
    the page is refused to a coordinator, as the one table says."""
    health = FleetHealth(console.engine, lambda _device: True)
    report = Telemetry(
        device_id="term-1",
        device_time=dt.datetime.now(dt.UTC),
        uptime_s=5.0,
        software="0.1.0",
        outbox_pending=3,
        outbox_inflight=0,
        oldest_pending_s=42.0,
        sessions_today=7,
        disk_free_bytes=5 * 10**9,
    )
    health.on_status(_mqtt("term-1", "status", b"online"))
    health.on_telemetry(_mqtt("term-1", "telemetry", messages.encode(report)))
    assert health.flush() == 2
    with console.client(Role.AUDITOR.value) as client:
        found = client.get("/api/fleet")
        page = client.get("/fleet")
    assert found.status_code == 200 and page.status_code == 200
    row = {t["device_id"]: t for t in found.json()["terminals"]}["term-1"]
    assert (row["state"], row["backlog"], row["oldest_s"]) == ("online", 3, 42.0)
    assert (row["sessions_today"], row["disk_free_mb"], row["software"]) == (7, 5000, "0.1.0")
    assert row["site"] != "(not enrolled)"  # its certificate is in the devices folder
    assert "<td>term-1</td>" in page.text and "<td>online</td>" in page.text
    with console.client(Role.COORDINATOR.value) as client:
        assert client.get("/api/fleet").status_code == 403
