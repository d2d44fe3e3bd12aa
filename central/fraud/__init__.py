"""Fraud: one face certified under two identities (1:N search) and the flags staff review."""
