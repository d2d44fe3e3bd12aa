"""Claim enrolment on the terminal: its key is born here and never leaves.

``lifecert-edge enrol --server URL --token TOKEN``:

1. fetch the fleet CA from ``URL/v1/ca`` and check it against the token's pin (nothing
   else is sent before that check passes; from then on TLS verifies the server);
2. generate a P-256 key (``device.key``, 0600) and a broker password, send a CSR
   (CN = the token's device id) with the token;
3. poll until the operator (or the token's auto-approve policy) decides;
4. verify the enrolment document's signature (the fleet CA's key) and that the
   certificate is for this key, then write ``device.pem``, ``ca.pem``, central's public
   keys and, last, ``edge.toml`` (the same layout as a lab bundle).

A claim cut short (network, timeout) keeps its key and password: running the same
command again resumes waiting for the same request.
"""

import datetime as dt
import hmac
import json
import logging
import os
import secrets
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from common.errors import LifecertError
from protocol import enrolment, signing
from protocol.enrolment import ClaimReply, Document, Token
from protocol.errors import SignatureError

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = enrolment.MAX_DOCUMENT_BYTES + 4096


class EnrolmentError(LifecertError, RuntimeError):
    """The terminal could not enrol; the message says why and what to do."""


@dataclass(frozen=True)
class Enrolled:
    """What a finished claim wrote."""

    config: Path
    device_id: str
    request: str


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file, owner-only from the first byte, durably and atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def write_public(path: Path, data: bytes) -> None:
    """Write a public file durably and atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8 PEM of ``key``."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_csr(key: ec.EllipticCurvePrivateKey, device_id: str) -> str:
    """A PEM CSR with CN = ``device_id`` signed by ``key``."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


