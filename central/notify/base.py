"""The notifier contract: a message, something that delivers it, and how delivery fails."""

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Message:
    """One message to one recipient.

    ``channel`` names the adapter kind (``log``, ``webhook``, ``email``, ``sms``);
    ``recipient`` is that channel's address (an e-mail address, a phone number, a URL);
    ``key`` is the sender's idempotency key (the same key is delivered at most once by a
    durable outbox); ``data`` carries structured fields for machine recipients.
    """

    channel: str
    recipient: str
    subject: str
    body: str
    key: str
    language: str = "en"
    data: dict[str, str] = field(default_factory=dict)


class DeliveryError(Exception):
    """A delivery failed; ``retryable`` says whether trying again later may succeed."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Notifier(Protocol):
    """Delivers one message or raises ``DeliveryError``."""

    def deliver(self, message: Message) -> None: ...
