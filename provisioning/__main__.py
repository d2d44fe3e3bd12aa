"""`python -m provisioning` = `lifecert`."""

from provisioning.cli import main

main()
