"""JWS signing/verification and template sealing."""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from protocol import sealing, signing
from protocol.errors import SealError, SignatureError


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_sign_verify_round_trip(key: ec.EllipticCurvePrivateKey) -> None:
    token = signing.Signer(key, "kid-1").sign(b'{"a":1}')
    assert signing.Verifier(key.public_key()).verify(token) == b'{"a":1}'
    assert signing.unverified_header(token) == {"alg": "ES256", "kid": "kid-1"}


def test_other_key_refused(key: ec.EllipticCurvePrivateKey) -> None:
    token = signing.Signer(key, "k").sign(b"x")
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(SignatureError):
        signing.Verifier(other).verify(token)


def test_tampered_payload_refused(key: ec.EllipticCurvePrivateKey) -> None:
    header, _, sig = signing.Signer(key, "k").sign(b'{"amount":1}').split(".")
    forged = base64.urlsafe_b64encode(b'{"amount":9}').rstrip(b"=").decode()
    with pytest.raises(SignatureError):
        signing.Verifier(key.public_key()).verify(f"{header}.{forged}.{sig}")


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256"])
def test_other_algorithms_refused(key: ec.EllipticCurvePrivateKey, alg: str) -> None:
    header = base64.urlsafe_b64encode(f'{{"alg":"{alg}","kid":"k"}}'.encode()).rstrip(b"=")
    token = header.decode() + ".eyJhIjoxfQ."
    with pytest.raises(SignatureError):
        signing.unverified_header(token)
    with pytest.raises(SignatureError):
        signing.Verifier(key.public_key()).verify(token)


def test_garbage_is_a_signature_error() -> None:
    with pytest.raises(SignatureError):
        signing.unverified_header(b"\xff\xfe not a jws")


def test_fingerprints_are_stable_hex(key: ec.EllipticCurvePrivateKey) -> None:
    fp = signing.key_fingerprint(key.public_key())
    assert len(fp) == 64 and fp == signing.key_fingerprint(key.public_key())
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert fp != signing.key_fingerprint(other)


def test_seal_only_opens_with_the_right_key(key: ec.EllipticCurvePrivateKey) -> None:
    template = bytes(range(256)) * 2
    token = sealing.seal(template, key.public_key())
    assert template not in token.encode()
    assert sealing.unseal(token, key) == template
    with pytest.raises(SealError):
        sealing.unseal(token, ec.generate_private_key(ec.SECP256R1()))


def test_tampered_seal_refused(key: ec.EllipticCurvePrivateKey) -> None:
    parts = sealing.seal(b"template", key.public_key()).split(".")
    parts[3] = parts[3][:-2] + ("AA" if parts[3][-2:] != "AA" else "BB")
    with pytest.raises(SealError):
        sealing.unseal(".".join(parts), key)


def test_oversize_seal_refused(key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(SealError, match="over"):
        sealing.seal(b"x" * 20_000, key.public_key())
