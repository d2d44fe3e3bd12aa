"""The console in Chromium with client certificates: a coordinator's morning (sign in,
dashboard, drill-down, CSV download), an approver's review decision, three people filing
and releasing a bank file (three browser contexts, three certificates, a real SFTP
server), a roster import's diff, an entry clerk's hold through its form, an administrator
approving a staff proposal, and no certificate -> no page.
``LIFECERT_CONSOLE_SCREENSHOTS=docs/img`` keeps the screenshots for the docs."""

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from central import proposals
from central.staff import accounts
from central.store import schema
from tests.integration.console_support import ADMIN, COMMUNITIES, Console, start

pytestmark = pytest.mark.integration
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console-browser")
    yield from start(root, f"sqlite:///{root / 'central.sqlite'}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


def _context(browser: Any, console: Console, who: str | None) -> Any:
    origin = console.url.rstrip("/")
    certificates = []
    if who is not None:
        pem, key = console.certs[who]
        certificates = [{"origin": origin, "certPath": str(pem), "keyPath": str(key)}]
    return browser.new_context(
        client_certificates=certificates,
        ignore_https_errors=True,  # the test CA's server certificate
        accept_downloads=True,
        viewport={"width": 1200, "height": 900},
    )


def _shot(page: Any, name: str) -> None:
    folder = os.environ.get("LIFECERT_CONSOLE_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"console-{name}.png"), full_page=True)


def _sign_in(page: Any, console: Console) -> None:
    page.goto(console.url)
    assert "/signin" in page.url
    page.get_by_role("button", name="Sign in with this certificate").click()
    page.wait_for_url(console.url)


def test_a_coordinators_morning(browser: Any, console: Console, tmp_path: Path) -> None:
    context = _context(browser, console, "coordinator")
    try:
        page = context.new_page()
        _sign_in(page, console)
        assert page.get_by_role("heading", name="Coverage per community").is_visible()
        assert page.locator("svg.chart").count() >= 2
        table = page.locator("table").first.inner_text()
        assert all(c in table for c in COMMUNITIES) and "Xuhui" not in table
        assert page.get_by_role("link", name="Payments").count() == 0  # not theirs
        _shot(page, "dashboard-coordinator")
        row = page.locator("tr", has_text=COMMUNITIES[0])
        row.locator("td").nth(5).get_by_role("link").click()  # the community's overdue
        page.wait_for_url("**/retirees?state=overdue**")
        listed = page.locator("tbody tr").count()
        assert listed >= 1
        _shot(page, "retirees")
        with page.expect_download() as caught:
            page.get_by_role("link", name="Download CSV").click()
        saved = tmp_path / "overdue.csv"
        caught.value.save_as(saved)
        rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
        assert rows and {r["community"] for r in rows} == {COMMUNITIES[0]}
        assert len(rows) == listed or listed == console.ctx.settings.page_size
        other = page.goto(console.url + "retirees?community=Xuhui")
        assert other is not None and other.status == 403
        assert "not one of yours" in page.inner_text("main")
    finally:
        context.close()


def test_an_approver_decides_a_review_item(browser: Any, console: Console) -> None:
    context = _context(browser, console, "approver")
    try:
        page = context.new_page()
        _sign_in(page, console)
        assert page.get_by_role("heading", name="Payment run", exact=False).is_visible()
        _shot(page, "dashboard")
        page.get_by_role("link", name="Reviews").click()
        section = page.locator("section#fraud")
        before = section.locator("tbody tr").count()
        section.locator("select[name=decision]").first.select_option("cleared")
        section.locator("input[name=reason]").first.fill("same person, twins checked at desk")
        _shot(page, "reviews")
        section.get_by_role("button", name="Decide").first.click()
        page.wait_for_url("**/reviews")
        assert "nothing open" in page.locator("section#fraud").inner_text() or (
            page.locator("section#fraud tbody tr").count() == before - 1
        )
    finally:
        context.close()
    auditor = _context(browser, console, "auditor")
    try:
        page = auditor.new_page()
        _sign_in(page, console)
        page.get_by_role("link", name="Audit log").click()
        page.get_by_role("link", name="Verify the whole chain").click()
        assert "Chain intact" in page.inner_text("main")
        assert "review.decide" in page.inner_text("main")
        _shot(page, "audit")
    finally:
        auditor.close()


def test_no_certificate_no_console(browser: Any, console: Console) -> None:
    context = _context(browser, console, None)
    try:
        page = context.new_page()
        with pytest.raises(Exception, match="ERR_"):
            page.goto(console.url)
    finally:
        context.close()


@pytest.fixture
def release_console(tmp_path: Path, bank: Any) -> Iterator[Console]:
    """A console whose payment files go to a real SFTP server (``tests.fixtures.bank``)."""
    yield from start(tmp_path / "release", f"sqlite:///{tmp_path / 'central.sqlite'}", bank)


def test_three_people_file_and_release_the_bank_file(
    browser: Any, release_console: Console, bank: Any
) -> None:
    """Entry clerk, reviewer and approver, each in their own browser with their own
    certificate: file the month's run (bank_make), then release its file (bank_send); the
    reviewer and the approver each type their authenticator app's current code (the
    reviewer a recovery code to release the file: the page says how many are left)."""
    console = release_console
    period = console.ctx.today().strftime("%Y-%m")
    people = {
        who: _context(browser, console, who) for who in ("entry_clerk", "reviewer", "approver")
    }
    try:
        pages = {who: context.new_page() for who, context in people.items()}
        for page in pages.values():
            _sign_in(page, console)
        for kind, done in (("bank_make", "filed"), ("bank_send", "sent")):
            clerk = pages["entry_clerk"]
            clerk.goto(console.url + "proposals")
            clerk.get_by_role("link", name=kind.replace("_", " ").capitalize()).click()
            clerk.get_by_label("Month").fill(period)
            clerk.get_by_role("button", name="Enter").click()
            clerk.wait_for_url("**/proposals/*")
            assert "next: recheck by the reviewer role" in clerk.inner_text("main")
            pid = int(clerk.url.rsplit("/", 1)[1])
            for who, button, after in (
                ("reviewer", "Recheck", "next: approve by the approver role"),
                ("approver", "Approve", f"{kind} · applied"),
            ):
                page = pages[who]
                page.goto(console.url + "proposals")
                waiting = page.locator("table").first
                waiting.get_by_role("link", name=str(pid), exact=True).click()
                lost_phone = kind == "bank_send" and who == "reviewer"
                # a lost phone: a recovery code instead, typed as printed
                phones = console.phones
                code = phones.recovery[who][-1] if lost_phone else phones.code(who)
                page.locator("input[name=otp]").fill(code)
                if kind == "bank_send" and who == "approver":
                    _shot(page, "bank-approve")
                page.get_by_role("button", name=button, exact=True).click()
                page.wait_for_url(f"**/proposals/{pid}*")
                assert after in page.inner_text("main")
                used = "Your step took a recovery code: 9 left."
                assert (used in page.inner_text("main")) == lost_phone
                if lost_phone:  # the count is read from the database, not from the link
                    page.goto(f"{console.url}proposals/{pid}?recovery_left=0&recovery_used=1")
                    assert used in page.inner_text("main")
            if kind == "bank_send":
                _shot(pages["approver"], "bank-release")
            with console.engine.connect() as conn:
                status = conn.scalar(
                    sa.select(schema.payment_runs.c.status).where(
                        schema.payment_runs.c.period == period
                    )
                )
            assert status == done
    finally:
        for context in people.values():
            context.close()
    assert (bank.incoming / f"LIFECERT-{period}.jwe").exists()


def test_a_roster_import_shows_its_diff(browser: Any, console: Console) -> None:
    with console.engine.connect() as conn:
        row = conn.execute(
            sa.select(schema.retirees).order_by(schema.retirees.c.id_number).limit(1)
        ).one()
    csv_text = (
        "id_number,name,sex,birth_date,community,monthly_amount,bank_account,account_name\n"
        f"{row.id_number},{row.name},{row.sex},{row.birth_date},{row.community},"
        f"{(row.monthly_amount_cents + 10_000) / 100:.2f},{row.bank_account},{row.account_name}\n"
    )
    context = _context(browser, console, "entry_clerk")
    try:
        page = context.new_page()
        _sign_in(page, console)
        page.goto(console.url + "proposals/new?kind=roster_import")
        page.get_by_label("Roster file").set_input_files(
            files=[{"name": "roster.csv", "mimeType": "text/csv", "buffer": csv_text.encode()}]
        )
        page.get_by_role("button", name="Enter").click()
        page.wait_for_url("**/proposals/*")
        main = page.inner_text("main")
        assert "0 added, 1 changed" in main and "monthly_amount" in main
        assert page.locator("table.diff tr.changed").count() == 1
        _shot(page, "roster-diff")
    finally:
        context.close()
    with console.engine.connect() as conn:  # nothing changed before the approvals
        amount = conn.scalar(
            sa.select(schema.retirees.c.monthly_amount_cents).where(
                schema.retirees.c.id_number == row.id_number
            )
        )
    assert amount == row.monthly_amount_cents


def test_an_entry_clerk_enters_a_hold_through_its_form(browser: Any, console: Console) -> None:
    """The hold's form: a mistyped ID number comes back with the message by its field and
    the other values kept; corrected, it is entered and waits for the next person."""
    with console.engine.connect() as conn:
        retiree = conn.scalar(
            sa.select(schema.retirees.c.id_number).order_by(schema.retirees.c.id_number.desc())
        )
    context = _context(browser, console, "entry_clerk")
    try:
        page = context.new_page()
        _sign_in(page, console)
        page.get_by_role("link", name="Proposals", exact=True).click()
        page.get_by_role("link", name="Hold", exact=True).click()
        page.wait_for_url("**/proposals/new?kind=hold")
        page.get_by_label("Retiree's ID number").fill(retiree[:-1])
        page.get_by_label("Action").select_option("place")
        page.get_by_label("Why").fill("the bank returned\nthe letter")
        page.get_by_role("button", name="Enter").click()
        problem = page.locator("#retiree_id-error")
        assert problem.inner_text().startswith("retiree_id:")
        assert page.get_by_label("Why").input_value() == "the bank returned\nthe letter"
        _shot(page, "proposal-form")
        page.get_by_label("Retiree's ID number").fill(retiree)
        page.get_by_role("button", name="Enter").click()
        page.wait_for_url("**/proposals/*")
        main = page.inner_text("main")
        assert f"place manual hold on {retiree}" in main
        assert "the bank returned the letter" in main
        assert "hold · open" in main and "Steps: 1 of" in main
    finally:
        context.close()
    with console.engine.connect() as conn:  # nothing held before the approvals
        held = conn.scalar(
            sa.select(sa.func.count())
            .select_from(schema.holds)
            .where(schema.holds.c.retiree_id == retiree)
        )
    assert held == 0


def test_an_administrator_approves_a_staff_proposal(browser: Any, console: Console) -> None:
    """The second administrator signs in, lands on the proposals page and approves the
    account the first one proposed."""
    wanted = {"staff_id": "new-browser", "name": "New Reviewer", "roles": ["reviewer"]}
    staff = proposals.propose(
        console.engine, ADMIN, "staff_add", wanted, settings=console.ctx.proposals
    )
    context = _context(browser, console, "admin-2")
    try:
        page = context.new_page()
        page.goto(console.url)
        page.get_by_role("button", name="Sign in with this certificate").click()
        page.wait_for_url("**/proposals")
        waiting = page.locator("table").first
        waiting.get_by_role("link", name=str(staff.id), exact=True).click()
        page.get_by_role("button", name="Approve", exact=True).click()
        page.wait_for_url(f"**/proposals/{staff.id}")
        assert "staff_add · applied" in page.inner_text("main")
    finally:
        context.close()
    assert accounts.get(console.engine, "new-browser") is not None
