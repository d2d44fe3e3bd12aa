"""Fleet enrolment costs: certificate renewals through the renewal service's code, and the
fleet audit over a broker log.

- renewal: ``--at-once`` terminals of a ``registry.json`` holding ``--devices`` terminals
  (real certificates and keys; the rest synthetic records) all ask for a renewal at once,
  then all confirm it, as the renewal service takes them from its queue: ``--batch``
  messages per ``Renewals.handle_batch`` (verify, CSR checks, issue, CRL, registry write,
  fsyncs), or one at a time through ``Renewals.handle`` with ``--batch 1`` (the code
  before batches had only that);
- CRL: after a mass renewal every one of ``--devices`` terminals has one superseded
  certificate; the CRL re-issued (``Fleet.write_crl``) while they are valid, then once
  they expired more than ``pki.crl_keep_expired_days`` ago (their recorded expiry moved
  back: the years are not waited for);
- audit: ``brokerlog.events`` + ``broker_findings`` over ``--log-lines`` connection lines
  of ``--devices`` terminals reconnecting.

Usage: python bench/bench_fleet_enrolment.py [--devices 10000] [--at-once 1000] [--batch 200]
[--log-lines 200000]
"""

import argparse
import datetime as dt
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from central.fleet import audit, brokerlog
from edge.enrolment import make_csr
from protocol import enrolment, signing, topics
from provisioning import pki, registry
from provisioning.fleet import Fleet
from provisioning.renewal import Outcome, Renewals


def _machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"


@dataclass
class Terminal:
    """One renewing terminal: its id, key and certificate."""

    id: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def sign(self, body: bytes) -> bytes:
        return signing.Signer(self.key, signing.cert_fingerprint(self.cert)).sign(body).encode()


def _fleet(root: Path, devices: int, at_once: int) -> tuple[Fleet, list[Terminal]]:
    """A fleet whose registry holds ``devices`` records, ``at_once`` of them real terminals."""
    fleet = Fleet.create(root / "fleet", "bench", broker_port=1)
    real = fleet.enrol("term-r00000").bundle
    ca, terminals = fleet.authority(), []
    with registry.locked(fleet.paths.registry) as reg:
        template = reg.devices[0]
        for i in range(devices - at_once):
            reg.devices.append(
                template.model_copy(update={"id": f"term-{i:06d}", "serial": format(i + 1, "x")})
            )
        for i in range(at_once):
            device_id = f"term-r{i:05d}"
            key = ec.generate_private_key(ec.SECP256R1())
            cert = (
                ca.issue(device_id, key.public_key(), 1095)
                if i
                else pki.load_cert(real / "device.pem")
            )
            key = key if i else signing.load_private_key(real / "device.key")
            pki.write_cert(fleet.paths.devices / f"{device_id}.pem", cert)
            update = {
                "id": device_id,
                "serial": format(cert.serial_number, "x"),
                "fingerprint": signing.cert_fingerprint(cert),
                "not_after": cert.not_valid_after_utc,
            }
            if i:
                reg.devices.append(template.model_copy(update=update))
            terminals.append(Terminal(device_id, key, cert))
    return fleet, terminals


def _run(
    handle: Callable[[Sequence[tuple[str, bytes]]], list[Outcome]],
    messages: list[tuple[str, bytes]],
    batch: int,
) -> tuple[list[Outcome], float]:
    start, outcomes = time.perf_counter(), []
    for i in range(0, len(messages), batch):
        outcomes += handle(messages[i : i + batch])
    return outcomes, time.perf_counter() - start


def bench_renewal(root: Path, devices: int, at_once: int, batch: int) -> None:
    fleet, terminals = _fleet(root, devices, at_once)
    size = fleet.paths.registry.stat().st_size
    service = Renewals(fleet)
    handle = (
        service.handle_batch
        if batch > 1
        else lambda msgs: [service.handle(topic, payload) for topic, payload in msgs]
    )
    ca = signing.Verifier(fleet.authority().key.public_key())
    asks, new_keys = [], []
    for t in terminals:
        new_keys.append(ec.generate_private_key(ec.SECP256R1()))
        body = enrolment.RenewalRequest(
            device_id=t.id,
            request_id=f"bench-{t.id}",
            csr=make_csr(new_keys[-1], t.id),
            sent_at=dt.datetime.now(dt.UTC),
        )
        asks.append((topics.device_topic(t.id, "csr"), t.sign(body.model_dump_json().encode())))
    outcomes, asked = _run(handle, asks, batch)
    confirms = []
    for t, new, outcome in zip(terminals, new_keys, outcomes, strict=True):
        assert outcome.reply is not None
        reply = enrolment.RenewalReply.model_validate_json(ca.verify(outcome.reply.encode()))
        assert reply.certificate is not None, reply.error
        renewed = Terminal(t.id, new, x509.load_pem_x509_certificate(reply.certificate.encode()))
        done = enrolment.RenewalDone(device_id=t.id, request_id=f"bench-{t.id}")
        confirms.append(
            (topics.device_topic(t.id, "csr"), renewed.sign(done.model_dump_json().encode()))
        )
    outcomes, confirmed = _run(handle, confirms, batch)
    assert all(o.reload for o in outcomes)
    revoked = {r.serial_number for r in pki.load_crl(fleet.paths.crl)}
    assert {t.cert.serial_number for t in terminals} <= revoked
    print(
        f"renewal, registry of {devices} terminals ({size / 1e6:.1f} MB), {at_once} at once, "
        f"{'batches of ' + str(batch) if batch > 1 else 'one at a time'}: "
        f"requests {asked:.1f} s ({at_once / asked:.1f}/s), "
        f"confirmations {confirmed:.1f} s ({at_once / confirmed:.1f}/s), "
        f"{at_once / (asked + confirmed):.1f} renewals/s (both steps)"
    )


def bench_crl(root: Path, devices: int) -> None:
    fleet, _ = _fleet(root, devices, 1)
    now = dt.datetime.now(dt.UTC)
    for label, not_after in (
        ("valid", now + dt.timedelta(days=1000)),
        ("expired", now - fleet.settings.pki.crl_keep_expired - dt.timedelta(days=1)),
    ):
        with registry.locked(fleet.paths.registry) as reg:
            for i, record in enumerate(reg.devices):
                old = registry.OldCert(
                    serial=format(devices + i + 1, "x"),
                    fingerprint=record.fingerprint,
                    revoked_at=now,
                    not_after=not_after,
                )
                record.superseded = [old]
            start = time.perf_counter()
            crl = fleet.write_crl(reg)
            took = time.perf_counter() - start
        print(
            f"CRL after renewing {devices} terminals, old certificates {label}: "
            f"{len(crl)} entries, {fleet.paths.crl.stat().st_size:,} bytes, "
            f"built, signed and written in {took * 1e3:.0f} ms"
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
    parser.add_argument("--at-once", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--log-lines", type=int, default=200000)
    args = parser.parse_args()
    print(_machine())
    with tempfile.TemporaryDirectory() as tmp:
        bench_renewal(Path(tmp), args.devices, args.at_once, args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        bench_crl(Path(tmp), args.devices)
    bench_audit(args.devices, args.log_lines)


if __name__ == "__main__":
    main()
