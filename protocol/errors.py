"""Errors of the wire contract (all ``common.errors.LifecertError``)."""

from common.errors import LifecertError


class MessageError(LifecertError, ValueError):
    """A wire message is malformed, too large or of an unknown schema version."""


class SignatureError(LifecertError, ValueError):
    """A JWS does not verify, or is signed by a key we do not know."""


class SealError(LifecertError, ValueError):
    """A sealed template cannot be opened (wrong key, tampered, malformed)."""
