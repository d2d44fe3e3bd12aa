"""Certification: signed results in (device trust, verify, apply exactly once, acks out),
the certification policy's dates, template requests from terminals, and what was refused."""
