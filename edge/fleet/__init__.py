"""The terminal's side of fleet operations: desired config, signed commands, updates."""
