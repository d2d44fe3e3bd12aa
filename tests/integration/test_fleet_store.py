"""Central's fleet tables on both engines: desired config versions, reports, commands and
their acks, a rollout's waves, halting and finishing (no broker: the functions the service
and the CLI call)."""

import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from central.fleet import commands, desired, rollouts
from central.store import db
from protocol import fleet, signing

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
MEMBERS = [desired.Member(f"term-s{i:02d}", "north" if i < 2 else "south") for i in range(5)]


def _signer() -> signing.Signer:
    key = ec.generate_private_key(ec.SECP256R1())
    return signing.Signer(key, signing.key_fingerprint(key.public_key()))


def _bundle(folder: Path) -> Path:
    """A tiny signed bundle in the manifest layout central checks (one 'model' file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    folder.mkdir()
    blob = b"weights" * 100
    (folder / "m.tflite").write_bytes(blob)
    manifest = {
        "version": "v1",
        "models": {
            "embedder": {
                "file": "m.tflite",
                "size": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(),
            }
        },
    }
    payload = json.dumps(manifest).encode()
    (folder / "manifest.json").write_bytes(payload)
    signer = signing.Signer(key, signing.key_fingerprint(key.public_key()))
    (folder / "manifest.jws").write_text(signer.sign(payload))
    pub = folder.parent / "pub.pem"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return pub


def test_fleet_tables_on_both_engines(db_url: str, tmp_path: Path) -> None:
    engine = db.create_engine(db_url)
    db.upgrade(engine)
    signer = _signer()

    # desired config: merged site < group < device, versions go up only on a change
    desired.set_config(engine, "site:north", {"log_level": "DEBUG"}, [], NOW)
    desired.add_to_group(engine, "canary", ["term-s01", "term-s02"])
    desired.set_config(engine, "group:canary", {"link.telemetry_interval_s": 30}, [], NOW)
    changed = desired.refresh(engine, MEMBERS, signer, NOW)
    assert changed == ["term-s00", "term-s01", "term-s02"]
    assert desired.refresh(engine, MEMBERS, signer, NOW) == []
    with engine.connect() as conn:
        assert desired.effective(conn, MEMBERS[1]) == {
            "log_level": "DEBUG",
            "link.telemetry_interval_s": 30,
        }
    report = fleet.Reported(
        device_id="term-s01",
        config_version=1,
        config_sha256=fleet.settings_sha256(
            {"log_level": "DEBUG", "link.telemetry_interval_s": 30}
        ),
        software_version="0.1.0",
        at=NOW,
    )
    desired.record_reported(engine, report, NOW)
    later = NOW + dt.timedelta(hours=1)
    rows = {
        r["device_id"]: r for r in desired.state(engine, MEMBERS, later, dt.timedelta(seconds=60))
    }
    assert rows["term-s01"]["state"] == "in sync"
    assert rows["term-s00"]["state"] == "drift" and rows["term-s03"]["state"] == "in sync"
    assert len(desired.unpublished(engine)) == 3

    # commands: an ack counts once, for the device it was sent to
    cid = commands.send(
        engine, signer, "term-s03", fleet.Action.SELF_TEST, NOW, dt.timedelta(minutes=5)
    )
    assert [c[0] for c in commands.queued(engine, NOW)] == [cid]
    ack = fleet.CommandAck(
        command_id=cid, device_id="term-s04", status=fleet.AckStatus.DONE, at=NOW
    )
    assert commands.record_ack(engine, ack, NOW) is None  # another device's
    ack = ack.model_copy(update={"device_id": "term-s03"})
    assert commands.record_ack(engine, ack, NOW) is not None
    assert commands.record_ack(engine, ack, NOW) is None  # again: nothing changes
    commands.send(engine, signer, "term-s04", fleet.Action.RESTART, NOW, dt.timedelta(seconds=5))
    assert commands.queued(engine, NOW + dt.timedelta(minutes=1)) == []  # expired

    # a rollout: canary wave fails beyond the rate and halts; nothing reaches the rest
    pub = _bundle(tmp_path / "bundle")
    rid = rollouts.create(
        engine,
        MEMBERS,
        tmp_path / "bundle",
        pub,
        tmp_path / "store",
        canary=["term-s01", "term-s02"],
        percents=[100],
        max_failure_rate=0.4,
        max_bytes=10**6,
        now=NOW,
    )
    ttl = dt.timedelta(hours=1)
    assert rollouts.advance(engine, signer, rid, "https://c:1", ttl, NOW) == 0
    with pytest.raises(rollouts.RolloutError, match="have not answered"):
        rollouts.advance(engine, signer, rid, "https://c:1", ttl, NOW)
    assert rollouts.may_download(engine, rid, "term-s01")
    assert not rollouts.may_download(engine, rid, "term-s03")
    offers = [c for c in commands.listing(engine, None, 100) if c["rollout_id"] == rid]
    for offer in offers:
        ok = offer["device_id"] == "term-s01"
        row = commands.record_ack(
            engine,
            fleet.CommandAck(
                command_id=offer["command_id"],
                device_id=offer["device_id"],
                status=fleet.AckStatus.DONE if ok else fleet.AckStatus.FAILED,
                detail="" if ok else "self-test failed",
                at=NOW,
            ),
            NOW,
        )
        assert row is not None
        rollouts.on_answer(engine, row, NOW)
    (status,) = rollouts.status(engine, rid)
    assert status["state"] == "halted" and "1 of 2 failed" in status["detail"]
    states = {d["device_id"]: d["state"] for d in rollouts.devices(engine, rid)}
    assert states == {
        "term-s00": "pending",
        "term-s01": "succeeded",
        "term-s02": "failed",
        "term-s03": "pending",
        "term-s04": "pending",
    }
    with pytest.raises(rollouts.RolloutError, match="halted"):
        rollouts.advance(engine, signer, rid, "https://c:1", ttl, NOW)
    rollouts.abort(engine, rid, NOW)
    assert rollouts.status(engine, rid)[0]["state"] == "aborted"
    engine.dispose()


def _answer(
    engine: sa.engine.Engine, command: dict[str, Any], ok: bool, detail: str, **data: str
) -> None:
    """What central does with a terminal's signed ack: record it, move the rollout."""
    ack = fleet.CommandAck(
        command_id=command["command_id"],
        device_id=command["device_id"],
        status=fleet.AckStatus.DONE if ok else fleet.AckStatus.REFUSED,
        detail=detail,
        data=data,
        at=NOW,
    )
    row = commands.record_ack(engine, ack, NOW)
    assert row is not None
    rollouts.on_answer(engine, row, NOW)


