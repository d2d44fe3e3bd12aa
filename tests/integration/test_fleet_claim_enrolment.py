"""Keys born on the terminal: claim enrolment over HTTPS with one-time tokens.

A real ``lifecert fleet enrol-server`` process (uvicorn, TLS from the fleet CA), real
``lifecert-edge enrol`` terminal processes, the real broker they then log in to.
"""

import datetime as dt
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from edge import config as edge_config
from edge.enrolment import make_csr
from protocol import signing, topics
from protocol.settings import TlsFiles
from provisioning import broker as broker_mod
from provisioning import claims, registry
from provisioning.cli import main
from provisioning.fleet import Fleet
from tests.fixtures.broker import Login, MqttPeer, make_fleet
from tests.fixtures.ports import free_port, wait_for_port
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
PASSWORD = "p" * 40


@dataclass(frozen=True)
class Stack:
    """A fleet with its broker and enrolment server running."""

    fleet: Fleet
    broker_port: int
    url: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    fleet = make_fleet(tmp_path_factory.mktemp("claims") / "fleet")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "provisioning", "fleet", "enrol-server", "--dir",
         str(fleet.directory), "--bind", "127.0.0.1", "--port", str(port)],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        with broker_mod.for_fleet(fleet) as process:
            wait_for_port(port, 20)
            yield Stack(fleet, process.port, f"https://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait(10)


def _token(fleet: Fleet, device_id: str, *extra: str) -> str:
    done = CliRunner().invoke(
        main,
        ["fleet", "token", "create", "--device-id", device_id, "--site", "north-1",
         "--dir", str(fleet.directory), *extra],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    return done.stdout.strip()


def _terminal(stack: Stack, folder: Path, token: str, *extra: str) -> subprocess.Popen[str]:
    """``lifecert-edge enrol`` as its own process."""
    return subprocess.Popen(
        [sys.executable, "-m", "edge", "--config", str(folder / "edge.toml"), "enrol",
         "--server", stack.url, "--token", token, "--poll", "0.2", "--wait", "30", *extra],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _post(stack: Stack, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    ctx = ssl.create_default_context(cafile=str(stack.fleet.paths.ca_cert))
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        stack.url + path, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_approved_terminal_gets_its_certificate_and_logs_in(stack: Stack, tmp_path: Path) -> None:
    fleet, device = stack.fleet, "term-claim1"
    token = _token(fleet, device)
    terminal = _terminal(stack, tmp_path / "t1", token)
    waiting = wait_until(lambda: claims.pending(fleet), 20, "the claim to arrive")
    assert [r.device_id for r in waiting] == [device]
    listed = CliRunner().invoke(main, ["fleet", "pending", "--dir", str(fleet.directory)])
    assert waiting[0].id in listed.output and device in listed.output

    approved = CliRunner().invoke(
        main, ["fleet", "approve", waiting[0].id, "--dir", str(fleet.directory)]
    )
    assert approved.exit_code == 0, approved.output
    assert "the running broker accepts term-claim1" in approved.output
    out, err = terminal.communicate(timeout=30)
    assert terminal.returncode == 0, err
    assert f"enrolled {device}" in out

    folder = tmp_path / "t1"
    assert (folder / "device.key").stat().st_mode & 0o777 == 0o600
    key_text = (folder / "device.key").read_bytes()
    assert not any(key_text in p.read_bytes() for p in fleet.directory.rglob("*") if p.is_file())
    assert "password" not in claims.read(fleet).requests[-1].model_dump(exclude_none=True)
    cert = x509.load_pem_x509_certificate((folder / "device.pem").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
        "north-1"
    )
    assert registry.read(fleet.paths.registry).get(device) is not None

    with MqttPeer(folder, stack.broker_port) as peer:  # login from the terminal's own files
        assert not peer.publish(topics.device_topic(device, "status"), b"online").is_failure
    valid = subprocess.run(
        [sys.executable, "-m", "edge", "--config", str(folder / "edge.toml"), "--validate-config"],
        env=ENV, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert valid.returncode == 0 and "OK" in valid.stdout, valid.stderr

    again, body = _post(stack, "/v1/claims", {"token": token, "csr": "x", "password": PASSWORD})
    assert again == 409 and "token: already used" in body["error"]
    second = _terminal(stack, tmp_path / "copy", token)  # the token again, on another machine
    _out, err = second.communicate(timeout=30)
    assert second.returncode == 1 and "refused: token: already used" in err, err
    assert "Traceback" not in err


def test_auto_approve_token_enrols_without_the_operator(stack: Stack, tmp_path: Path) -> None:
    """... with the key and certificate in a state folder apart from the config."""
    token = _token(stack.fleet, "term-claim2", "--auto-approve")
    state = tmp_path / "state" / "tls"
    terminal = _terminal(stack, tmp_path / "t2", token, "--key-dir", str(state))
    out, err = terminal.communicate(timeout=30)
    assert terminal.returncode == 0, err
    assert "enrolled term-claim2" in out
    assert not (tmp_path / "t2" / "device.key").exists()
    cfg = edge_config.load(tmp_path / "t2" / "edge.toml")
    assert (cfg.mqtt.tls.key_file, cfg.mqtt.tls.cert_file) == (
        state / "device.key",
        state / "device.pem",
    )
    files = TlsFiles(
        ca_file=cfg.mqtt.tls.ca_file, cert_file=state / "device.pem", key_file=state / "device.key"
    )
    password = (tmp_path / "t2" / "mqtt.password").read_text().strip()
    with MqttPeer(Login(files, "term-claim2", password, "term-claim2"), stack.broker_port) as p:
        assert not p.publish(topics.device_topic("term-claim2", "status"), b"x").is_failure


def test_wrong_server_pin_sends_nothing(stack: Stack, tmp_path: Path) -> None:
    token = _token(stack.fleet, "term-claim3", "--auto-approve")
    forged = token[: -len("AAAA")] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    terminal = _terminal(stack, tmp_path / "t3", forged)
    _out, err = terminal.communicate(timeout=30)
    assert terminal.returncode == 1
    assert "pin mismatch" in err and "Traceback" not in err
    assert claims.read(stack.fleet).token("term-claim3").used_at is None  # type: ignore[union-attr]
    assert not (tmp_path / "t3" / "device.key").exists()


def _flip(token: str, at: int) -> str:
    """``token`` with one character changed."""
    chars = list(token)
    chars[at] = "x" if chars[at] != "x" else "y"
    return "".join(chars)


def csr_with(key: Any, cn: str) -> str:
    """A PEM CSR with CN = ``cn`` signed by ``key`` (of any type)."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_bad_claims_are_refused_with_a_clear_message_and_change_nothing(stack: Stack) -> None:
    fleet, device = stack.fleet, "term-claim4"
    token = _token(fleet, device)
    p256 = ec.generate_private_key(ec.SECP256R1())
    before = registry.read(fleet.paths.registry).model_dump_json()
    cases = [
        ({"csr": make_csr(p256, "term-other")}, 400, "csr: CN 'term-other' differs"),
        ({"csr": csr_with(rsa.generate_private_key(65537, 2048), device)}, 400, "RSA 2048"),
        ({"csr": csr_with(ec.generate_private_key(ec.SECP384R1()), device)}, 400, "secp384r1"),
        ({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA"}, 400, "csr: not a PEM"),
        ({"csr": "A" * 5000}, 400, "csr:"),
        ({"password": "short"}, 400, "password:"),
        ({"token": _flip(token, len(device) + 5)}, 401, "token: not valid"),
        ({"token": _flip(token, -3)}, 401, "token: made for another fleet"),
        ({"token": "nonsense"}, 401, "token: not an enrolment token"),
        ({"extra": 1}, 400, "extra:"),
    ]
    for change, status, message in cases:
        body = {"token": token, "csr": make_csr(p256, device), "password": PASSWORD} | change
        code, reply = _post(stack, "/v1/claims", body)
        assert (code, message in reply.get("error", "")) == (status, True), (change.keys(), reply)
    code, reply = _post(stack, "/v1/claims", b"{" + b" " * 20000 + b"}")
    assert code == 413 and "body: larger than" in reply["error"]
    assert claims.read(fleet).token(device).used_at is None  # type: ignore[union-attr]
    assert registry.read(fleet.paths.registry).model_dump_json() == before

    with claims.locked(fleet) as state:  # the token runs out
        found = state.token(device)
        assert found is not None
        found.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    body = {"token": token, "csr": make_csr(p256, device), "password": PASSWORD}
    code, reply = _post(stack, "/v1/claims", body)
    assert code == 410 and "token: expired at" in reply["error"]
    assert "lifecert fleet token create --device-id term-claim4" in reply["error"]


def test_rejected_claim_tells_the_terminal(stack: Stack, tmp_path: Path) -> None:
    fleet = stack.fleet
    token = _token(fleet, "term-claim5")
    terminal = _terminal(stack, tmp_path / "t5", token)
    waiting = wait_until(lambda: claims.pending(fleet), 20, "the claim to arrive")
    done = CliRunner().invoke(
        main,
        ["fleet", "reject", waiting[0].id, "--reason", "not ours", "--dir", str(fleet.directory)],
    )
    assert done.exit_code == 0, done.output
    _out, err = terminal.communicate(timeout=30)
    assert terminal.returncode == 1 and "was rejected: not ours" in err
    assert registry.read(fleet.paths.registry).get("term-claim5") is None


def test_token_for_an_enrolled_id_is_refused(stack: Stack) -> None:
    stack.fleet.enrol("term-claim6")
    done = CliRunner().invoke(
        main,
        [
            "fleet",
            "token",
            "create",
            "--device-id",
            "term-claim6",
            "--dir",
            str(stack.fleet.directory),
        ],
    )
    assert done.exit_code == 1 and "already enrolled" in done.output


def test_nothing_but_the_key_is_taken_from_the_csr(stack: Stack) -> None:
    """A CSR asking to be a CA, for other names, another site and organisation gets the
    fleet's own certificate for the token's device id and site."""
    device = "term-claim7"
    token = _token(stack.fleet, device, "--auto-approve")
    key = ec.generate_private_key(ec.SECP256R1())
    greedy = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "evil"),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "other-site"),
                    x509.NameAttribute(NameOID.COMMON_NAME, device),
                ]
            )
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("mqtt.example.org")]), False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    code, reply = _post(stack, "/v1/claims", {"token": token, "csr": greedy, "password": PASSWORD})
    assert code == 200 and reply["status"] == "approved", reply
    ca_key = stack.fleet.authority().cert.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    doc = json.loads(signing.Verifier(ca_key).verify(reply["document"]))
    cert = x509.load_pem_x509_certificate(doc["certificate"].encode())
    assert cert.public_key() == key.public_key()
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == [f"urn:lifecert:{device}"]
    subject = {a.oid: a.value for a in cert.subject}
    assert subject[NameOID.ORGANIZATIONAL_UNIT_NAME] == "north-1"
    assert subject[NameOID.ORGANIZATION_NAME] == stack.fleet.authority().organisation
