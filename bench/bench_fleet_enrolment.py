"""Fleet enrolment costs: a certificate renewal through the renewal service's code, and the
fleet audit over a broker log.

- renewal: ``Renewals.handle`` on a terminal's signed request (verify, CSR checks, issue,
  registry write) and on its confirmation (make current, revoke, CRL), with
  ``registry.json`` holding ``--devices`` terminals (synthetic records beside one real one);
- audit: ``brokerlog.events`` + ``broker_findings`` over ``--log-lines`` connection lines
  of ``--devices`` terminals reconnecting.

Usage: python bench/bench_fleet_enrolment.py [--devices 10000] [--renewals 20] [--log-lines 200000]
"""

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from central.fleet import audit, brokerlog
from edge.enrolment import make_csr
from protocol import enrolment, signing, topics
from provisioning import pki, registry
from provisioning.fleet import Fleet
from provisioning.renewal import Renewals


def _machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"


def _pad_registry(fleet: Fleet, n: int) -> None:
    with registry.locked(fleet.paths.registry) as reg:
        real = reg.devices[0]
        for i in range(n - 1):
            reg.devices.append(
                real.model_copy(update={"id": f"term-{i:06d}", "serial": format(i + 1, "x")})
            )


def bench_renewal(root: Path, devices: int, renewals: int) -> None:
    fleet = Fleet.create(root / "fleet", "bench", broker_port=1)
    device = "term-r00001"
    bundle = fleet.enrol(device).bundle
    _pad_registry(fleet, devices)
    size = fleet.paths.registry.stat().st_size
    service, topic = Renewals(fleet), topics.device_topic(device, "csr")
    key = signing.load_private_key(bundle / "device.key")
    cert = pki.load_cert(bundle / "device.pem")
    asks, confirms = [], []
    for i in range(renewals):
        new = ec.generate_private_key(ec.SECP256R1())
        body = enrolment.RenewalRequest(
            device_id=device,
            request_id=f"bench-{i:08d}",
            csr=make_csr(new, device),
            sent_at=dt.datetime.now(dt.UTC),
        )
        signed = signing.Signer(key, signing.cert_fingerprint(cert)).sign(
            body.model_dump_json().encode()
        )
        start = time.perf_counter()
        reply = service.handle(topic, signed.encode()).reply
        asks.append(time.perf_counter() - start)
        assert reply is not None
        renewal = registry.read(fleet.paths.registry).get(device)
        assert renewal is not None and renewal.renewal is not None
        new_cert = pki.load_cert(fleet.paths.devices / f"{device}.{renewal.renewal.serial}.pem")
        done = enrolment.RenewalDone(device_id=device, request_id=body.request_id)
        signed = signing.Signer(new, signing.cert_fingerprint(new_cert)).sign(
            done.model_dump_json().encode()
        )
        start = time.perf_counter()
        outcome = service.handle(topic, signed.encode())
        confirms.append(time.perf_counter() - start)
        assert outcome.reload
        key, cert = new, new_cert
    print(
        f"renewal, registry of {devices} terminals ({size / 1e6:.1f} MB), {renewals} renewals: "
        f"request median {statistics.median(asks) * 1e3:.1f} ms (max {max(asks) * 1e3:.1f}), "
        f"confirmation median {statistics.median(confirms) * 1e3:.1f} ms "
        f"(max {max(confirms) * 1e3:.1f})"
    )


def bench_audit(devices: int, lines: int) -> None:
    start_at = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    text = []
    for i in range(lines // 3):
        at = (start_at + dt.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S")
        device, port = f"term-{i % devices:06d}", 10000 + i % 50000
        host = f"10.{i % devices // 65536}.{i % devices // 256 % 256}.{i % 256}"
        text += [
            f"{at}: New connection from {host}:{port} on port 8883.",
            f"{at}: New client connected from {host}:{port} as {device} "
            f"(p5, c0, k30, u'{device}').",
            f"{at}: Client {device} disconnected.",
        ]
    fleet = audit.Fleet(sites={}, revoked={"term-000001": start_at})
    rules = audit.Rules(since=start_at)
    start = time.perf_counter()
    found = audit.broker_findings(brokerlog.events(text), fleet, rules)
    took = time.perf_counter() - start
    print(
        f"audit of a broker log: {len(text)} lines in {took:.2f} s "
        f"({len(text) / took:,.0f} lines/s), {len(found)} finding(s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10000)
    parser.add_argument("--renewals", type=int, default=20)
    parser.add_argument("--log-lines", type=int, default=200000)
    args = parser.parse_args()
    print(_machine())
    with tempfile.TemporaryDirectory() as tmp:
        bench_renewal(Path(tmp), args.devices, args.renewals)
    bench_audit(args.devices, args.log_lines)


if __name__ == "__main__":
    main()
