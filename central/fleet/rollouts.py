"""Rollouts of a signed model bundle or terminal-software bundle to the fleet, in waves.

``create`` checks the bundle (its manifest's JWS verifies with the fleet's model-signing
key and every file listed matches its size and SHA-256; nothing else is in the folder;
a software bundle, :mod:`protocol.software`, holds the project's wheel),
packs it into one archive in the rollout store and spreads the target devices over waves:
the canary group first, then cumulative percentages of the rest (in an order fixed by the
rollout id), e.g. ``canary``, ``25%``, ``100%``.

``advance`` starts the next wave (the first always; later ones by themselves in a rollout
created ``auto``, as soon as the wave before answered without halting): each of its
devices gets a signed ``update`` command naming the archive's URL on central's bundle
server, its SHA-256 and size. Terminals download it over mutual TLS, verify, stage,
switch, self-test and answer ``done`` or ``failed`` (rolled back). A wave whose failures
pass ``max_failure_rate`` of its devices *halts* the rollout: no later wave starts.
``advance`` also refuses while the current wave still has devices that have not answered.

``revert`` aborts a rollout and switches its terminals back: each device that answered
``done`` gets a signed ``revert`` command naming the rollout's release and the one the
device ran before (from its own signed ``done`` answer); the terminal switches back to that
kept release, or refuses when it no longer runs the rollout's release or the kept one is
gone. The service queues the same for devices whose ``done`` arrives later.
"""

import datetime as dt
import hashlib
import io
import json
import math
import os
import secrets
import tarfile
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from central.fleet import commands, desired
from central.store.schema import UtcDateTime, metadata
from common.errors import LifecertError
from protocol import fleet, signing, software
from protocol.errors import SignatureError

MANIFEST: Final = "manifest.json"
SIGNATURE: Final = "manifest.jws"
MAX_FILES: Final = 32

