"""One root exception; subclasses also inherit the built-in that fits."""


class LifecertError(Exception):
    """Root of every error lifecert raises on purpose."""


class ConfigError(LifecertError, ValueError):
    """A configuration file or value is missing or invalid; the message names field and fix."""


class MessageError(LifecertError, ValueError):
    """A wire message is malformed, too large or of an unknown schema version."""


class SignatureError(LifecertError, ValueError):
    """A JWS does not verify, or is signed by a key we do not know."""


class SealError(LifecertError, ValueError):
    """A sealed template cannot be opened (wrong key, tampered, malformed)."""