def test_abort_revert_asks_each_terminal_that_took_the_release_to_switch_back(
    db_url: str, tmp_path: Path
) -> None:
    engine = db.create_engine(db_url)
    db.upgrade(engine)
    key = ec.generate_private_key(ec.SECP256R1())
    signer = signing.Signer(key, signing.key_fingerprint(key.public_key()))
    pub = _bundle(tmp_path / "bundle")
    rid = rollouts.create(
        engine,
        MEMBERS,
        tmp_path / "bundle",
        pub,
        tmp_path / "store",
        canary=[],
        percents=[100],
        max_failure_rate=0.9,
        max_bytes=10**6,
        now=NOW,
    )
    rollouts.advance(engine, signer, rid, "https://c:1", dt.timedelta(hours=1), NOW)
    release = rollouts.status(engine, rid)[0]["sha256"][:16]

    def open_commands(action: str) -> dict[str, dict[str, Any]]:
        return {
            c["device_id"]: c
            for c in commands.listing(engine, None, 100)
            if c["rollout_id"] == rid and c["action"] == action and c["status"] == "queued"
        }

    offers = open_commands("update")
    commands.mark_sent(engine, [uuid.UUID(c["command_id"]) for c in offers.values()])  # published
    _answer(engine, offers["term-s00"], True, "running", release=release, previous="local-aa")
    _answer(engine, offers["term-s01"], True, "running", release=release, previous="local-bb")
    _answer(engine, offers["term-s02"], True, "running", release=release)  # names no previous
    _answer(engine, offers["term-s03"], False, "self-test failed; rolled back")
    # term-s04 has not answered yet: its offer is on its way

    ttl = dt.timedelta(hours=1)
    assert rollouts.revert(engine, signer, rid, ttl, NOW) == {"queued": 2, "impossible": 1}
    assert rollouts.status(engine, rid)[0]["state"] == "reverted"
    assert not rollouts.may_download(engine, rid, "term-s04")
    reverts = open_commands("revert")
    assert set(reverts) == {"term-s00", "term-s01"}  # not the one that rolled back itself
    with engine.connect() as conn:
        token = conn.execute(
            sa.select(commands.commands.c.token).where(
                commands.commands.c.command_id == uuid.UUID(reverts["term-s00"]["command_id"])
            )
        ).scalar_one()
    signed = json.loads(signing.Verifier(key.public_key()).verify(token))
    assert signed["device_id"] == "term-s00" and signed["action"] == "revert"
    assert signed["args"] == {
        "rollout_id": rid,
        "kind": "model",
        "release": release,
        "previous": "local-aa",
    }

    _answer(engine, reverts["term-s00"], True, f"switched back from {release} to local-aa")
    _answer(engine, reverts["term-s01"], False, "runs 0123, not ... (it has moved on)")
    states = {d["device_id"]: (d["state"], d["detail"]) for d in rollouts.devices(engine, rid)}
    assert states["term-s00"][0] == "reverted"
    assert states["term-s01"] == ("revert-failed", "runs 0123, not ... (it has moved on)")
    assert (
        states["term-s02"][0] == "revert-failed"
        and "no release from before" in states["term-s02"][1]
    )
    assert states["term-s03"][0] == "failed"
    (wave,) = rollouts.status(engine, rid)[0]["waves"]
    assert (wave["reverted"], wave["revert-failed"], wave["failed"]) == (1, 2, 1)

    # the offer that was on its way is taken after the revert: the service reverts it too
    _answer(engine, offers["term-s04"], True, "running", release=release, previous="local-ee")
    assert rollouts.revert_late(engine, signer, ttl, NOW) == [rid]
    assert rollouts.revert_late(engine, signer, ttl, NOW) == []
    late = open_commands("revert")["term-s04"]
    # it stays away past the command's lifetime: a failed revert; again: asked again
    assert commands.queued(engine, NOW + 2 * ttl) == []
    rollouts.expire_offers(engine, NOW + 2 * ttl)
    assert {d["device_id"]: d["state"] for d in rollouts.devices(engine, rid)}["term-s04"] == (
        "revert-failed"
    )
    again = rollouts.revert(engine, signer, rid, ttl, NOW + 2 * ttl)
    assert again == {"queued": 2, "impossible": 1}  # s01 (refused) and s04 (expired) again
    rollouts.expire_offers(engine, NOW + 2 * ttl)  # the expired one no longer counts
    states2 = {d["device_id"]: d["state"] for d in rollouts.devices(engine, rid)}
    assert states2["term-s04"] == states2["term-s01"] == "reverting"
    assert open_commands("revert")["term-s04"]["command_id"] != late["command_id"]
    engine.dispose()
