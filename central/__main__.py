"""``python -m central``: the same as ``lifecert-central``."""

from central.cli import main

main()
