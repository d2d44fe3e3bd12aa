"""Desired config from central: verified, checked against the terminal's own schema, applied
atomically, or refused with a reason.

Only the settings in ``RUNTIME`` may be changed remotely; each is checked with the bounds of
its own config section (``edge.config``), the whole result must validate. The applied
config is kept as ``<data_dir>/desired.json`` (written to a new file, fsynced, renamed)
with central's signed token, and laid over ``edge.toml`` at every start. A config is
refused when its signature does not verify with central's key, it names another device,
or its ``version`` is not newer than the one applied (a replay of an older config).
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from edge.config import EdgeConfig
from edge.fleet import files
from protocol import fleet, messages, signing
from protocol.errors import MessageError, SignatureError

log = logging.getLogger(__name__)

FILE: Final = "desired.json"
RUNTIME: Final = (
    "log_level",
    "link.telemetry_interval_s",
    "outbox.poll_interval_s",
    "outbox.ack_timeout_s",
    "outbox.backoff_max_s",
    "session.template_timeout_s",
)
"""Settings central may change; log level, telemetry and poll interval apply at once, the
others at the service's next start."""


class _Top(BaseModel):
    model_config = ConfigDict(extra="forbid")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ConfigRefusedError(ValueError):
    """Why a desired config was not applied (the reason goes into the report)."""


@dataclass(frozen=True)
class Applied:
    """The desired config the terminal runs."""

    version: int
    sha256: str
    settings: dict[str, Any]


def apply_settings(base: EdgeConfig, settings: dict[str, Any]) -> EdgeConfig:
    """``base`` with ``settings`` laid over it; ``ConfigRefusedError`` naming a bad setting."""
    if unknown := sorted(set(settings) - set(RUNTIME)):
        raise ConfigRefusedError(
            f"{', '.join(unknown)}: not changeable remotely (allowed: {', '.join(RUNTIME)})"
        )
    update: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for name, value in settings.items():
        section, _, field = name.rpartition(".")
        if section:
            sections.setdefault(section, {})[field] = value
        else:
            update[name] = value
    try:
        if update:
            update = _Top.model_validate(update).model_dump()
        for section, values in sections.items():
            current: BaseModel = getattr(base, section)
            update[section] = type(current).model_validate(current.model_dump() | values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'setting'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigRefusedError(problems) from None
    return base.model_copy(update=update)


class DesiredState:
    """The applied desired config of one terminal, on disk."""

    def __init__(self, data_dir: Path, device_id: str, verifier: signing.Verifier) -> None:
        self.path = data_dir / FILE
        self.device_id = device_id
        self.verifier = verifier
        self.applied: Applied | None = None
        self.refused: str | None = None
        doc = files.read_json(self.path)
        if doc is not None:
            try:
                config = self._verify(str(doc.get("token", "")).encode())
                self.applied = Applied(
                    config.version, fleet.settings_sha256(config.settings), config.settings
                )
            except (ConfigRefusedError, UnicodeError) as exc:
                log.warning("ignoring %s: %s", self.path, exc)

    def _verify(self, token: bytes) -> fleet.DesiredConfig:
        if len(token) > fleet.MAX_CONFIG_BYTES:
            raise ConfigRefusedError(f"{len(token)} bytes, more than {fleet.MAX_CONFIG_BYTES}")
        try:
            config = messages.decode(fleet.DesiredConfig, self.verifier.verify(token))
        except (SignatureError, MessageError) as exc:
            raise ConfigRefusedError(f"not a config signed by central: {exc}") from None
        if config.device_id != self.device_id:
            raise ConfigRefusedError(f"signed for {config.device_id}, not for {self.device_id}")
        return config

    def overlay(self, base: EdgeConfig) -> EdgeConfig:
        """``base`` with the applied settings (at start-up); ``base`` if they no longer fit."""
        if self.applied is None:
            return base
        try:
            return apply_settings(base, self.applied.settings)
        except ConfigRefusedError as exc:
            log.warning("applied config v%d no longer fits: %s", self.applied.version, exc)
            return base

    def receive(self, token: bytes, base: EdgeConfig) -> EdgeConfig | None:
        """Apply a desired config; the new config, or None if it was refused or is old news.

        A refusal is kept in ``refused`` (and logged) for the report."""
        try:
            config = self._verify(token)
        except ConfigRefusedError as exc:
            log.warning("desired config refused: %s", exc)
            self.refused = str(exc)
            return None
        have = self.applied.version if self.applied else 0
        digest = fleet.settings_sha256(config.settings)
        if config.version == have and self.applied and self.applied.sha256 == digest:
            return None  # the retained config again, e.g. after a reconnect
        if config.version <= have:
            self.refused = f"version {config.version} is not newer than {have} (replayed)"
            log.warning("desired config refused: %s", self.refused)
            return None
        try:
            new = apply_settings(base, config.settings)
        except ConfigRefusedError as exc:
            self.refused = f"version {config.version}: {exc}"
            log.warning("desired config refused: %s", self.refused)
            return None
        files.write_json(self.path, {"token": token.decode("ascii"), "version": config.version})
        self.applied, self.refused = Applied(config.version, digest, config.settings), None
        log.info("desired config v%d applied: %s", config.version, config.settings)
        return new
