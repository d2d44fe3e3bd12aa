"""The console's Resume button and ``POST /api/proposals/{id}/resume``, over real TLS.

The month's ``bank_make`` is entered and rechecked through the API, then approved in a
child process whose bank file write blocks on a FIFO and which is killed (SIGKILL) there,
as ``test_proposals_resume.py`` does: the proposal is left ``applying`` under the dead
approver's lease (short here, so the test waits for it to run out).
"""

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from central.staff import accounts, ca
from central.staff.identity import Actor, Role
from central.store import schema
from tests.integration.console_support import ADMIN, Console, _write, start
from tests.integration.test_proposals import Resources
from tests.integration.test_proposals_resume import _crash_approving

pytestmark = pytest.mark.integration

APPROVER = Actor("approver", frozenset({Role.APPROVER}))
ENTRANT = "clerk-approver"  # enters the proposal and holds the approver role too
LEASE_S = 40  # the dead approver's lease: long enough to be refused inside it on a slow run


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console-resume")
    for made in start(root, f"sqlite:///{root / 'central.sqlite'}"):
        roles = {Role.ENTRY_CLERK, Role.APPROVER}
        accounts.add(made.engine, ADMIN, ENTRANT, "Clerk and Approver", roles)
        issued = ca.issue(made.engine, made.staff, ADMIN, ENTRANT)
        made.certs[ENTRANT] = _write(root / "certs" / ENTRANT, issued.cert, issued.key)
        yield made


def _crashed(console: Console, period: str) -> tuple[int, Path]:
    """The month's ``bank_make``, entered, rechecked and left applying by a killed approval;
    its id and the bank folder."""
    with console.client(ENTRANT) as clerk, console.client("reviewer") as reviewer:
        made = clerk.post(
            "/api/proposals", json={"kind": "bank_make", "payload": {"period": period}}
        )
        assert made.status_code == 201, made.text
        pid = int(made.json()["id"])
        code = console.phones.code("reviewer")
        checked = reviewer.post(f"/api/proposals/{pid}/recheck", json={"otp": code})
        assert checked.status_code == 200, checked.text
    central = console.ctx.resources
    assert central is not None
    cfg = central.cfg
    short = cfg.proposals.model_copy(update={"apply_lease_s": LEASE_S})
    res = Resources(cfg.model_copy(update={"proposals": short}), central.sign_key)
    out = cfg.bank.out_dir
    out.mkdir(parents=True, exist_ok=True)
    fifo = out / f"LIFECERT-{period}.part"
    os.mkfifo(fifo)
    now = dt.datetime.now(dt.UTC)
    _crash_approving(console.engine, res, pid, APPROVER, console.phones.code("approver", now), now)
    fifo.unlink()
    assert list(out.iterdir()) == []
    return pid, out


def _run_status(console: Console, period: str) -> str:
    with console.engine.connect() as conn:
        return str(
            conn.scalar(
                sa.select(schema.payment_runs.c.status).where(
                    schema.payment_runs.c.period == period
                )
            )
        )


def test_a_crashed_filing_is_resumed_from_its_page_after_its_lease(console: Console) -> None:
    period = console.ctx.today().strftime("%Y-%m")
    pid, out = _crashed(console, period)
    page, api = f"/proposals/{pid}", f"/api/proposals/{pid}/resume"
    with (
        console.client("approver") as approver,
        console.client(ENTRANT) as entrant,
        console.client("entry_clerk") as clerk,
        console.client("reviewer") as reviewer,
        console.client("administrator") as admin,
    ):
        shown = approver.get(f"/api/proposals/{pid}").json()
        assert (shown["status"], shown["apply_by"]) == ("applying", "approver")
        assert "resume" not in shown["you_may"]
        until = dt.datetime.fromisoformat(shown["apply_until"])
        html = approver.get(page).text
        assert "Being applied by approver" in html and f'action="{page}/resume"' not in html
        early = approver.post(api)
        assert early.status_code == 403, early.text
        assert "being applied by approver until" in early.json()["error"]
        form = {"csrf_token": approver.headers["x-csrf-token"]}
        shown_refusal = approver.post(f"{page}/resume", data=form)
        assert shown_refusal.status_code == 403
        assert "being applied by approver until" in shown_refusal.text

        time.sleep(max(0.0, (until - dt.datetime.now(dt.UTC)).total_seconds()) + 1)
        own = entrant.post(api)  # an approver, but the one who entered it
        assert own.status_code == 403 and "entered proposal" in own.json()["error"], own.text
        for other in (clerk, reviewer, admin):  # no approver role; staff proposals only
            assert other.post(api).status_code == 403
        for other in (entrant, clerk, reviewer):
            assert f'action="{page}/resume"' not in other.get(page).text
        assert f'action="{page}/resume"' in approver.get(page).text
        assert approver.get(f"/api/proposals/{pid}").json()["you_may"] == ["resume"]
        assert _run_status(console, period) == "computed"

        unsigned = approver.post(f"{page}/resume", data={}, headers={"x-csrf-token": ""})
        assert unsigned.status_code == 403  # no CSRF token: nothing done
        assert _run_status(console, period) == "computed"
        done = approver.post(f"{page}/resume", data=form)
        assert done.status_code == 303 and done.headers["location"] == page
        assert [f.name for f in out.iterdir()] == [f"LIFECERT-{period}.jwe"]
        applied = approver.get(f"/api/proposals/{pid}").json()
        assert applied["status"] == "applied", applied["reason"]
        assert (applied["apply_by"], applied["you_may"]) == (None, [])
        assert _run_status(console, period) == "filed"
        again = approver.post(api)
        assert again.status_code == 409 and "nothing to resume" in again.json()["error"]
        assert [f.name for f in out.iterdir()] == [f"LIFECERT-{period}.jwe"]
