"""The e-mail adapter: one message per SMTP session through a relay (``smtplib``).

STARTTLS when configured (the relay's certificate checked against ``ca_file`` or the
system's CAs), login when a user is configured. The ``Message-ID`` is derived from the
message key, so a relay or a mailbox that sees a repeat can tell. A 5xx reply (a refused
address, a refused message) is final; a 4xx reply or a network error is worth a retry.
"""

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from central.notify.base import DeliveryError, Message
from central.notify.outbox import idempotency_key
from central.notify.settings import SmtpSettings, read_secret


class SmtpNotifier:
    """Delivers ``email`` messages through the relay of ``[notify.smtp]``."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._password = read_secret(settings.password_file, "notify.smtp.password_file")

    def _mail(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.settings.sender
        mail["To"] = message.recipient
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = f"<{idempotency_key(message.key)}@lifecert>"
        mail["Content-Language"] = message.language
        mail.set_content(message.body)
        return mail

    def deliver(self, message: Message) -> None:
        """Send ``message``; ``DeliveryError`` (retryable or not) when the relay says no."""
        s = self.settings
        try:
            mail = self._mail(message)
        except ValueError as exc:  # a header with a line break: never retried
            raise DeliveryError(f"cannot build the e-mail: {exc}", retryable=False) from None
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as smtp:
                if s.starttls:
                    context = ssl.create_default_context(
                        cafile=str(s.ca_file) if s.ca_file else None
                    )
                    smtp.starttls(context=context)
                if s.username:
                    smtp.login(s.username, self._password or "")
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise DeliveryError(f"recipient refused ({codes})", retryable=codes[0] < 500) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"relay said {exc.smtp_code}", retryable=exc.smtp_code < 500
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"relay {s.host}:{s.port} unreachable: {exc}") from None