class _Server:
    """The enrolment server, reached with a TLS context."""

    def __init__(self, url: str, context: ssl.SSLContext, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.context = context
        self.timeout = timeout

    def call(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method="POST" if data is not None else "GET",
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as r:
                return int(r.status), r.read(MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(MAX_REPLY_BYTES + 1)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            hint = (
                " (is this host name among the enrol-server's --name values?)"
                if "CERTIFICATE_VERIFY_FAILED" in str(reason)
                else ""
            )
            raise EnrolmentError(f"--server: cannot reach {self.url}: {reason}{hint}") from None

    def reply(self, path: str, body: dict[str, Any]) -> ClaimReply:
        code, data = self.call(path, body)
        if len(data) > MAX_REPLY_BYTES:
            raise EnrolmentError(f"--server: reply over {MAX_REPLY_BYTES} bytes: refused")
        if code in (200, 202, 403):
            try:
                return ClaimReply.model_validate_json(data)
            except ValidationError as exc:
                raise EnrolmentError(f"--server: not an enrolment reply: {exc}") from None
        try:
            message = str(json.loads(data)["error"])
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {code}"
        raise EnrolmentError(f"the enrolment server refused: {message}")


def fetch_ca(url: str, token: Token, timeout: float) -> x509.Certificate:
    """The fleet CA from the server, accepted only if it matches the token's pin."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE  # the pin below is the check; nothing secret is sent
    code, data = _Server(url, unverified, timeout).call("/v1/ca")
    if code != 200 or len(data) > enrolment.MAX_PEM_BYTES:
        raise EnrolmentError(f"--server: {url}/v1/ca answered HTTP {code}, not the fleet CA")
    try:
        ca = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise EnrolmentError(f"--server: {url}/v1/ca is not a PEM certificate") from None
    pin = enrolment.ca_pin(ca.public_bytes(serialization.Encoding.DER))
    if not hmac.compare_digest(pin, token.pin):
        raise EnrolmentError(
            f"--server: {url} shows a CA that is not the token's fleet (pin mismatch): wrong "
            "server, or someone in between; nothing was sent"
        )
    return ca


def _verified_document(
    reply: ClaimReply, ca: x509.Certificate, key: ec.EllipticCurvePrivateKey, device_id: str
) -> tuple[Document, x509.Certificate]:
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    try:
        payload = signing.Verifier(ca_key).verify(reply.document or "")
        doc = Document.model_validate_json(payload)
        cert = x509.load_pem_x509_certificate(doc.certificate.encode("ascii"))
        cert.verify_directly_issued_by(ca)
    except (SignatureError, ValidationError, ValueError, TypeError, InvalidSignature) as exc:
        raise EnrolmentError(f"the enrolment document does not verify: {exc}") from None
    if doc.device_id != device_id or cert.public_key() != key.public_key():
        raise EnrolmentError(
            "the enrolment document is for another device or key: refused (nothing written)"
        )
    return doc, cert


def _write_bundle(folder: Path, keys: Path, doc: Document, cert: x509.Certificate) -> Path:
    pem = serialization.Encoding.PEM
    write_public(keys / "device.pem", cert.public_bytes(pem))
    write_public(folder / "ca.pem", doc.ca.encode("ascii"))
    write_public(folder / "central-sign.pub.pem", doc.central.sign_pub.encode("ascii"))
    write_public(folder / "central-seal.pub.pem", doc.central.seal_pub.encode("ascii"))
    central = {"sign_pub": "central-sign.pub.pem", "seal_pub": "central-seal.pub.pem"}
    if doc.central.model_sign_pub:
        write_public(folder / "models-sign.pub.pem", doc.central.model_sign_pub.encode("ascii"))
        central["model_sign_pub"] = "models-sign.pub.pem"
    data = {
        "device_id": doc.device_id,
        "data_dir": "var",
        "log_level": "INFO",
        "mqtt": {
            "host": doc.mqtt.host,
            "port": doc.mqtt.port,
            "root": doc.mqtt.root,
            "tls": {
                "ca_file": "ca.pem",
                "cert_file": _relative(keys / "device.pem", folder),
                "key_file": _relative(keys / "device.key", folder),
            },
            "password_file": "mqtt.password",
        },
        "central": central,
    }
    config = folder / "edge.toml"
    stamp = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    write_public(
        config,
        (
            f"# enrolled by claim (lifecert-edge enrol) at {stamp}; the key was made here.\n"
            + tomli_w.dumps(data)
        ).encode("utf-8"),
    )
    return config


def _relative(path: Path, folder: Path) -> str:
    """``path`` as edge.toml names it: by its name when it sits beside, else absolute."""
    return path.name if path.parent == folder else str(path.resolve())


def _key_and_password(folder: Path, keys: Path) -> tuple[ec.EllipticCurvePrivateKey, str, bool]:
    """The key and password of an unfinished claim here, or new ones; True if resumed."""
    key_file, password_file = keys / "device.key", folder / "mqtt.password"
    if (folder / "edge.toml").exists() and (keys / "device.pem").exists():
        raise EnrolmentError(
            f"--dir: {folder} already holds an enrolled terminal (edge.toml, device.pem): "
            "use an empty folder"
        )
    if key_file.exists() and password_file.exists():
        try:
            key = signing.load_private_key(key_file)
        except (SignatureError, ValueError) as exc:
            raise EnrolmentError(f"--dir: {key_file} is not a P-256 key: {exc}") from None
        return key, password_file.read_text(encoding="utf-8").strip(), True
    key = ec.generate_private_key(ec.SECP256R1())
    password = secrets.token_urlsafe(32)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(key_file, key_pem(key))
    write_private(password_file, (password + "\n").encode("ascii"))
    return key, password, False


def enrol(
    url: str,
    token_text: str,
    folder: Path,
    *,
    key_dir: Path | None = None,
    wait_s: float = 600.0,
    poll_s: float = 5.0,
    timeout: float = 15.0,
) -> Enrolled:
    """Claim this terminal's certificate; see the module docstring. ``key_dir``: where the
    key and certificate go (default ``folder``), e.g. a state directory the service may
    write, so that it can renew them."""
    if not url.startswith("https://"):
        raise EnrolmentError(f"--server: {url!r} is not an https:// URL")
    try:
        token = enrolment.parse_token(token_text)
    except ValueError as exc:
        raise EnrolmentError(str(exc)) from None
    ca = fetch_ca(url, token, timeout)
    context = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode("ascii")
    )
    server = _Server(url, context, timeout)
    keys = key_dir or folder
    key, password, resumed = _key_and_password(folder, keys)
    reply: ClaimReply | None = None
    if resumed:
        try:
            reply = server.reply("/v1/claims/status", {"token": str(token)})
        except EnrolmentError as exc:
            log.info("no earlier claim to resume (%s): sending the CSR", exc)
    if reply is None:
        body = {"token": str(token), "csr": make_csr(key, token.device_id), "password": password}
        reply = server.reply("/v1/claims", body)
        log.info("claim %s sent for %s: %s", reply.request, token.device_id, reply.status)
    deadline = time.monotonic() + wait_s
    while reply.status == "pending":
        if time.monotonic() >= deadline:
            raise EnrolmentError(
                f"request {reply.request} is still waiting for the operator after {wait_s:g} s "
                f"(`lifecert fleet approve {reply.request}`); run this again to keep waiting "
                "(the key is kept)"
            )
        time.sleep(poll_s)
        reply = server.reply("/v1/claims/status", {"token": str(token)})
    if reply.status == "rejected":
        raise EnrolmentError(f"request {reply.request} was rejected: {reply.reason}")
    doc, cert = _verified_document(reply, ca, key, token.device_id)
    config = _write_bundle(folder, keys, doc, cert)
    log.info("enrolled %s: %s", doc.device_id, config)
    return Enrolled(config, doc.device_id, reply.request)
