"""A bank or certificate proposal whose applying process was killed (SIGKILL, in a child
process blocked at its apply step) is finished by ``resume`` exactly once, on SQLite and
PostgreSQL: one bank file, one upload to the real SFTP server, one certificate; a resumer
while the lease is held, a second resumer at the same moment and the wrong people are
refused."""

import contextlib
import datetime as dt
import hashlib
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import tomli_w
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from central import proposals
from central.config import CentralConfig
from central.payments import bankfile, sftp
from central.payments.period import Period
from central.staff import ca, otp
from central.staff.identity import Actor, Role
from central.store import db, schema
from tests.fixtures.bank import Bank
from tests.fixtures.otp import Phones
from tests.fixtures.proposals import staff_cli
from tests.fixtures.staff import StaffPki
from tests.integration.test_proposals import (
    ADMIN,
    APPROVER,
    APRIL,
    CLERK,
    NOW,
    REVIEWER,
    Resources,
    World,
    _audit,
    _make,
    _people,
    _resources,
    _run,
    _staff,
    _status,
)

pytestmark = pytest.mark.integration

SECOND = Actor("approver-2", frozenset({Role.APPROVER}))
LATER = NOW + dt.timedelta(seconds=901)  # past the default lease of 900 s
FILE = f"LIFECERT-{APRIL}.jwe"


@pytest.fixture
def world(migrated_engine: Any, tmp_path: Path, bank: Bank) -> World:
    res = _resources(tmp_path, bank)
    otp.write_key(res.cfg.staff.otp_key_file)
    phones = _staff(migrated_engine, res.cfg.staff.otp_key_file)
    return World(migrated_engine, _people(migrated_engine), res, tmp_path, phones, bank)


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    """A server that accepts connections and never says a word (an SFTP server that hangs;
    closing it resets them)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server


def _hanging(res: Resources, server: socket.socket) -> Resources:
    """``res`` with the bank's SFTP server at the silent ``server``."""
    bank = res.cfg.bank
    port = server.getsockname()[1]
    hangs = bank.sftp.model_copy(update={"port": port, "timeout_s": 120})
    cfg = res.cfg.model_copy(update={"bank": bank.model_copy(update={"sftp": hangs})})
    return Resources(cfg, res.sign_key)


def _approve(
    url: str,
    cfg: dict[str, Any],
    key_pem: bytes,
    proposal_id: int,
    who: str,
    roles: list[str],
    code: str | None,
    now: dt.datetime,
) -> None:
    """The child: approve ``proposal_id`` as ``who`` at ``now`` (it blocks where it applies)."""
    engine = db.create_engine(url, busy_timeout_s=10)
    key = serialization.load_pem_private_key(key_pem, None)
    res = Resources(CentralConfig.model_validate(cfg), key)  # type: ignore[arg-type]
    actor = Actor(who, frozenset(Role(r) for r in roles))
    proposals.approve(engine, actor, proposal_id, resources=res, now=now, code=code)


def _peek(engine: Any, proposal_id: int) -> str:
    """A proposal's status, read without waiting for writers (central's SQLite transactions
    begin IMMEDIATE, and the child holds the write lock while it makes the bank file)."""
    if engine.dialect.name == "sqlite":
        with contextlib.closing(sqlite3.connect(engine.url.database, timeout=1)) as conn:
            found = conn.execute("SELECT status FROM proposals WHERE id = ?", (proposal_id,))
            return str(found.fetchone()[0])
    return proposals.show(engine, proposal_id).status


def _crash_approving(
    engine: Any,
    res: Resources,
    proposal_id: int,
    approver: Actor,
    code: str | None,
    now: dt.datetime = NOW,
) -> None:
    """Approve ``proposal_id`` at ``now`` in a child process with ``res`` (where applying
    blocks), with the approver's ``code`` (bank kinds), and kill it with SIGKILL once the
    approval is committed and it is applying."""
    key_pem = res.sign_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    child = multiprocessing.get_context("spawn").Process(
        target=_approve,
        args=(
            engine.url.render_as_string(hide_password=False),
            res.cfg.model_dump(mode="json"),
            key_pem,
            proposal_id,
            approver.staff_id,
            sorted(approver.roles),
            code,
            now,
        ),
    )
    child.start()
    try:
        deadline = time.monotonic() + 60
        while _peek(engine, proposal_id) != "applying":
            assert child.is_alive(), "the approval ended before it applied"
            assert time.monotonic() < deadline, "the approval never reached applying"
            time.sleep(0.05)
        time.sleep(0.5)  # into its apply step, where it blocks
        assert child.is_alive()
    finally:
        child.kill()
        child.join(10)
    assert child.exitcode == -9


