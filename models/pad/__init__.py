"""Passive presentation-attack detection (PAD): the MiniFASNet plugin and its converter."""
