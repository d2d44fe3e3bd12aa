"""Central's fleet tables on both engines: desired config versions, reports, commands and
their acks, a rollout's waves, halting and finishing (no broker: the functions the service
and the CLI call)."""

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
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
