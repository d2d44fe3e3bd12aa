"""``lifecert-edge`` and edge.toml: validation, clear errors, certify-assisted, outbox."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from common.errors import ConfigError
from edge.bootstrap import open_outbox
from edge.cli import main
from tests.unit.test_edge_keys import Bundle, edge_bundle  # noqa: F401
from tests.unit.test_edge_outbox import RETIREE

REPO = Path(__file__).resolve().parents[2]


def invoke(bundle: Bundle, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(bundle.config_path), *args])
    return result.exit_code, result.stdout, result.stderr


def test_design_md_config_loads_with_defaults(edge_bundle: Bundle) -> None:  # noqa: F811
    cfg = edge_bundle.config()
    assert cfg.device_id == "term-0001"
    assert cfg.db_path == edge_bundle.dir / "var" / "edge.sqlite"
    assert cfg.mqtt.tls.key_file == edge_bundle.dir / "device.key"
    assert cfg.outbox.ack_timeout_s == 30 and cfg.outbox.max_inflight == 200
    assert cfg.link.session_expiry_s == 7 * 86400


def test_env_overrides_a_field(edge_bundle: Bundle, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("LIFECERT_EDGE__OUTBOX__ACK_TIMEOUT_S", "2.5")
    monkeypatch.setenv("LIFECERT_EDGE__MQTT__PORT", "18883")
    cfg = edge_bundle.config()
    assert (cfg.outbox.ack_timeout_s, cfg.mqtt.port) == (2.5, 18883)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"device_id": "Term 1"}, r"device_id: .*invalid device_id"),
        ({"outbox": {"ack_timeout_s": -1}}, r"outbox\.ack_timeout_s: .*greater than 0"),
        ({"outbox": {"ack_timeout_s": 60, "backoff_max_s": 10}}, r"outbox: .*backoff_max_s"),
        ({"outbox": {"ack_timout_s": 5}}, r"outbox\.ack_timout_s: unknown field"),
        ({"mqtt": {"port": 0}}, r"mqtt\.port: .*broker TLS port"),
    ],
)
def test_bad_field_is_named(
    edge_bundle: Bundle,  # noqa: F811
    overrides: dict[str, object],
    message: str,
) -> None:
    edge_bundle.write_config(**overrides)
    with pytest.raises(ConfigError, match=message):
        edge_bundle.config()
    code, out, err = invoke(edge_bundle, "--validate-config")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "Traceback" not in err


def test_validate_config_ok(edge_bundle: Bundle) -> None:  # noqa: F811
    code, out, _ = invoke(edge_bundle, "--validate-config")
    assert code == 0
    assert out.startswith("OK: ") and "term-0001" in out


def test_validate_config_checks_the_bundle_files(edge_bundle: Bundle) -> None:  # noqa: F811
    (edge_bundle.dir / "device.pem").unlink()
    code, _, err = invoke(edge_bundle, "--validate-config")
    assert code == 2 and "mqtt.tls.cert_file" in err


def test_missing_config_file_exits_2_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "--config", str(tmp_path / "nope.toml"), "outbox"],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert "nope.toml not found" in proc.stderr and "Traceback" not in proc.stderr


def test_config_path_from_environment(edge_bundle: Bundle) -> None:  # noqa: F811
    result = CliRunner().invoke(
        main, ["--validate-config"], env={"LIFECERT_EDGE_CONFIG": str(edge_bundle.config_path)}
    )
    assert result.exit_code == 0, result.output


def test_certify_assisted_writes_a_receipt(edge_bundle: Bundle) -> None:  # noqa: F811
    code, out, err = invoke(
        edge_bundle,
        "certify-assisted",
        "--retiree",
        RETIREE.lower(),
        "--staff",
        "desk-07",
        "--json",
    )
    assert code == 0, err
    receipt = json.loads(out)
    assert receipt["seq"] == 1
    code, out, _ = invoke(edge_bundle, "certify-assisted", "--retiree", RETIREE, "--staff", "d2")
    assert code == 0 and " seq 2: pending delivery" in out
    with open_outbox(edge_bundle.config()) as box:
        row = box.get(receipt["result_id"])
    assert row is not None and row.retiree_id == RETIREE and row.method == "assisted"


def test_certify_assisted_refuses_a_bad_id_number(edge_bundle: Bundle) -> None:  # noqa: F811
    code, out, err = invoke(
        edge_bundle, "certify-assisted", "--retiree", "110105194912310021", "--staff", "desk-07"
    )
    assert code == 2 and out == ""
    assert "--retiree" in err and "check digit" in err
    with open_outbox(edge_bundle.config()) as box:
        assert box.counts()["pending"] == 0


def test_certify_assisted_refuses_a_long_note(edge_bundle: Bundle) -> None:  # noqa: F811
    code, _, err = invoke(
        edge_bundle,
        "certify-assisted",
        "--retiree",
        RETIREE,
        "--staff",
        "desk-07",
        "--note",
        "x" * 501,
    )
    assert code == 1 and err.startswith("error: ") and "note" in err


def test_outbox_lists_rows_without_bodies(edge_bundle: Bundle) -> None:  # noqa: F811
    for _ in range(3):
        assert (
            invoke(edge_bundle, "certify-assisted", "--retiree", RETIREE, "--staff", "s1")[0] == 0
        )
    code, out, _ = invoke(edge_bundle, "outbox", "--json", "--limit", "2")
    assert code == 0
    data = json.loads(out)
    assert data["counts"] == {"pending": 3, "delivered": 0, "rejected": 0}
    assert [r["seq"] for r in data["rows"]] == [3, 2]
    assert "jws" not in data["rows"][0] and "eyJ" not in out
    code, out, _ = invoke(edge_bundle, "outbox", "--status", "delivered")
    assert code == 0 and out.splitlines() == ["pending: 3  delivered: 0  rejected: 0"]
    code, out, _ = invoke(edge_bundle, "outbox")
    assert len(out.splitlines()) == 4 and "assisted" in out


def test_every_command_documents_an_example() -> None:
    runner = CliRunner()
    for name in [None, *main.commands]:
        args = [name, "--help"] if name else ["--help"]
        result = runner.invoke(main, args)
        assert result.exit_code == 0
        assert "Example:" in result.output and "lifecert-edge" in result.output, name
