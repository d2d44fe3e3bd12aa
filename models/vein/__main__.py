"""``python -m models.vein``: evaluate the vein matcher on a folder of captures."""

from models.vein.cli import main

main()