def _entered(w: World, kind: str) -> int:
    kw = {"resources": w.res, "now": NOW}
    p = proposals.propose(w.engine, CLERK, kind, {"period": APRIL}, **kw)
    proposals.recheck(w.engine, REVIEWER, p.id, "matches the run", **w.acting(REVIEWER))
    return p.id


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _make_crashed(w: World) -> tuple[int, Path]:
    """A ``bank_make`` proposal whose approver died writing the bank file: its ``.part``
    is a FIFO nobody reads, so the write blocks until the kill."""
    _run(w)
    number = _entered(w, "bank_make")
    out = w.res.cfg.bank.out_dir
    out.mkdir(parents=True, exist_ok=True)
    fifo = out / f"LIFECERT-{APRIL}.part"
    os.mkfifo(fifo)
    _crash_approving(w.engine, w.res, number, APPROVER, w.phones.code(APPROVER.staff_id, NOW))
    fifo.unlink()
    assert proposals.show(w.engine, number).status == "applying"
    assert _status(w.engine, APRIL) == "computed" and list(out.iterdir()) == []
    return number, out


def _crashed_release(w: World, silent: socket.socket) -> int:
    """A filed run's ``bank_send`` proposal whose approver died uploading to the ``silent``
    SFTP server: nothing reached the bank."""
    _make(w)
    number = _entered(w, "bank_send")
    code = w.phones.code(APPROVER.staff_id, NOW)
    _crash_approving(w.engine, _hanging(w.res, silent), number, APPROVER, code)
    return number


def test_a_crashed_filing_is_resumed_once_by_an_approver_after_its_lease(world: World) -> None:
    w = world
    number, out = _make_crashed(w)
    kw = {"resources": w.res}
    with pytest.raises(proposals.RefusedError, match="being applied by approver-1 until"):
        proposals.resume(w.engine, SECOND, number, now=NOW + dt.timedelta(minutes=5), **kw)
    with pytest.raises(proposals.RefusedError, match="entered proposal"):
        proposals.resume(w.engine, CLERK, number, now=LATER, **kw)
    for wrong in (REVIEWER, ADMIN):
        with pytest.raises(proposals.RefusedError, match="approver role"):
            proposals.resume(w.engine, wrong, number, now=LATER, **kw)
    assert _status(w.engine, APRIL) == "computed"
    done = proposals.resume(w.engine, SECOND, number, now=LATER, **kw)
    assert done.status == "applied", done.reason
    assert [f.name for f in out.iterdir()] == [FILE]
    with w.engine.connect() as conn:
        run = conn.execute(
            sa.select(schema.payment_runs).where(schema.payment_runs.c.period == APRIL)
        ).one()
    assert run.status == "filed"
    assert run.summary["file"]["sealed_sha256"] == _sha(out / FILE)
    assert done.result is not None and done.result["sha256"] == run.file_sha256
    assert "resumed" not in done.result  # it was made now
    assert (done.apply_by, done.apply_until) == (None, None)
    actions = [(e.action, e.staff_id) for e in _audit(w.engine)]
    assert actions[-2:] == [("proposal.resume", "approver-2"), ("proposal.applied", "approver-2")]
    with pytest.raises(proposals.ClosedError, match="nothing to resume"):
        proposals.resume(w.engine, SECOND, number, now=LATER, **kw)


@pytest.mark.parametrize("file", ["intact", "swapped"])
def test_a_filing_made_before_the_crash_is_recorded_not_made_again(world: World, file: str) -> None:
    w = world
    number, out = _make_crashed(w)
    bank = w.res.cfg.bank  # what the dead approver's bankfile.make would have done:
    key = bankfile.load_public_key(bank.encrypt_pub, "bank.encrypt_pub")
    bankfile.make(w.engine, Period.parse(APRIL), bank.payer, bank.out_dir, w.res.sign_key, key)
    if file == "swapped":
        (out / FILE).write_text("someone else's file")
    before = _sha(out / FILE)
    if file == "swapped":
        with pytest.raises(proposals.ProposalError, match="not the file it was filed with"):
            proposals.resume(w.engine, APPROVER, number, resources=w.res, now=LATER)
        failed = proposals.show(w.engine, number)
        assert failed.status == "failed" and "not the file" in (failed.reason or "")
    else:
        done = proposals.resume(w.engine, APPROVER, number, resources=w.res, now=LATER)
        assert done.status == "applied" and done.result is not None
        assert done.result["resumed"].startswith("already done")
        assert done.result["path"] == str(out / FILE) and done.result["count"] == 4
    assert [f.name for f in out.iterdir()] == [FILE] and _sha(out / FILE) == before


