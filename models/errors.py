"""Errors raised by the model bundle, its loader and the face pipeline."""

from common.errors import LifecertError


class ModelError(LifecertError, RuntimeError):
    """A model cannot be loaded or run (missing runtime, bad input)."""


class BundleError(LifecertError, ValueError):
    """A model bundle is malformed, its signature or a file hash does not verify."""


class ModelBuildError(LifecertError, RuntimeError):
    """Building a bundle failed (missing source package, unexpected weights)."""
