"""People: the retiree roster (CSV import and its rules), the death and prison registries,
coverage per community, and synthetic populations for benchmarks and demos."""
