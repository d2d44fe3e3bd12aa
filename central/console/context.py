"""What every request of the console reads: engines, settings, sessions, templates."""

import datetime as dt
import threading
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine

from central.certification.settings import Policy
from central.console import access
from central.console.fresh import Fresh
from central.console.settings import ConsoleSettings
from central.proposals.base import Resources
from central.proposals.settings import ProposalSettings
from central.staff.settings import StaffSettings


@dataclass
class Context:
    """What every request reads: engines, settings, sessions, templates."""

    engine: Engine  # writes (review decisions, sign-ins, the daily coverage record)
    reader: Engine  # reads (no write lock taken on SQLite)
    settings: ConsoleSettings
    policy: Policy
    staff: StaffSettings
    sessions: access.Sessions
    templates: Jinja2Templates
    fresh: Fresh = field(default_factory=lambda: Fresh(0))
    proposals: ProposalSettings = field(default_factory=ProposalSettings)
    resources: Resources | None = None  # central's config and keys: applying bank kinds
    silent_after_s: float = 180.0  # [alerts] silent_after_s: an online terminal gone quiet
    fleet_files: tuple[Path, Path] | None = None  # [fleet] devices_dir, crl_file
    recorded: set[dt.date] = field(default_factory=set)
    recording: threading.Lock = field(default_factory=threading.Lock)

    @property
    def timezone(self) -> str:
        return self.policy.timezone

    def today(self) -> dt.date:
        return dt.datetime.now(zoneinfo.ZoneInfo(self.timezone)).date()