@pytest.mark.parametrize("crashed_after", ["approval", "upload", "marked_sent"])
def test_a_crashed_release_is_resumed_with_one_upload(
    world: World, silent: socket.socket, crashed_after: str
) -> None:
    w = world
    assert w.bank is not None
    number = _crashed_release(w, silent)
    assert list(w.bank.incoming.iterdir()) == []
    local = w.res.cfg.bank.out_dir / FILE
    if crashed_after != "approval":  # the dead approver uploaded (and marked it sent)
        sftp.upload(w.res.cfg.bank.sftp, local)
    if crashed_after == "marked_sent":
        bankfile.mark_sent(w.engine, Period.parse(APRIL))
        (w.bank.incoming / FILE).unlink()  # the bank took it: a resend would show
    done = proposals.resume(w.engine, SECOND, number, resources=w.res, now=LATER)
    assert done.status == "applied", done.reason
    assert done.result is not None and done.result["remote"] == str(w.bank.incoming / FILE)
    assert _status(w.engine, APRIL) == "sent"
    if crashed_after == "marked_sent":
        assert list(w.bank.incoming.iterdir()) == []
        assert done.result["resumed"].startswith("already done")
    else:
        assert [f.name for f in w.bank.incoming.iterdir()] == [FILE]
        assert _sha(w.bank.incoming / FILE) == _sha(local)


def test_a_second_resumer_is_refused_while_the_first_holds_the_lease(
    world: World, silent: socket.socket
) -> None:
    w = world
    assert w.bank is not None
    number = _crashed_release(w, silent)
    first: list[BaseException] = []

    def hangs() -> None:
        try:
            proposals.resume(w.engine, SECOND, number, resources=_hanging(w.res, silent), now=LATER)
        except BaseException as exc:  # the upload that hangs fails when the server goes
            first.append(exc)

    thread = threading.Thread(target=hangs)
    thread.start()
    deadline = time.monotonic() + 30
    while proposals.show(w.engine, number).apply_by != "approver-2":
        assert time.monotonic() < deadline, "the first resumer never took the lease"
        time.sleep(0.05)
    with pytest.raises(proposals.RefusedError, match="being applied by approver-2"):
        proposals.resume(w.engine, APPROVER, number, resources=w.res, now=LATER)
    assert list(w.bank.incoming.iterdir()) == [] and _status(w.engine, APRIL) == "filed"
    thread.join(1)
    assert thread.is_alive()  # still uploading into the silent server
    # its lease runs out (the first resumer is stuck): a later resumer finishes it
    done = proposals.resume(
        w.engine, APPROVER, number, resources=w.res, now=LATER + dt.timedelta(seconds=901)
    )
    assert done.status == "applied" and _status(w.engine, APRIL) == "sent"
    assert [f.name for f in w.bank.incoming.iterdir()] == [FILE]
    silent.close()  # the stuck upload fails now; its lease is gone, so it records nothing
    thread.join(30)
    assert not thread.is_alive() and isinstance(first[0], sftp.DeliveryError)
    assert proposals.show(w.engine, number).status == "applied"


