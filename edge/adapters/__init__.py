"""Adapters: the terminal's parts that touch the world (disk, keys, broker, devices, models).

They implement the ports of ``edge.session.ports`` and what the delivery loop needs;
``edge.bootstrap`` wires them. The session core imports none of them.
"""
