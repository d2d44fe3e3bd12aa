"""Emulated peers for the serial devices and the smart card, on the real transports.

``GA467Emulator`` and ``VeinModuleEmulator`` serve on a pseudo-terminal whose
slave path the backends open like a USB-serial adapter; ``VirtualSocialSecurityCard``
plugs into pcscd through vsmartcard's vpcd. Run them from the command line with
``lifecert-emulator`` (or ``python -m hal.emulators``).
"""
