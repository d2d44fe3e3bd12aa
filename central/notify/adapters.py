"""The adapters ``[notify] channels`` selects, built once per process."""

import logging

from central.notify.base import Message, Notifier
from central.notify.email import SmtpNotifier
from central.notify.settings import NotifySettings
from central.notify.sms import HttpSmsNotifier
from central.people.contacts import mask_recipient

log = logging.getLogger(__name__)


class MaskedLogNotifier:
    """Writes each message's channel, masked recipient, subject and key to the log (never
    the body: it may hold a one-time code)."""

    def deliver(self, message: Message) -> None:
        log.info(
            "notify %s to %s: %s (key %s)",
            message.channel,
            mask_recipient(message.channel, message.recipient),
            message.subject,
            message.key,
        )


def build(settings: NotifySettings) -> dict[str, Notifier]:
    """The notifier of each configured channel (``log`` unless configured otherwise)."""
    notifiers: dict[str, Notifier] = {"log": MaskedLogNotifier()}
    for channel, adapter in settings.channels.items():
        if adapter == "smtp":
            notifiers[channel] = SmtpNotifier(settings.smtp)
        elif adapter == "sms_http":
            notifiers[channel] = HttpSmsNotifier(settings.sms)
        else:
            notifiers[channel] = notifiers["log"]
    return notifiers
