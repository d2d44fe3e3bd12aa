"""JWS signing/verification and template sealing."""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from protocol import sealing, signing
from protocol.errors import SealError, SignatureError

KID = "ab" * 32


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_sign_verify_round_trip(key: ec.EllipticCurvePrivateKey) -> None:
    token = signing.Signer(key, KID).sign(b'{"a":1}')
    assert signing.Verifier(key.public_key()).verify(token) == b'{"a":1}'
    assert signing.unverified_header(token) == {"alg": "ES256", "kid": KID}


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


@pytest.mark.parametrize(
    ("tail", "words"),
    [
        ("\n", "trailing whitespace"),
        (" ", "trailing whitespace"),
        (".", "4 parts"),
        ("=", "byte"),
        ("é", "non-ASCII"),
    ],
)
def test_anything_but_the_exact_compact_form_says_what_is_wrong(
    key: ec.EllipticCurvePrivateKey, tail: str, words: str
) -> None:
    token = signing.Signer(key, KID).sign(b"{}") + tail
    for check in (signing.unverified_header, signing.Verifier(key.public_key()).verify):
        with pytest.raises(signing.MalformedError, match=words):
            check(token)


@pytest.mark.parametrize("kid", ["kid-1", "AB" * 32, "ab" * 33, ""])
def test_kid_must_be_a_sha256_fingerprint(key: ec.EllipticCurvePrivateKey, kid: str) -> None:
    with pytest.raises(signing.MalformedError, match="kid"):
        signing.unverified_header(signing.Signer(key, kid).sign(b"{}"))


def test_a_wrong_signature_says_so(key: ec.EllipticCurvePrivateKey) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SignatureError, match=r"bad_signature$"):
        signing.Verifier(key.public_key()).verify(signing.Signer(other, KID).sign(b"{}"))


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
