"""Fleet config, commands and rollouts without processes: the checks each side makes."""

import datetime as dt
import io
import re
import tarfile
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from central.fleet import desired, rollouts
from edge.config import EdgeConfig
from edge.fleet.commands import CommandGate, CommandRefusedError
from edge.fleet.desired import ConfigRefusedError, apply_settings
from edge.fleet.updates import UpdateError, Updater
from protocol import fleet, messages, signing

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def _keys() -> tuple[signing.Signer, signing.Verifier]:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = signing.Signer(key, signing.key_fingerprint(key.public_key()))
    return signer, signing.Verifier(key.public_key())


def _cfg(tmp_path: Path) -> EdgeConfig:
    return EdgeConfig.model_validate(
        {
            "device_id": "term-u01",
            "data_dir": str(tmp_path / "var"),
            "mqtt": {"tls": {"ca_file": "ca", "cert_file": "c", "key_file": "k"}},
            "central": {"sign_pub": "s", "seal_pub": "p", "model_sign_pub": "m"},
            "models": {"bundle": str(tmp_path / "models")},
        }
    )


def test_waves_put_the_canaries_first_then_cumulative_shares_of_the_rest() -> None:
    members = [desired.Member(f"term-{i:03d}", "default") for i in range(10)]
    labels, wave_of = rollouts.plan_waves(members, ["term-001", "term-002"], [25, 100], "r1")
    assert labels == ["canary", "25%", "100%"]
    assert {d for d, w in wave_of.items() if w == 0} == {"term-001", "term-002"}
    assert sum(1 for w in wave_of.values() if w == 1) == 2  # ceil(8 * 25%)
    assert sum(1 for w in wave_of.values() if w == 2) == 6
    with pytest.raises(rollouts.RolloutError, match="increasing percentages"):
        rollouts.plan_waves(members, [], [50, 25], "r1")
    with pytest.raises(rollouts.RolloutError, match="canary group holds no enrolled"):
        rollouts.plan_waves(members, ["term-999"], [100], "r1")


def test_operator_settings_are_parsed_and_bounded_before_anything_is_signed() -> None:
    assert desired.parse_setting("link.telemetry_interval_s=30") == (
        "link.telemetry_interval_s",
        30,
    )
    assert desired.parse_setting("log_level=DEBUG") == ("log_level", "DEBUG")
    with pytest.raises(desired.TargetError, match="name=value"):
        desired.parse_setting("log_level")
    with pytest.raises(desired.TargetError, match="dotted name"):
        desired.parse_setting("Bad Name=1")
    with pytest.raises(desired.TargetError, match="device:<id>"):
        desired.check_target("host:term-1")


def test_the_terminal_applies_only_whitelisted_settings_within_its_own_bounds(
    tmp_path: Path,
) -> None:
    cfg = _cfg(tmp_path)
    new = apply_settings(cfg, {"log_level": "DEBUG", "link.telemetry_interval_s": 15})
    assert (new.log_level, new.link.telemetry_interval_s) == ("DEBUG", 15)
    assert new.mqtt == cfg.mqtt
    with pytest.raises(ConfigRefusedError, match=r"telemetry_interval_s.*greater than or equal"):
        apply_settings(cfg, {"link.telemetry_interval_s": -1})
    with pytest.raises(ConfigRefusedError, match=r"mqtt\.host: not changeable remotely"):
        apply_settings(cfg, {"mqtt.host": "evil.example"})
    with pytest.raises(ConfigRefusedError, match="backoff_max_s must be at least"):
        apply_settings(cfg, {"outbox.ack_timeout_s": 900})  # above the default back-off cap
    with pytest.raises(ConfigRefusedError, match="log_level"):
        apply_settings(cfg, {"log_level": "TRACE"})


def _command(signer: signing.Signer, device: str = "term-u01", **times: dt.datetime) -> bytes:
    command = fleet.Command(
        command_id=uuid.uuid4(),
        device_id=device,
        action=fleet.Action.SELF_TEST,
        issued_at=times.get("issued", NOW),
        expires_at=times.get("expires", NOW + dt.timedelta(hours=1)),
    )
    return signer.sign(messages.encode(command)).encode()


def test_a_command_is_carried_out_once_for_its_device_while_valid(tmp_path: Path) -> None:
    central, verifier = _keys()
    gate = CommandGate(tmp_path / "edge.sqlite", "term-u01", verifier)
    token = _command(central)
    assert gate.accept(token, NOW).action is fleet.Action.SELF_TEST
    cases = {
        "already received (replayed)": (token, NOW),
        "not for term-u01": (_command(central, "term-u02"), NOW),
        "expired": (_command(central), NOW + dt.timedelta(hours=2)),
        "issued in the future": (_command(central, issued=NOW + dt.timedelta(hours=1)), NOW),
        "longer than a command may be": (
            _command(central, expires=NOW + dt.timedelta(days=30)),
            NOW,
        ),
        "not a command signed by central": (_command(_keys()[0]), NOW),
    }
    for reason, (candidate, when) in cases.items():
        with pytest.raises(CommandRefusedError, match=re.escape(reason)):
            gate.accept(candidate, when)
    gate.close()


def test_an_archive_with_anything_but_plain_files_is_not_unpacked(tmp_path: Path) -> None:
    updater = Updater(_cfg(tmp_path), None)
    for name, kind in (("../escape", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)):
        archive = tmp_path / f"{kind!r}.tar"
        with tarfile.open(archive, "w") as tar:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
                tar.addfile(info)
            else:
                info.size = 1
                tar.addfile(info, io.BytesIO(b"x"))
        with pytest.raises(UpdateError, match="plain files only"):
            updater._stage(archive, "r1")
        assert not (tmp_path / "escape").exists()


def test_a_new_fleet_has_a_bundle_server_certificate_for_the_brokers_names(
    tmp_path: Path,
) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from provisioning.fleet import Fleet

    fleet_dir = Fleet.create(tmp_path / "fleet", "t", broker_host="broker.example", broker_port=1)
    cert = x509.load_pem_x509_certificate((fleet_dir.paths.central / "bundles.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "broker.example" in names.get_values_for_type(x509.DNSName)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage and ExtendedKeyUsageOID.CLIENT_AUTH not in usage
