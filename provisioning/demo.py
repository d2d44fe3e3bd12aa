"""``lifecert demo``: a small fleet on this machine, end to end, through the shipped commands.

Creates a fleet (CA, central's keys, broker config), enrols terminals, starts a
Mosquitto with the generated mutual-TLS + per-device login config, central's consumer and the
terminals' services, sets up central's staff (a staff CA, an administrator, an entry clerk,
a reviewer and an approver with certificates), imports a roster as a proposal the three
pass in turn, records certifications at the terminals, serves the staff console (the
reviewer's dashboard read with their certificate) and shows what central applied.
"""

import datetime as dt
import http.cookiejar
import json
import random
import re
import shutil
import ssl
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from common import idnumber
from common.cli import friendly_errors
from provisioning import pki
from provisioning.stack import Stack, free_port

SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu")
GIVEN = ("Guiying", "Xiuying", "Jianguo", "Shuzhen", "Guolin", "Yulan", "Decai", "Fengying")
COMMUNITIES = ("Dongcheng", "Xicheng", "Chaoyang")


def roster_csv(path: Path, count: int, rng: random.Random) -> list[str]:
    """Write a roster of ``count`` synthetic retirees (valid ID numbers); their ID numbers."""
    rows, ids = ["id_number,name,sex,birth_date,community,monthly_amount"], []
    for i in range(count):
        born = dt.date(1938, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 27))
        number = idnumber.make("110101", born, rng.randrange(1, 999))
        if number in ids:
            continue
        ids.append(number)
        name = f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}"
        rows.append(
            f"{number},{name},{idnumber.sex(number)},{born.isoformat()},"
            f"{COMMUNITIES[i % len(COMMUNITIES)]},{rng.randrange(2800, 6200)}.00"
        )
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return ids


STAFF = (("clerk", "entry_clerk"), ("reviewer", "reviewer"), ("approver", "approver"))
DESK = ("desk-1", "desk-2")
SITE = "default"  # the demo's terminals are enrolled without --site


def _signed(folder: Path, staff_id: str) -> list[str]:
    return [
        "--staff-cert",
        str(folder / f"{staff_id}.pem"),
        "--staff-key",
        str(folder / f"{staff_id}.key"),
    ]


def _approved(stack: Stack, folder: Path, *args: str) -> str:
    """Enter a staff proposal as ``admin`` and approve it as ``admin2``; the proposal's
    number."""
    out = stack.central(*_signed(folder, "admin"), *args)
    number = re.search(r"^proposal (\d+):", out, re.M)
    if number is None:
        raise click.ClickException(f"{' '.join(args[:2])} proposed nothing: {out}")
    stack.central(*_signed(folder, "admin2"), "proposals", "approve", number.group(1))
    return number.group(1)


def _certificate(stack: Stack, folder: Path, staff_id: str) -> None:
    """``staff_id``'s own key and request, their certificate proposed, approved, fetched."""
    key = pki.new_key()
    pki.write_private_key(folder / f"{staff_id}.key", key)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, staff_id)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    (folder / f"{staff_id}.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    csr_path, out = str(folder / f"{staff_id}.csr"), str(folder)
    number = _approved(
        stack, folder, "staff", "cert", "issue", staff_id, "--csr", csr_path, "--out", out
    )
    stack.central(*_signed(folder, "admin"), "staff", "cert", "fetch", number, "--out", out)


def _staff(stack: Stack, folder: Path) -> None:
    """A staff CA, the two first administrators (a staff change needs both) and the three
    people a proposal needs."""
    stack.central("staff", "ca", "init", "--name", "demo")
    for admin in ("admin", "admin2"):
        stack.central(
            "staff", "add", admin, "--name", admin.title(), "--first-admin", "--out", str(folder)
        )
    for staff_id, role in STAFF:
        _approved(
            stack, folder, "staff", "add", staff_id, "--name", staff_id.title(), "--role", role
        )
        _certificate(stack, folder, staff_id)
    for desk in DESK:  # who assists at the terminals: known to central, at their site
        _approved(
            stack, folder, "staff", "add", desk, "--name", desk.title(), "--role", "coordinator",
            *(arg for c in COMMUNITIES for arg in ("--community", c)), "--site", SITE,
        )  # fmt: skip


def _import_roster(stack: Stack, folder: Path, path: Path) -> str:
    """Propose the roster as the clerk, recheck it as the reviewer, approve it as the
    approver; the proposal's number."""
    out = stack.central(*_signed(folder, "clerk"), "roster", "import", str(path))
    number = re.search(r"^proposal (\d+):", out, re.M)
    if number is None:
        raise click.ClickException(f"roster import proposed nothing: {out}")
    reviewer, approver = _signed(folder, "reviewer"), _signed(folder, "approver")
    stack.central(*reviewer, "proposals", "recheck", number.group(1), "--reason", "demo roster")
    stack.central(*approver, "proposals", "approve", number.group(1))
    return number.group(1)


def _console(stack: Stack, staff: Path, say: Callable[[str], None]) -> None:
    """Serve the staff console (a server certificate from the fleet CA for 127.0.0.1) and
    read the dashboard as the reviewer would, with the reviewer's staff certificate."""
    folder = stack.fleet.paths.central / "console"
    key = pki.new_key()
    cert = stack.fleet.authority().issue(
        "console", key.public_key(), 30, server_names=["127.0.0.1", "localhost"], client=False
    )
    pki.write_private_key(folder / "server.key", key)
    pki.write_cert(folder / "server.pem", cert)
    port = free_port()
    stack.start_console(port)
    url = f"https://127.0.0.1:{port}/"
    tls = ssl.create_default_context(cafile=str(stack.fleet.paths.ca_cert))
    tls.load_cert_chain(staff / "reviewer.pem", staff / "reviewer.key")
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=tls),
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
    )
    signin = urllib.request.Request(
        url + "api/session", data=b"{}", headers={"content-type": "application/json"}
    )
    with opener.open(signin, timeout=30):
        pass
    with opener.open(url + "api/dashboard", timeout=30) as reply:
        board = json.load(reply)
    total = next(r for r in board["coverage"] if r["name"] == "TOTAL")
    say(
        f"9. Staff console at {url} (HTTPS, staff certificates only): the reviewer's dashboard "
        f"shows {total['certified']} of {total['retirees']} retirees certified, "
        f"{total['overdue']} overdue (docs/console.md: import staff/*.pem + .key as PKCS#12)"
    )


