"""What every room uses and is not wire contract: errors, config base, logs, sd_notify,
CLI helpers, ID-number rules. Imports no other lifecert package."""
