"""``[kiosk]`` validation: loopback unless ``allow_remote``, never a wildcard; lock-out limits."""

import logging

import pytest
from click.testing import CliRunner

from edge.cli import main as edge_main
from edge.kiosk.app import KioskDisplay
from edge.kiosk.guard import authorities
from edge.kiosk.runner import web_server
from tests.unit.test_edge_keys import Bundle, edge_bundle  # noqa: F401


def validate(bundle: Bundle, **kiosk: object) -> tuple[int, str]:
    bundle.write_config(kiosk=kiosk)
    args = ["--config", str(bundle.config_path), "--validate-config"]
    result = CliRunner().invoke(edge_main, args)
    return result.exit_code, result.output


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_hosts_pass(edge_bundle: Bundle, host: str) -> None:  # noqa: F811
    assert validate(edge_bundle, host=host) == (
        0,
        f"OK: {edge_bundle.config_path} (device term-0001)\n",
    )


@pytest.mark.parametrize("host", ["192.168.1.20", "10.0.0.5", "kiosk.lan", "fe80::1"])
def test_a_network_host_is_an_error_naming_the_field_and_the_fix(
    edge_bundle: Bundle,  # noqa: F811
    host: str,
) -> None:
    code, output = validate(edge_bundle, host=host)
    assert code == 2 and "Traceback" not in output
    assert "kiosk.host" in output and "not a loopback address" in output
    assert 'host = "127.0.0.1"' in output and "allow_remote = true" in output
    assert validate(edge_bundle, host=host, allow_remote=True)[0] == 0


@pytest.mark.parametrize("host", ["0.0.0.0", "::", ""])
def test_a_wildcard_host_is_refused_even_with_allow_remote(
    edge_bundle: Bundle,  # noqa: F811
    host: str,
) -> None:
    code, output = validate(edge_bundle, host=host, allow_remote=True)
    assert code == 2 and "kiosk.host" in output and "listens on every network" in output


def test_an_environment_override_is_checked_too(
    edge_bundle: Bundle,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIFECERT_EDGE__KIOSK__HOST", "0.0.0.0")
    code, output = validate(edge_bundle)
    assert code == 2 and "kiosk.host" in output


def test_lockout_limits_are_checked(edge_bundle: Bundle) -> None:  # noqa: F811
    code, output = validate(edge_bundle, pin_lockout_s=600, pin_lockout_max_s=60)
    assert code == 2 and "pin_lockout_max_s must be at least pin_lockout_s" in output
    code, output = validate(edge_bundle, pin_max_failures=0)
    assert code == 2 and "kiosk.pin_max_failures" in output


def test_serving_beyond_loopback_warns(
    edge_bundle: Bundle,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    edge_bundle.write_config(kiosk={"host": "127.0.0.1"})
    with caplog.at_level(logging.WARNING, "edge.kiosk.runner"):
        web_server(edge_bundle.config(), KioskDisplay(), lambda lang: None, None)
    assert not caplog.records
    edge_bundle.write_config(kiosk={"host": "192.168.1.20", "allow_remote": True})
    with caplog.at_level(logging.WARNING, "edge.kiosk.runner"):
        server = web_server(edge_bundle.config(), KioskDisplay(), lambda lang: None, None)
    (record,) = caplog.records
    assert "beyond loopback" in record.getMessage() and "192.168.1.20:8080" in record.getMessage()
    assert server.config.host == "192.168.1.20"
    assert not server.config.proxy_headers and not server.config.server_header


def test_the_host_header_values_follow_host_and_port() -> None:
    assert authorities("127.0.0.1", 8080) == {"127.0.0.1:8080"}
    assert authorities("::1", 8080) == {"[::1]:8080"}
    assert authorities("LocalHost", 80) == {"localhost:80", "localhost"}
