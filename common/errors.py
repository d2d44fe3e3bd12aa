"""One root exception; subclasses also inherit the built-in that fits."""


class LifecertError(Exception):
    """Root of every error lifecert raises on purpose."""


class ConfigError(LifecertError, ValueError):
    """A configuration file or value is missing or invalid; the message names field and fix."""
