"""``python -m hal.emulators``: same as ``lifecert-emulator``."""

from hal.emulators.cli import main

main()
