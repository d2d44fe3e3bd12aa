"""The certification session at the terminal: a pure core with ports for the world.

``core.Session`` runs one certification (card → reference → capture → liveness
→ match → fallback → signed, durable result) against the ports in ``ports``,
with the values of ``model``. It does no I/O of its own and imports no adapter:
``edge.adapters`` holds the real ones (HAL devices, the face pipeline, the vein
matcher, the recorder, the template cache), ``edge.bootstrap`` wires them, and
tests drive the core with hand-written fakes.
"""
