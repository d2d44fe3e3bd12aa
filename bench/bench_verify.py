"""Central's CPU per result before any database work: signature, header and schema checks.

``Ingestor.verify`` over ``--results`` signed face results (the hot path's pure part), best of
``--repeat`` runs, beside joserfc's bare ES256 verify of the same tokens in the same run.

Usage: python bench/bench_verify.py [--results 3000] [--repeat 7]
"""

import argparse
import datetime as dt
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from joserfc import jws
from joserfc.jwk import ECKey

from central.certification.devices import DeviceTrust
from central.certification.ingest import Inbound, Ingestor
from central.certification.settings import Policy
from common import idnumber
from protocol import messages, signing
from provisioning import pki


def _result(seq: int, retiree: str, now: dt.datetime) -> messages.Result:
    return messages.Result.model_validate(
        {
            "result_id": uuid.uuid4(),
            "device_id": "term-0001",
            "seq": seq,
            "device_time": now,
            "retiree_id": retiree,
            "method": "face",
            "decision": "pass",
            "channel": "kiosk",
            "match": {
                "modality": "face",
                "reference": "template",
                "score": 0.5,
                "threshold": 1.07,
                "model": "lifecert-face 49f5bab409e8 face_recognition_sface_2021dec_int8.tflite",
                "attempts": 1,
            },
            "liveness": {"passed": True, "challenges": ["blink", "turn_left"], "pad_score": 0.9},
        }
    )


def _best(repeat: int, run: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    ca = pki.Authority.create("bench", days=30)
    (tmp / "devices").mkdir()
    pki.write_cert(tmp / "ca.pem", ca.cert)
    pki.write_crl(tmp / "crl.pem", ca.crl([], days=7, number=1))
    key = pki.new_key()
    cert = ca.issue("term-0001", key.public_key(), 30)
    pki.write_cert(tmp / "devices" / "term-0001.pem", cert)
    signer = signing.Signer(key, signing.cert_fingerprint(cert))
    retiree = idnumber.make("110105", dt.date(1950, 3, 7), 124)
    now = dt.datetime.now(dt.UTC)
    tokens = [
        signer.sign(messages.encode(_result(i + 1, retiree, now))).encode()
        for i in range(args.results)
    ]
    inbound = [Inbound("lifecert/v1/dev/term-0001/result", t, now) for t in tokens]
    trust = DeviceTrust(tmp / "ca.pem", tmp / "crl.pem", tmp / "devices")
    ingest = Ingestor(None, trust, Policy())  # type: ignore[arg-type]  # verify needs no engine
    jwk = ECKey.import_key(key.public_key())

    def ours() -> None:
        for msg in inbound:
            if not hasattr(ingest.verify(msg), "result"):
                raise SystemExit("a benchmark result was refused")

    def bare_verify() -> None:
        for token in tokens:
            jws.deserialize_compact(token, jwk, algorithms=["ES256"])

    n = args.results
    ours_us = _best(args.repeat, ours) / n * 1e6
    bare_us = _best(args.repeat, bare_verify) / n * 1e6
    print(
        f"verify + schema: {ours_us:.1f} us/result; bare ES256 verify {bare_us:.1f} us; "
        f"ratio {ours_us / bare_us:.2f}x ({n} results, best of {args.repeat})"
    )


if __name__ == "__main__":
    main()
