"""Central's staff room: named staff, roles, staff certificates, sign-in, the audit chain."""
