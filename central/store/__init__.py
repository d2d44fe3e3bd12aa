"""Central's store: the tables, the engines (SQLite, PostgreSQL) and the migrations."""