def test_two_resumers_at_the_same_moment_apply_once(world: World) -> None:
    w = world
    number, out = _make_crashed(w)
    start = threading.Barrier(2)
    outcomes: list[Any] = []

    def resume(actor: Actor) -> Callable[[], None]:
        def run() -> None:
            start.wait()
            try:
                outcomes.append(
                    proposals.resume(w.engine, actor, number, resources=w.res, now=LATER)
                )
            except (proposals.RefusedError, proposals.ClosedError) as exc:
                outcomes.append(exc)

        return run

    threads = [threading.Thread(target=resume(a)) for a in (APPROVER, SECOND)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    applied = [o for o in outcomes if isinstance(o, proposals.Proposal)]
    assert len(outcomes) == 2 and len(applied) == 1 and applied[0].status == "applied"
    assert [e.action for e in _audit(w.engine)].count("proposal.resume") == 1
    assert [f.name for f in out.iterdir()] == [FILE]


def test_the_cli_resumes_an_approval_killed_while_it_filed(
    migrated_url: str, tmp_path: Path
) -> None:
    """``proposals approve`` in a real process, SIGKILLed while it writes the bank file;
    then ``proposals resume`` as signed-in staff (lease: 1 s)."""
    key = tmp_path / "sign.key"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    res = _resources(tmp_path, None)
    config = tmp_path / "central.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "database": {"url": migrated_url},
                "keys": {"sign_key": str(key)},
                "bank": {
                    "out_dir": str(res.cfg.bank.out_dir),
                    "encrypt_pub": str(res.cfg.bank.encrypt_pub),
                },
                "proposals": {"apply_lease_s": 1},
            }
        )
    )
    engine = db.create_engine(migrated_url)
    w = World(engine, _people(engine), res, tmp_path, Phones())
    cli = staff_cli(config, migrated_url, tmp_path / "staff")
    try:
        _run(w)
        assert cli("bank", "make", APRIL, who="clerk").exit_code == 0
        code = cli.phones.code("reviewer")
        assert cli("proposals", "recheck", "1", "--otp", code, who="reviewer").exit_code == 0
        out = res.cfg.bank.out_dir
        out.mkdir(parents=True)
        os.mkfifo(out / f"LIFECERT-{APRIL}.part")  # the write blocks: nobody reads it
        cert, signing_key = cli.certs["approver"]
        approving = subprocess.Popen(
            [sys.executable, "-m", "central", "--config", str(config), "--staff-cert",
             str(cert), "--staff-key", str(signing_key), "proposals", "approve", "1",
             "--otp", cli.phones.code("approver")],
            env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while _peek(engine, 1) != "applying":
                assert approving.poll() is None, approving.stderr and approving.stderr.read()
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.5)
        finally:
            approving.kill()
            approving.wait(10)
        assert approving.returncode == -signal.SIGKILL
        (out / f"LIFECERT-{APRIL}.part").unlink()
        shown = cli("proposals", "show", "1", who="approver").output
        assert "applying: by approver, lease until" in shown
        time.sleep(1.1)  # the lease runs out
        for who, why in (("clerk", "may not proposal.approve"), ("reviewer", "may not")):
            refused = cli("proposals", "resume", "1", who=who)
            assert refused.exit_code == 1 and why in refused.output, refused.output
        assert cli("proposals", "resume").exit_code != 0  # an id or --all
        done = cli("proposals", "resume", "--all", who="approver")
        assert done.exit_code == 0, done.output
        assert done.output == "proposal 1: applied\n"
        assert [f.name for f in out.iterdir()] == [FILE]
        assert _status(engine, APRIL) == "filed"
        again = cli("proposals", "resume", "1", who="approver")
        assert again.exit_code == 1 and "applied: nothing to resume" in again.output
    finally:
        engine.dispose()


@pytest.mark.parametrize("crashed_after", ["approval", "issue"])
def test_a_crashed_certificate_is_issued_once_or_the_proposal_fails(
    staff_pki: StaffPki, crashed_after: str
) -> None:
    """``staff_cert``: the approver dies reading the CA's key (a FIFO); resuming issues the
    certificate, or, if one was issued meanwhile, fails instead of issuing a second."""
    pki, engine = staff_pki, staff_pki.engine
    admin2 = pki.actor(pki.member("admin2", [Role.ADMINISTRATOR]))
    admin3 = pki.actor(pki.member("admin3", [Role.ADMINISTRATOR]))
    pki.member("clerk", [Role.ENTRY_CLERK])
    cfg = CentralConfig.model_validate({}, context={"base_dir": pki.root})
    res = Resources(cfg, ec.generate_private_key(ec.SECP256R1()))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "clerk")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    payload = {
        "staff_id": "clerk",
        "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
        "days": 30,
    }
    entered = proposals.propose(engine, pki.admin, "staff_cert", payload, resources=res)
    fifo = pki.root / "ca-key.fifo"
    os.mkfifo(fifo)
    staff = cfg.staff.model_copy(update={"ca_key": fifo})
    _crash_approving(engine, Resources(cfg.model_copy(update={"staff": staff}), res.sign_key),
                     entered.id, admin2, None)  # fmt: skip
    fifo.unlink()
    if crashed_after == "issue":  # what the dead approver would have done
        ca.issue_approved(engine, cfg.staff, admin2, "clerk", 30, key.public_key())
    issued = len(ca.list_certs(engine, "clerk"))
    for who, why in (
        (pki.admin, "entered proposal"),
        (Actor("clerk", frozenset({Role.ADMINISTRATOR})), "their own account"),
        (APPROVER, "administrator role"),
    ):
        with pytest.raises(proposals.RefusedError, match=why):
            proposals.resume(engine, who, entered.id, resources=res, now=LATER)
    if crashed_after == "issue":
        with pytest.raises(proposals.StaleError, match="changed since"):
            proposals.resume(engine, admin3, entered.id, resources=res, now=LATER)
        assert proposals.show(engine, entered.id).status == "failed"
        assert len(ca.list_certs(engine, "clerk")) == issued
    else:
        done = proposals.resume(engine, admin3, entered.id, resources=res, now=LATER)
        assert done.status == "applied" and done.result is not None
        cert = x509.load_pem_x509_certificate(done.result["certificate"].encode())
        assert cert.public_key() == key.public_key()
        assert len(ca.list_certs(engine, "clerk")) == issued + 1
