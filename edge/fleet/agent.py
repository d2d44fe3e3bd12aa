"""The terminal's fleet agent: one thread that takes desired configs and commands from the
broker link, carries them out and answers, signed with the device key.

- a desired config (retained on ``config``) is applied or refused (:mod:`edge.fleet.desired`);
- a command (``cmd``) passes :class:`edge.fleet.commands.CommandGate`, runs, and gets a
  :class:`protocol.fleet.CommandAck` on ``cmdack``: ``restart`` (the service stops with
  ``RESTART_EXIT`` for systemd to start it again), ``self_test`` (the current bundle on
  the reference images), ``resync_templates`` (drops the cached templates: the next
  session fetches them from central), ``update`` and ``revert`` (:mod:`edge.fleet.updates`), and
  ``renew_certificate`` when a renewal is installed in ``ACTIONS``;
- the sessions after an update are counted (:meth:`FleetAgent.session_ended`): a release
  whose sessions end in errors is rolled back and reported failed (:mod:`edge.fleet.probation`);
- after every connect and every change, what the terminal runs goes retained on
  ``reported`` (config version and hash or the refusal, model release, software version).

Work runs here, never on paho's thread; an update interrupted by a restart is finished
(:meth:`edge.fleet.updates.Updater.recover`) and acked after the next connect.
"""

import datetime as dt
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from edge.config import EdgeConfig
from edge.fleet import selftest
from edge.fleet.commands import CommandGate, CommandRefusedError
from edge.fleet.desired import DesiredState
from edge.fleet.software import running_version
from edge.fleet.updates import Outcome, Updater
from protocol import fleet, messages, signing
from protocol.errors import MessageError

log = logging.getLogger(__name__)

RESTART_EXIT: Final = 75
"""Exit status of ``lifecert-edge run`` after a ``restart`` command (systemd restarts it)."""
Action = Callable[[fleet.Command], tuple[fleet.AckStatus, str]]
ACTIONS: dict[fleet.Action, Action] = {}
"""Actions other rooms install (e.g. certificate renewal), by name."""


class FleetPort(Protocol):
    """What the agent needs of the broker link."""

    def publish_fleet(self, kind: str, payload: bytes, retain: bool) -> bool: ...

    def wait_connected(self, timeout: float) -> bool: ...


