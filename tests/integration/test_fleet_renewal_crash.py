"""A renewal batch killed (SIGKILL) at any moment leaves the fleet consistent.

A child process applies forty terminals' confirmations in one batch (the service's code,
a 3,000-terminal registry) and prints who it would answer; it is killed after a delay that
grows run after run, so the kill lands before, inside and after the batch's writes. Then
:func:`repair` (what the service runs at start): every record's certificate file matches
it, every superseded serial is in the CRL, every terminal told "finished" is recorded so,
and the terminals' re-sent confirmations finish the rest (one already finished is told
so by an error, which the terminal takes as done).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from protocol import signing
from provisioning import pki, registry
from provisioning.fleet import Fleet
from provisioning.renewal import Renewals, repair
from tests.unit.test_provisioning_renewal import _ask, _current, _done, _read, _signer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
IDS = [f"term-kill{i:02d}" for i in range(40)]
CHILD = """
import json, sys
from pathlib import Path
from provisioning.fleet import Fleet
from provisioning.renewal import Renewals
renewals = Renewals(Fleet.open(Path(sys.argv[1])))
messages = [(t, p.encode()) for t, p in json.loads(Path(sys.argv[2]).read_text())]
print("ready", flush=True)
for (topic, _), outcome in zip(messages, renewals.handle_batch(messages)):
    print("answered", topic, flush=True)
"""


def _template(root: Path) -> tuple[Fleet, list[tuple[str, str]]]:
    """A fleet whose forty terminals hold a renewal issued; their confirmations."""
    fleet = Fleet.create(root, "t", broker_port=1)
    for device_id in IDS:
        fleet.enrol(device_id)
    with registry.locked(fleet.paths.registry) as reg:
        template = reg.devices[0]
        reg.devices += [
            template.model_copy(update={"id": f"term-pad{i:05d}", "serial": format(i + 1, "x")})
            for i in range(3000 - len(IDS))
        ]
    renewals, keys = Renewals(fleet), {d: ec.generate_private_key(ec.SECP256R1()) for d in IDS}
    issued = renewals.handle_batch([_ask(_current(fleet, d), d, keys[d]) for d in IDS])
    confirms = []
    for d, outcome in zip(IDS, issued, strict=True):
        cert = x509.load_pem_x509_certificate((_read(fleet, outcome).certificate or "").encode())
        topic, payload = _done(_signer(keys[d], cert), d)
        confirms.append((topic, payload.decode()))
    return fleet, confirms


def _check_consistent(fleet: Fleet) -> registry.Registry:
    reg = registry.read(fleet.paths.registry)
    revoked = {r.serial_number for r in pki.load_crl(fleet.paths.crl)}
    for record in reg.devices:
        if record.id not in IDS:
            continue
        on_disk = pki.load_cert(fleet.paths.devices / f"{record.id}.pem")
        assert signing.cert_fingerprint(on_disk) == record.fingerprint, record.id
        if record.renewal is not None:
            pending = pki.load_cert(
                fleet.paths.devices / f"{record.id}.{record.renewal.serial}.pem"
            )
            assert signing.cert_fingerprint(pending) == record.renewal.fingerprint
        assert {int(o.serial, 16) for o in record.superseded} <= revoked
    return reg


def test_a_batch_killed_at_any_moment_leaves_the_fleet_consistent(tmp_path: Path) -> None:
    template, confirms = _template(tmp_path / "template")
    messages = tmp_path / "messages.json"
    messages.write_text(json.dumps(confirms))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    outcomes = set()
    for run in range(16):
        root = tmp_path / f"run{run}"
        shutil.copytree(template.directory, root)
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), str(messages)],
            stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        time.sleep(run * 0.02)
        child.send_signal(signal.SIGKILL)
        told = [line.split()[1] for line in child.stdout.read().splitlines()]
        child.wait()

        fleet = Fleet.open(root)
        repair(fleet)
        reg = _check_consistent(fleet)
        finished = {r.id for r in reg.devices if r.id in IDS and r.renewal is None}
        assert {topic.split("/")[-2] for topic in told} <= finished
        outcomes.add("none" if not finished else "all" if len(finished) == len(IDS) else "some")

        redo = Renewals(fleet).handle_batch([(t, p.encode()) for t, p in confirms])
        assert all(o.reply is not None for o in redo)  # finished, or said it is done already
        after = _check_consistent(fleet)
        assert all(r.renewal is None for r in after.devices if r.id in IDS)
    assert {"none", "all"} <= outcomes  # killed before the batch's writes and after them
