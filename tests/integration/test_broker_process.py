"""``MosquittoProcess``: start, stop, kill, restart, reload and failures with the log's tail."""

from pathlib import Path

import pytest

from provisioning.broker import MosquittoProcess, for_fleet
from provisioning.errors import BrokerError, ProvisioningError
from provisioning.fleet import Fleet
from tests.fixtures.broker import FleetBroker, enrol_bundle, tls_refusal
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.integration


def test_lifecycle_keeps_the_pid_file_and_port(broker: FleetBroker) -> None:
    process = broker.process
    pid_file = broker.fleet.settings.broker.pid_file
    assert pid_file is not None
    first = process.pid
    assert first is not None and pid_file.read_text().strip() == str(first)
    bundle = enrol_bundle(broker.fleet)
    broker.kill()
    assert not process.running and not pid_file.exists()
    with pytest.raises(OSError):
        tls_refusal(broker.port, bundle)
    broker.start()
    assert process.pid not in (None, first)
    assert tls_refusal(broker.port, bundle) is None
    broker.reload()
    broker.restart()
    assert tls_refusal(broker.port, bundle) is None
    broker.stop()
    with pytest.raises(BrokerError, match="not running"):
        broker.reload()


def test_a_broken_config_fails_with_the_brokers_words(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("listener 1883 127.0.0.1\nno_such_option 1\n")
    with pytest.raises(BrokerError, match="no_such_option"):
        MosquittoProcess(conf, free_port(), log_path=tmp_path / "log").start()


def test_a_missing_server_key_is_reported(fleet: Fleet) -> None:
    (fleet.paths.broker / "server.key").unlink()
    with pytest.raises(BrokerError, match=r"server\.key"):
        for_fleet(fleet).start()


def test_paths_with_spaces_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ProvisioningError, match="spaces"):
        Fleet.create(tmp_path / "my fleet", "x")
    assert not (tmp_path / "my fleet").exists()
