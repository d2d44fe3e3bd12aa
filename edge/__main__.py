"""``python -m edge`` = ``lifecert-edge``."""

from edge.cli import main

main()