rollouts = sa.Table(
    "fleet_rollouts",
    metadata,
    sa.Column("rollout_id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("waves", sa.JSON, nullable=False),  # labels, e.g. ["canary", "25%", "100%"]
    sa.Column("max_failure_rate", sa.Float, nullable=False),
    sa.Column("auto_advance", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("wave", sa.Integer, nullable=False),  # the wave started last; -1 = none yet
    sa.Column("detail", sa.String(500), nullable=False, default=""),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

targets = sa.Table(
    "fleet_rollout_devices",
    metadata,
    sa.Column("rollout_id", sa.String(40), primary_key=True),
    sa.Column("device_id", sa.String(63), primary_key=True),
    sa.Column("wave", sa.Integer, nullable=False),
    # pending offered succeeded failed; after a revert: reverting reverted revert-failed
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("detail", sa.String(500), nullable=False, default=""),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

CREATED, RUNNING, HALTED, ABORTED, DONE = "created", "running", "halted", "aborted", "done"
REVERTED = "reverted"  # aborted, and its terminals are switched back
PENDING, OFFERED, SUCCEEDED, FAILED = "pending", "offered", "succeeded", "failed"
REVERTING, REVERT_DONE, REVERT_FAILED = "reverting", "reverted", "revert-failed"


class RolloutError(LifecertError, ValueError):
    """A rollout cannot be created or moved as asked."""


def check_bundle(folder: Path, public_key: Path, max_bytes: int) -> tuple[str, list[Path]]:
    """The bundle's version and files, after checking signature, hashes and sizes."""
    try:
        token = (folder / SIGNATURE).read_text(encoding="ascii").strip()
        shown = (folder / MANIFEST).read_bytes()
    except (OSError, UnicodeDecodeError) as exc:
        raise RolloutError(f"{folder}: not a model bundle ({exc})") from None
    try:
        payload = signing.Verifier(signing.load_public_key(public_key)).verify(token)
    except (OSError, SignatureError) as exc:
        raise RolloutError(
            f"{folder}: the manifest is not signed by the fleet's model key {public_key}: {exc}"
        ) from None
    if payload != shown:
        raise RolloutError(f"{folder / MANIFEST}: differs from the signed manifest (tampered)")
    try:
        manifest = json.loads(payload)
        version = str(manifest["version"])
        listed = {
            str(m["file"]): (int(m["size"]), str(m["sha256"])) for m in manifest["models"].values()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RolloutError(f"{folder / MANIFEST}: not a model bundle manifest ({exc})") from None
    present = {p.name for p in folder.iterdir()}
    if extra := present - set(listed) - {MANIFEST, SIGNATURE}:
        raise RolloutError(f"{folder}: files the manifest does not list: {sorted(extra)}")
    if len(listed) > MAX_FILES:
        raise RolloutError(f"{folder}: more than {MAX_FILES} files")
    total = 0
    for name, (size, sha) in listed.items():
        path = folder / name
        if Path(name).name != name or not path.is_file() or path.is_symlink():
            raise RolloutError(f"{folder}: {name!r} is missing or not a plain file")
        data = path.read_bytes()
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
            raise RolloutError(f"{path}: does not match its SHA-256 in the signed manifest")
        total += size
    if total > max_bytes:
        raise RolloutError(f"{folder}: {total} bytes, more than [rollout] max_bundle_bytes")
    return version, [folder / SIGNATURE, folder / MANIFEST, *(folder / n for n in sorted(listed))]


def check_any(folder: Path, public_key: Path, max_bytes: int) -> tuple[str, str, list[Path]]:
    """The bundle's kind (``model`` or ``software``), version and files, checked."""
    if not software.is_software_bundle(folder):
        return ("model", *check_bundle(folder, public_key, max_bytes))
    try:
        manifest = software.verify_bundle(folder, public_key)
    except software.SoftwareBundleError as exc:
        raise RolloutError(str(exc)) from None
    if manifest.files[manifest.wheel].size > max_bytes:
        raise RolloutError(f"{folder}: more than [rollout] max_bundle_bytes")
    names = (software.SIGNATURE, software.MANIFEST, manifest.wheel)
    return "software", manifest.version, [folder / n for n in names]


def pack(files: list[Path], out: Path) -> tuple[str, int]:
    """Write the files into an uncompressed tar at ``out`` (atomically); SHA-256 and size."""
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    with part.open("wb") as raw:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in files:
                data = path.read_bytes()
                info = tarfile.TarInfo(path.name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(part, out)
    digest = hashlib.sha256()
    with out.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest(), out.stat().st_size


def archive_path(store: Path, rollout_id: str) -> Path:
    """Where a rollout's archive is kept."""
    return store / f"{rollout_id}.tar"


def plan_waves(
    members: list[desired.Member], canary: list[str], percents: list[int], rollout_id: str
) -> tuple[list[str], dict[str, int]]:
    """Wave labels and each device's wave: canaries in wave 0, the rest by percentages."""
    if any(not 0 < p <= 100 for p in percents) or percents != sorted(percents):
        raise RolloutError("--wave: increasing percentages between 1 and 100, e.g. 25 100")
    if not percents or percents[-1] != 100:
        percents = [*percents, 100]
    ids = [m.device_id for m in members]
    first = sorted(set(canary) & set(ids))
    if canary and not first:
        raise RolloutError("the canary group holds no enrolled device")
    rest = sorted(
        set(ids) - set(first),
        key=lambda d: hashlib.sha256(f"{rollout_id}/{d}".encode()).hexdigest(),
    )
    labels: list[str] = []
    wave_of: dict[str, int] = {}
    if first:
        labels.append("canary")
        wave_of |= dict.fromkeys(first, 0)
    done = 0
    for p in percents:
        upto = math.ceil(len(rest) * p / 100)
        if upto > done:
            wave_of |= {d: len(labels) for d in rest[done:upto]}
            labels.append(f"{p}%")
            done = upto
    if not wave_of:
        raise RolloutError("no enrolled device to roll out to")
    return labels, wave_of


def create(
    engine: Engine,
    members: list[desired.Member],
    folder: Path,
    public_key: Path,
    store: Path,
    *,
    canary: list[str],
    percents: list[int],
    max_failure_rate: float,
    max_bytes: int,
    now: dt.datetime,
    only: list[str] | None = None,
    auto: bool = False,
) -> str:
    """Check and pack the bundle, plan the waves (over the devices in ``only``, if given,
    else every enrolled one); the new rollout's id."""
    if only is not None:
        members = [m for m in members if m.device_id in set(only)]
    if not 0 <= max_failure_rate < 1:
        raise RolloutError("--max-failure-rate: a fraction from 0 up to (not including) 1")
    kind, version, files = check_any(folder, public_key, max_bytes)
    rollout_id = f"r{now:%Y%m%d}-{secrets.token_hex(3)}"
    labels, wave_of = plan_waves(members, canary, percents, rollout_id)
    sha, size = pack(files, archive_path(store, rollout_id))
    with engine.begin() as conn:
        conn.execute(
            sa.insert(rollouts).values(
                rollout_id=rollout_id,
                kind=kind,
                version=version,
                sha256=sha,
                size=size,
                waves=labels,
                max_failure_rate=max_failure_rate,
                auto_advance=auto,
                state=CREATED,
                wave=-1,
                detail="",
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            sa.insert(targets),
            [
                {
                    "rollout_id": rollout_id,
                    "device_id": d,
                    "wave": w,
                    "state": PENDING,
                    "detail": "",
                    "updated_at": now,
                }
                for d, w in sorted(wave_of.items())
            ],
        )
    return rollout_id


def _get(conn: Connection, rollout_id: str) -> Any:
    row = conn.execute(sa.select(rollouts).where(rollouts.c.rollout_id == rollout_id)).first()
    if row is None:
        raise RolloutError(
            f"no rollout {rollout_id!r}: see `lifecert-central fleet rollout status`"
        )
    return row


def advance(
    engine: Engine,
    signer: signing.Signer,
    rollout_id: str,
    base_url: str,
    ttl: dt.timedelta,
    now: dt.datetime,
) -> int:
    """Start the rollout's next wave (offers signed ``update`` commands); its index."""
    with engine.begin() as conn:
        row = _get(conn, rollout_id)
        if row.state not in (CREATED, RUNNING):
            raise RolloutError(f"rollout {rollout_id} is {row.state}: {row.detail}".rstrip(": "))
        if row.wave >= 0:
            waiting = _count(conn, rollout_id, row.wave, (PENDING, OFFERED))
            if waiting:
                raise RolloutError(
                    f"wave {row.waves[row.wave]} of {rollout_id}: {waiting} device(s) have not "
                    "answered yet; see `lifecert-central fleet rollout status`"
                )
        nxt = row.wave + 1
        if nxt >= len(row.waves):
            raise RolloutError(f"rollout {rollout_id} has no wave after {row.waves[row.wave]}")
        devices = (
            conn.execute(
                sa.select(targets.c.device_id).where(
                    targets.c.rollout_id == rollout_id, targets.c.wave == nxt
                )
            )
            .scalars()
            .all()
        )
        conn.execute(
            sa.update(rollouts)
            .where(rollouts.c.rollout_id == rollout_id)
            .values(state=RUNNING, wave=nxt, updated_at=now)
        )
        args = fleet.UpdateArgs(
            rollout_id=rollout_id,
            kind=row.kind,
            url=f"{base_url}/rollouts/{rollout_id}.tar",
            sha256=row.sha256,
            size=row.size,
            version=row.version,
        ).model_dump()
        for device_id in devices:  # the wave moves with all its offers, or not at all
            commands.queue_command(
                conn, signer, device_id, fleet.Action.UPDATE, now, ttl, args, rollout_id
            )
        conn.execute(
            sa.update(targets)
            .where(targets.c.rollout_id == rollout_id, targets.c.wave == nxt)
            .values(state=OFFERED, updated_at=now)
        )
    return int(nxt)


def _count(conn: Connection, rollout_id: str, wave: int, states: tuple[str, ...]) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                targets.c.rollout_id == rollout_id,
                targets.c.wave == wave,
                targets.c.state.in_(states),
            )
        ).scalar_one()
    )


def on_answer(engine: Engine, row: dict[str, Any], now: dt.datetime) -> None:
    """A terminal answered (or let expire) its ``update``: record it, halt on failures,
    finish the rollout when its last wave has answered (one transaction). An answer to a
    ``revert`` only records whether the terminal switched back."""
    rollout_id = row["rollout_id"]
    done = row["status"] == fleet.AckStatus.DONE.value
    if row["action"] == fleet.Action.REVERT.value:
        with engine.begin() as conn:
            conn.execute(
                sa.update(targets)
                .where(targets.c.rollout_id == rollout_id, targets.c.device_id == row["device_id"])
                .values(
                    state=REVERT_DONE if done else REVERT_FAILED,
                    detail=row["detail"][:500],
                    updated_at=now,
                )
            )
        return
    state = SUCCEEDED if done else FAILED
    with engine.begin() as conn:
        conn.execute(
            sa.update(targets)
            .where(targets.c.rollout_id == rollout_id, targets.c.device_id == row["device_id"])
            .values(state=state, detail=row["detail"][:500], updated_at=now)
        )
        roll = _get(conn, rollout_id)
        if roll.state not in (RUNNING, DONE):
            return
        size = _count(conn, rollout_id, roll.wave, (PENDING, OFFERED, SUCCEEDED, FAILED))
        failed = _count(conn, rollout_id, roll.wave, (FAILED,))
        if size and failed / size > roll.max_failure_rate:
            conn.execute(
                sa.update(rollouts)
                .where(rollouts.c.rollout_id == rollout_id)
                .values(
                    state=HALTED,
                    updated_at=now,
                    detail=f"wave {roll.waves[roll.wave]}: {failed} of {size} failed "
                    f"(more than {roll.max_failure_rate:.0%})",
                )
            )
            return
        last = roll.wave == len(roll.waves) - 1
        if (
            roll.state == RUNNING
            and last
            and not _count(conn, rollout_id, roll.wave, (PENDING, OFFERED))
        ):
            conn.execute(
                sa.update(rollouts)
                .where(rollouts.c.rollout_id == rollout_id)
                .values(state=DONE, updated_at=now)
            )


def auto_advance(
    engine: Engine, signer: signing.Signer, base_url: str, ttl: dt.timedelta, now: dt.datetime
) -> list[str]:
    """Start the next wave of every ``auto`` rollout whose current wave answered without
    halting it; the rollouts moved."""
    with engine.connect() as conn:
        running = conn.execute(
            sa.select(rollouts.c.rollout_id, rollouts.c.wave, rollouts.c.waves).where(
                rollouts.c.state == RUNNING, rollouts.c.auto_advance.is_(True)
            )
        ).all()
        due = [
            r.rollout_id
            for r in running
            if r.wave < len(r.waves) - 1
            and not _count(conn, r.rollout_id, r.wave, (PENDING, OFFERED))
        ]
    for rollout_id in due:
        advance(engine, signer, rollout_id, base_url, ttl, now)
    return due


def expire_offers(engine: Engine, now: dt.datetime) -> None:
    """Count offers whose ``update`` command, and reverts whose ``revert`` command, expired
    unanswered as failures."""
    c = commands.commands
    waiting = sa.or_(
        sa.and_(c.c.action == fleet.Action.UPDATE.value, targets.c.state == OFFERED),
        sa.and_(c.c.action == fleet.Action.REVERT.value, targets.c.state == REVERTING),
    )
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.c.rollout_id, c.c.device_id, c.c.action, c.c.detail)
            .join(
                targets,
                sa.and_(
                    targets.c.rollout_id == c.c.rollout_id, targets.c.device_id == c.c.device_id
                ),
            )
            .where(c.c.status == "expired", waiting)
        ).all()
    for r in rows:
        row = {"rollout_id": r.rollout_id, "device_id": r.device_id, "status": "expired"}
        on_answer(engine, row | {"action": r.action, "detail": r.detail}, now)


def abort(engine: Engine, rollout_id: str, now: dt.datetime) -> None:
    """Stop a rollout: no further wave; offers not yet answered are withdrawn (expired)."""
    with engine.begin() as conn:
        row = _get(conn, rollout_id)
        if row.state in (ABORTED, DONE, REVERTED):
            raise RolloutError(f"rollout {rollout_id} is already {row.state}")
        _stop(conn, rollout_id, ABORTED, "aborted by an operator", now)


def _stop(conn: Connection, rollout_id: str, state: str, detail: str, now: dt.datetime) -> None:
    conn.execute(
        sa.update(rollouts)
        .where(rollouts.c.rollout_id == rollout_id)
        .values(state=state, detail=detail, updated_at=now)
    )
    conn.execute(
        sa.update(commands.commands)
        .where(
            commands.commands.c.rollout_id == rollout_id,
            commands.commands.c.action == fleet.Action.UPDATE.value,
            commands.commands.c.status == commands.QUEUED,
        )
        .values(status="withdrawn", detail="rollout aborted before it was sent")
    )


def revert(
    engine: Engine,
    signer: signing.Signer,
    rollout_id: str,
    ttl: dt.timedelta,
    now: dt.datetime,
) -> dict[str, int]:
    """Abort a rollout (in any state) and switch its terminals back: a signed ``revert`` for
    each device that took the release, and again for those whose revert failed (a retry);
    counts of ``queued`` and ``impossible`` (no release from before to go back to)."""
    with engine.begin() as conn:
        row = _get(conn, rollout_id)
        _stop(conn, rollout_id, REVERTED, "aborted by an operator, reverting", now)
        return _queue_reverts(conn, signer, row, (SUCCEEDED, REVERT_FAILED), ttl, now)


def revert_late(
    engine: Engine, signer: signing.Signer, ttl: dt.timedelta, now: dt.datetime
) -> list[str]:
    """Queue reverts for devices of reverted rollouts that answered ``done`` after the
    revert (their offer was already on its way); the rollouts concerned."""
    with engine.connect() as conn:
        due = (
            conn.execute(
                sa.select(rollouts.c.rollout_id)
                .join(targets, targets.c.rollout_id == rollouts.c.rollout_id)
                .where(rollouts.c.state == REVERTED, targets.c.state == SUCCEEDED)
                .distinct()
            )
            .scalars()
            .all()
        )
    for rollout_id in due:
        with engine.begin() as conn:
            _queue_reverts(conn, signer, _get(conn, rollout_id), (SUCCEEDED,), ttl, now)
    return list(due)


def _queue_reverts(
    conn: Connection,
    signer: signing.Signer,
    roll: Any,
    states: tuple[str, ...],
    ttl: dt.timedelta,
    now: dt.datetime,
) -> dict[str, int]:
    c = commands.commands
    rows = conn.execute(
        sa.select(targets.c.device_id, c.c.ack_data)
        .join(
            c,
            sa.and_(c.c.rollout_id == targets.c.rollout_id, c.c.device_id == targets.c.device_id),
        )
        .where(
            targets.c.rollout_id == roll.rollout_id,
            targets.c.state.in_(states),
            c.c.action == fleet.Action.UPDATE.value,
            c.c.status == fleet.AckStatus.DONE.value,
        )
    ).all()
    counts = {"queued": 0, "impossible": 0}
    for device_id, data in rows:
        where = sa.and_(targets.c.rollout_id == roll.rollout_id, targets.c.device_id == device_id)
        try:
            args = fleet.RevertArgs.model_validate(
                {
                    "rollout_id": roll.rollout_id,
                    "kind": roll.kind,
                    "release": (data or {}).get("release"),
                    "previous": (data or {}).get("previous"),
                }
            ).model_dump()
        except ValueError:
            detail = "its answer to the update named no release from before to switch back to"
            conn.execute(
                sa.update(targets)
                .where(where)
                .values(state=REVERT_FAILED, detail=detail, updated_at=now)
            )
            counts["impossible"] += 1
            continue
        conn.execute(  # a retry: the expired revert before it no longer counts
            sa.update(c)
            .where(
                c.c.rollout_id == roll.rollout_id,
                c.c.device_id == device_id,
                c.c.action == fleet.Action.REVERT.value,
                c.c.status == "expired",
            )
            .values(status="superseded")
        )
        commands.queue_command(
            conn, signer, device_id, fleet.Action.REVERT, now, ttl, args, roll.rollout_id
        )
        conn.execute(
            sa.update(targets).where(where).values(state=REVERTING, detail="", updated_at=now)
        )
        counts["queued"] += 1
    return counts


def status(engine: Engine, rollout_id: str | None) -> list[dict[str, Any]]:
    """Every rollout (or one) with per-wave counts of device states."""
    with engine.connect() as conn:
        query = sa.select(rollouts).order_by(rollouts.c.created_at.desc())
        if rollout_id is not None:
            _get(conn, rollout_id)
            query = query.where(rollouts.c.rollout_id == rollout_id)
        out = []
        for r in conn.execute(query).all():
            counts = conn.execute(
                sa.select(targets.c.wave, targets.c.state, sa.func.count())
                .where(targets.c.rollout_id == r.rollout_id)
                .group_by(targets.c.wave, targets.c.state)
            ).all()
            waves = [
                {"wave": label} | {s: n for w, s, n in counts if w == i}
                for i, label in enumerate(r.waves)
            ]
            out.append(
                {
                    "rollout_id": r.rollout_id,
                    "kind": r.kind,
                    "version": r.version,
                    "state": r.state,
                    "wave": r.waves[r.wave] if r.wave >= 0 else None,
                    "size": r.size,
                    "sha256": r.sha256,
                    "detail": r.detail,
                    "waves": waves,
                }
            )
        return out


def devices(engine: Engine, rollout_id: str) -> list[dict[str, Any]]:
    """Each target device of a rollout: its wave, state and the terminal's detail."""
    with engine.connect() as conn:
        _get(conn, rollout_id)
        rows = conn.execute(
            sa.select(targets)
            .where(targets.c.rollout_id == rollout_id)
            .order_by(targets.c.wave, targets.c.device_id)
        )
        return [
            {"device_id": r.device_id, "wave": r.wave, "state": r.state, "detail": r.detail}
            for r in rows
        ]


def may_download(engine: Engine, rollout_id: str, device_id: str) -> bool:
    """True when ``device_id`` was offered ``rollout_id`` (and it is not aborted)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(targets.c.state, rollouts.c.state.label("rollout_state"))
            .join(rollouts, rollouts.c.rollout_id == targets.c.rollout_id)
            .where(targets.c.rollout_id == rollout_id, targets.c.device_id == device_id)
        ).first()
    return row is not None and row.state == OFFERED and row.rollout_state not in (ABORTED, REVERTED)
