"""Central's notifier: messages to people and systems (reminders, one-time codes, alerts).

``base`` is the contract (a ``Message``, the ``Notifier`` protocol, ``DeliveryError``);
adapters (log, webhook, SMTP, SMS gateway) and the durable outbox live beside it.
"""
