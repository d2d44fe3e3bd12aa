"""HAL errors: all are ``LifecertError``s and also the built-in that fits."""

from common.errors import LifecertError


class HalError(LifecertError):
    """Root of hardware-abstraction errors."""


class BackendUnavailableError(HalError, RuntimeError):
    """A backend is unknown, not configured, or its package or device node is missing."""


class CameraError(HalError, OSError):
    """The camera cannot be opened or stopped delivering frames."""


class CardReadError(HalError, OSError):
    """The card reader failed: transport, protocol, or an unreadable card."""


class NoCardError(CardReadError):
    """No card is present on the reader."""


class WrongCardError(CardReadError):
    """A card is present but it is not the kind this reader expects."""


class FrameError(HalError, ValueError):
    """A serial frame is malformed (bad checksum, bad length)."""


class VeinSensorError(HalError, OSError):
    """The vein sensor failed: transport, protocol, or the capture did not succeed."""


class SpeakerError(HalError, OSError):
    """A voice prompt could not be played."""


class NoFingerError(VeinSensorError, TimeoutError):
    """No usable finger was presented before the capture timed out."""
