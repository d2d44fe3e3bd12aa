"""The terminal service: session, outbox, template cache, MQTT client, kiosk UI."""