class FleetAgent:
    """Desired config and commands for one terminal; a context manager."""

    def __init__(
        self,
        base: EdgeConfig,
        signer: signing.Signer,
        central: signing.Verifier,
        updater: Updater,
        software: Updater,
        on_config: Callable[[EdgeConfig], None],
        on_restart: Callable[[], None],
    ) -> None:
        self.base, self.signer, self.updater, self.software = base, signer, updater, software
        self.on_config, self.on_restart = on_config, on_restart
        self.desired = DesiredState(base.data_dir, base.device_id, central)
        self.gate = CommandGate(base.db_path, base.device_id, central)
        self.link: FleetPort | None = None
        self._inbox: queue.Queue[tuple[str, bytes]] = queue.Queue(1000)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._work, name="fleet", daemon=True)

    def config(self) -> EdgeConfig:
        """The config to run: ``edge.toml`` with the applied desired settings."""
        return self.desired.overlay(self.base)

    # -- from the link (paho's thread) ----------------------------------------------------

    def on_message(self, kind: str, payload: bytes) -> None:
        """A message on ``config`` or ``cmd``, or ``connect`` (queued for the agent)."""
        try:
            self._inbox.put_nowait((kind, payload))
        except queue.Full:
            log.warning("fleet inbox full: a %s message dropped", kind)

    # -- the agent's thread ---------------------------------------------------------------

    def start(self, link: FleetPort) -> None:
        """Start working over ``link`` (started by its owner)."""
        self.link = link
        self._thread.start()

    def _work(self) -> None:
        assert self.link is not None
        while not self._halt.is_set() and not self.link.wait_connected(0.5):
            pass
        for updater in (self.software, self.updater):
            if (outcome := updater.recover()) is not None:
                self._finish(updater, outcome)
        while not self._halt.is_set():
            try:
                kind, payload = self._inbox.get(timeout=0.25)
            except queue.Empty:
                self._watch()
                continue
            try:
                if kind == "config":
                    new = self.desired.receive(payload, self.base)
                    if new is not None:
                        self.on_config(new)
                    self._report()
                elif kind == "cmd":
                    self._command(payload)
                elif kind == "connect":
                    self._report()
            except (OSError, sqlite3.Error) as exc:
                log.error("fleet %s message not handled: %s", kind, exc)

    def session_ended(self, error: bool) -> None:
        """A session ended (``error``: in an exception); counted against a release on
        probation (on the session's thread, durable before it returns)."""
        for updater in (self.software, self.updater):
            try:
                updater.session_ended(error)
            except OSError as exc:
                log.error("session not counted for the probation: %s", exc)

    def _watch(self) -> None:
        """Roll back a release whose probation sessions failed; end probations that ran out."""
        for updater in (self.software, self.updater):
            if (outcome := updater.check_sessions()) is not None:
                self._finish(updater, outcome)
            updater.end_probation(time.time())

    def _command(self, token: bytes) -> None:
        now = dt.datetime.now(dt.UTC)
        try:
            command = self.gate.accept(token, now)
        except CommandRefusedError as exc:
            log.warning("command refused: %s", exc)
            if exc.command_id is not None:
                self._ack(str(exc.command_id), fleet.AckStatus.REFUSED, str(exc), {})
            return
        log.info("command %s: %s", command.command_id, command.action.value)
        cid = str(command.command_id)
        if command.action is fleet.Action.UPDATE:
            try:
                args = fleet.UpdateArgs.model_validate(command.args)
            except ValueError as exc:
                self._ack(cid, fleet.AckStatus.REFUSED, f"bad update arguments: {exc}", {})
                return
            updater = self.software if args.kind == "software" else self.updater
            self._finish(updater, updater.update(cid, args))
            return
        if command.action is fleet.Action.REVERT:
            try:
                back = fleet.RevertArgs.model_validate(command.args)
            except ValueError as exc:
                self._ack(cid, fleet.AckStatus.REFUSED, f"bad revert arguments: {exc}", {})
                return
            updater = self.software if back.kind == "software" else self.updater
            self._finish(updater, updater.revert(cid, back), settles=False)
            return
        status, detail = self._run(command)
        self._ack(cid, status, detail, {})
        if command.action is fleet.Action.RESTART and status is fleet.AckStatus.DONE:
            self.on_restart()

    def _run(self, command: fleet.Command) -> tuple[fleet.AckStatus, str]:
        action = command.action
        if action in ACTIONS:
            return ACTIONS[action](command)
        if action is fleet.Action.RESTART:
            return fleet.AckStatus.DONE, "restarting"
        if action is fleet.Action.SELF_TEST:
            try:
                return fleet.AckStatus.DONE, self.updater.self_test()
            except selftest.SelfTestError as exc:
                return fleet.AckStatus.FAILED, str(exc)
        if action is fleet.Action.RESYNC_TEMPLATES:
            return fleet.AckStatus.DONE, f"{self._drop_templates()} cached template(s) dropped"
        return fleet.AckStatus.REFUSED, f"{action.value} is not available on this terminal"

    def _drop_templates(self) -> int:
        with sqlite3.connect(self.base.db_path, timeout=10) as db:
            exists = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'template_cache'"
            ).fetchone()
            return db.execute("DELETE FROM template_cache").rowcount if exists else 0

    def _finish(self, updater: Updater, outcome: Outcome, settles: bool = True) -> None:
        """Answer, report, restart if need be; ``settles``: the outcome is an update's, whose
        journal it ends or turns into probation (a revert leaves another update's alone)."""
        if (
            outcome.status is not None
            and self._ack(outcome.command_id, outcome.status, outcome.detail, outcome.data)
            and settles
        ):
            updater.finished(outcome)
        self._report()
        if outcome.restart or (outcome.status is fleet.AckStatus.DONE and self.base.kiosk.enabled):
            self.on_restart()  # into the release switched to; the kiosk holds the old models

    def _ack(self, cid: str, status: fleet.AckStatus, detail: str, data: dict[str, Any]) -> bool:
        try:
            ack = fleet.CommandAck(
                command_id=cid,  # type: ignore[arg-type]  # pydantic parses the UUID
                device_id=self.base.device_id,
                status=status,
                detail=detail[:500],
                data=data,
                at=dt.datetime.now(dt.UTC),
            )
        except ValueError as exc:
            log.error("ack not built: %s", exc)
            return False
        return self._publish("cmdack", messages.encode(ack), retain=False)

    def _report(self) -> None:
        applied = self.desired.applied
        try:
            report = fleet.Reported(
                device_id=self.base.device_id,
                config_version=applied.version if applied else 0,
                config_sha256=applied.sha256 if applied else None,
                config_error=self.desired.refused[:500] if self.desired.refused else None,
                model_version=self.updater.current(),
                software_version=running_version(),
                at=dt.datetime.now(dt.UTC),
            )
        except (ValueError, MessageError) as exc:
            log.error("report not built: %s", exc)
            return
        self._publish("reported", messages.encode(report), retain=True)

    def _publish(self, kind: str, body: bytes, retain: bool) -> bool:
        assert self.link is not None
        token = self.signer.sign(body).encode("ascii")
        return self.link.publish_fleet(kind, token, retain)

    def close(self) -> None:
        """Stop the thread (an update in progress finishes first) and close the seen-list."""
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        self.gate.close()

    def __enter__(self) -> "FleetAgent":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
