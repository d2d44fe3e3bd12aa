"""Engines and migrations: one code path for SQLite and PostgreSQL (psycopg 3).

SQLite runs in WAL mode with ``synchronous=FULL``: central acks a result to the
terminal right after the commit, and the terminal then forgets it, so a commit
lost to a power cut (possible with ``NORMAL`` in WAL mode) would lose a
certification. Batching ~100s of results per commit pays for the extra fsync.
Every SQLite transaction starts ``BEGIN IMMEDIATE`` so concurrent consumer
processes queue on the busy timeout instead of failing on a lock upgrade.
"""

import logging
import sqlite3
from importlib import resources
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from common.errors import LifecertError

log = logging.getLogger(__name__)

_PG_MIGRATION_LOCK = 0x6C69666563  # "lifec": serialises concurrent upgrades on PostgreSQL


class StoreError(LifecertError, RuntimeError):
    """The database cannot be reached or used (after retries); the message says why."""


class StoreBusyError(StoreError):
    """A transient conflict (lock timeout, deadlock, lost connection): retry the transaction."""


def create_engine(url: str, busy_timeout_s: float = 30.0) -> Engine:
    """An engine for ``url`` with central's SQLite pragmas or PostgreSQL settings."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_s})
        _sqlite_hooks(engine, busy_timeout_s, in_memory=parsed.database in (None, "", ":memory:"))
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _sqlite_hooks(engine: Engine, busy_timeout_s: float, in_memory: bool) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        if not in_memory:
            cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_transient(exc: BaseException) -> bool:
    """True for errors a retry can cure: busy/locked SQLite, deadlocks, lost connections."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        return "locked" in str(orig) or "busy" in str(orig)
    code = getattr(orig, "sqlstate", None) or ""
    return code in ("40001", "40P01", "55P03", "57P01") or code.startswith("08")


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at the migrations shipped in this package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("central.store") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate the database to ``revision``; safe when several processes do it at once."""
    cfg = alembic_config(engine)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            return MigrationContext.configure(conn).get_current_revision()
    except DBAPIError as exc:
        raise StoreError(f"cannot migrate {engine.url!r}: {exc.orig}") from None


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None when never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    """The newest revision shipped with this code."""
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
