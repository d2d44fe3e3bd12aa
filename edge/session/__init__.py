"""The certification session at the terminal: a pure core with ports for the world.

``core.Session`` runs one certification (card → reference → capture → liveness
→ match → fallback → signed, durable result) against the ports in ``ports``;
``adapters`` holds the real ones (HAL devices, the face pipeline, the vein
matcher, the recorder). Tests drive the core with hand-written fakes.
"""
