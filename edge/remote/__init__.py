"""The remote terminal: phone certifications on the terminal's own session core and models.

A terminal-class service the operator runs (enrolled in the fleet with its own device key):
a retiree's phone browser sends camera frames to it, it runs the same ``edge.session`` core
and verified bundle as a kiosk, and signs and delivers the result like any terminal, with
channel ``mobile``. Central sends and checks the one-time code (``central.channels``).
"""
