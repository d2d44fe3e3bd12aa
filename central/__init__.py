"""The central service: ingest, eligibility, holds, registries, bank files, console."""
