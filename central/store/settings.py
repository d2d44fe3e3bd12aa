"""The ``[database]`` section of ``central.toml``."""

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from common.config import Section


class DatabaseSettings(Section):
    """Where central keeps its state: SQLite (embedded default) or PostgreSQL."""

    url: str = Field(
        default="sqlite:///central.sqlite",
        title="database URL",
        description="SQLAlchemy URL: sqlite:///central.sqlite (relative to this file) "
        "or postgresql+psycopg://user@host/dbname",
    )
    busy_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=600,
        title="busy timeout",
        description="seconds a writer waits for a lock held by another process (SQLite)",
    )

    @field_validator("url")
    @classmethod
    def _resolve_sqlite_path(cls, value: str, info: ValidationInfo) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a database URL: use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB"
            ) from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(
                f"backend {url.get_backend_name()!r} unsupported: use sqlite or postgresql"
            )
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        base = (info.context or {}).get("base_dir")
        database = url.database
        if url.get_backend_name() == "sqlite" and database and database != ":memory:":
            path = Path(database).expanduser()
            if not path.is_absolute() and base is not None:
                url = url.set(database=str(Path(base) / path))
        return url.render_as_string(hide_password=False)
