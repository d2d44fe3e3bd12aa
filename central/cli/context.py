"""What every command gets (``click.pass_obj``): the ``--config`` path, with the config and
central's parts (``central.bootstrap.Central``) built lazily by the commands that need them."""

from pathlib import Path

from sqlalchemy.engine import Engine

from central import config
from central.bootstrap import Central
from central.store import db
from common.errors import LifecertError


class State:
    """The ``--config`` path; the config and central's parts, loaded on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._central: Central | None = None

    @property
    def central(self) -> Central:
        if self._central is None:
            self._central = Central(config.load(self.path))
        return self._central

    @property
    def cfg(self) -> config.CentralConfig:
        return self.central.cfg

    def engine(self, migrated: bool = True) -> Engine:
        """The configured database; an error if it is not at the code's migration head."""
        engine = self.central.engine
        if migrated:
            current, head = db.current_revision(engine), db.head_revision(engine)
            if current != head:
                raise LifecertError(
                    f"database is at revision {current or 'none'}, the code needs {head}: "
                    "run `lifecert-central db upgrade`"
                )
        return engine
