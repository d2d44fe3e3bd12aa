"""A read-only engine for the console's pages: on SQLite its transactions are plain
``BEGIN`` (central's engine takes the write lock at the start of every transaction) and
``query_only`` refuses any write; on PostgreSQL, read-only transactions."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from central.store.settings import DatabaseSettings


def reader(settings: DatabaseSettings) -> Engine:
    """An engine on the configured database that only reads."""
    url = sa.engine.make_url(settings.url)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            execution_options={"postgresql_readonly": True},
        )
    engine = sa.create_engine(url, connect_args={"timeout": settings.busy_timeout_s})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_s * 1000)}")
        cur.execute("PRAGMA query_only = ON")
        cur.execute("PRAGMA cache_size = -65536")
        cur.close()

    return engine
