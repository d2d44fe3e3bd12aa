"""``python -m models``: the ``lifecert-models`` CLI."""

from models.cli import main

main()