def run_demo(
    directory: Path, terminals: int, retirees: int, seed: int, say: Callable[[str], None]
) -> Stack:
    """Build and run the whole demo in ``directory``; the stopped stack (for inspection)."""
    rng = random.Random(seed)
    devices = [f"term-{i:03d}" for i in range(1, terminals + 1)]
    port = free_port()
    say(f"1. Fleet in {directory / 'fleet'}: CA, central's keys, broker certificate")
    stack = Stack.create(directory, port, devices, name="demo")
    say(f"2. Enrolled {terminals} terminals: {', '.join(devices)} (bundles in fleet/bundles/)")
    with stack:
        stack.central("db", "upgrade")
        staff = directory / "staff"
        _staff(stack, staff)
        ids = roster_csv(directory / "roster.csv", retirees, rng)
        number = _import_roster(stack, staff, directory / "roster.csv")
        say(
            f"3. Central: roster of {len(ids)} retirees ({directory / 'roster.csv'}) proposed by "
            f"the entry clerk, rechecked and approved by two others (proposal {number}; staff "
            f"certificates in {staff})"
        )
        stack.broker.start()
        say(f"4. Mosquitto on 127.0.0.1:{port}: mutual TLS, CRL, per-device logins and topics")
        stack.start_central()
        say("5. Central consumer running (shared subscription, signed acks)")
        for device_id in devices:
            stack.start_edge(device_id)
        say(f"6. {terminals} terminal services running")
        certify = ids[: max(1, (2 * len(ids)) // 3)]
        say(f"7. Staff record {len(certify)} assisted certifications at the terminals:")
        receipts = []
        with click.progressbar(certify, label="   signing + storing durably") as bar:
            for i, number in enumerate(bar):
                device_id = devices[i % len(devices)]
                out = stack.edge(
                    device_id,
                    "certify-assisted",
                    "--retiree",
                    number,
                    "--staff",
                    DESK[i % 2],
                    "--json",
                )
                receipts.append((device_id, number, json.loads(out)))
        waited = stack.wait_delivered(devices, timeout=120)
        say(f"8. Every outbox delivered and acked by central ({waited:.1f} s after the last one)")
        _console(stack, staff, say)
        for device_id, number, receipt in receipts[:3]:
            rid, seq = receipt["result_id"], receipt["seq"]
            say(f"   {device_id}: receipt {rid} (seq {seq}) for {number}")
        say("")
        say("What central applied (lifecert-central retirees list):")
        say(stack.central("retirees", "list", "--limit", str(len(ids))))
        uncertified = len(ids) - len(certify)
        say(f"{len(certify)} retirees certified until next year; {uncertified} not yet certified.")
        if uncertified:
            _face(stack, directory, devices[0], ids[len(certify)], say)
    return stack


def _face(
    stack: Stack, root: Path, device_id: str, retiree: str, say: Callable[[str], None]
) -> None:
    """Step 9: a retiree certifies alone at a kiosk with card, face and liveness."""
    from provisioning import demo_face

    why = demo_face.missing()
    if why is not None:
        say(f"10. Face certification skipped: {why}")
        return
    say(f"10. {retiree} certifies alone at the {device_id} kiosk: card, face, two challenges")
    row = demo_face.face_step(stack, root / "face", device_id, retiree, free_port(), say)
    say(f"   result {row['result_id']}: method {row['method']}, decision {row['decision']}, "
        f"{row['status']} (central applied it and acked)")  # fmt: skip
    for line in stack.central("retirees", "list", "--limit", "500").splitlines():
        if line.startswith(retiree):
            say(f"   central: {line}")


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="where to put the fleet, databases and logs (default: a temporary folder)",
)
@click.option("--terminals", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--retirees", type=click.IntRange(1, 500), default=9, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True, help="roster generator seed")
@click.option("--keep/--no-keep", default=False, help="keep the temporary folder afterwards")
@friendly_errors
def demo(directory: Path | None, terminals: int, retirees: int, seed: int, keep: bool) -> None:
    """Run a small fleet end to end on this machine and show what central applied.

    Starts its own Mosquitto (generated TLS config, free port), central with
    SQLite, and the terminals; nothing outside the folder is touched. When the
    model bundle (var/models) and the LFW faces are present, one retiree also
    certifies alone at a kiosk by card, face and liveness (else a printed reason).

    Example:
        lifecert demo --terminals 2 --retirees 6 --dir /tmp/lifecert-demo
    """
    temporary = directory is None
    root = Path(tempfile.mkdtemp(prefix="lifecert-demo-")) if directory is None else directory
    if not temporary and any(root.iterdir() if root.exists() else ()):
        raise click.UsageError(f"--dir {root} is not empty: pass an empty or new folder")
    root.mkdir(parents=True, exist_ok=True)
    try:
        run_demo(root.resolve(), terminals, retirees, seed, click.echo)
    finally:
        if temporary and not keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            click.echo(f"Files kept in {root} (logs in {root / 'logs'}).")
