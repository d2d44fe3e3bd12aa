"""Several consumer processes on one database: every result applied exactly once.

Two processes ingest the same 120 signed results (as a broker would redeliver
them after a crash), in different orders and batch sizes, at the same time.
"""

import datetime as dt
import multiprocessing
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from central.certification.devices import DeviceTrust
from central.certification.ingest import Inbound, Ingestor
from central.certification.settings import Policy
from central.people import roster
from central.store import db, schema
from common import idnumber
from tests.fixtures.database import CentralPki, known_staff

pytestmark = pytest.mark.integration

RETIREES = [idnumber.make("110105", dt.date(1940 + i, 1, 1 + i), 10 + i) for i in range(10)]


def _consume(args: tuple[str, Path, list[tuple[str, bytes]], int, int]) -> dict[str, int]:
    """One consumer process: ingest ``messages`` in batches; count outcomes."""
    url, pki_root, messages, batch_size, seed = args
    engine = db.create_engine(url, busy_timeout_s=30)
    trust = DeviceTrust(pki_root / "ca.pem", pki_root / "crl.pem", pki_root / "devices")
    ingest = Ingestor(engine, trust, Policy())
    order = messages[:]
    random.Random(seed).shuffle(order)
    counts: dict[str, int] = {}
    for start in range(0, len(order), batch_size):
        batch = [
            Inbound(t, p, dt.datetime.now(dt.UTC)) for t, p in order[start : start + batch_size]
        ]
        while True:
            try:
                outcomes = ingest.apply_batch(batch)
                break
            except db.StoreBusyError:
                counts["retried"] = counts.get("retried", 0) + 1
        for outcome in outcomes:
            counts[outcome.status.value] = counts.get(outcome.status.value, 0) + 1
    engine.dispose()
    return counts


def test_two_processes_apply_each_result_once(central_engine: Any, central_pki: CentralPki) -> None:
    known_staff(central_engine, "staff-7")
    roster.upsert(
        central_engine,
        [
            {
                "id_number": r,
                "name": "R",
                "sex": idnumber.sex(r),
                "birth_date": idnumber.birth_date(r),
            }
            for r in RETIREES
        ],
        "test",
        dt.datetime.now(dt.UTC),
    )
    terms = [central_pki.terminal(f"term-000{i}") for i in range(3)]
    messages = [
        (t.topic(), t.sign(t.result(RETIREES[(i * 3 + k) % len(RETIREES)])))
        for i in range(40)
        for k, t in enumerate(terms)
    ]
    url = central_engine.url.render_as_string(hide_password=False)
    jobs = [(url, central_pki.root, messages, 25, 1), (url, central_pki.root, messages, 40, 2)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        a, b = pool.map(_consume, jobs)
    assert a.get("applied", 0) + b.get("applied", 0) == len(messages)
    assert a.get("duplicate", 0) + b.get("duplicate", 0) == len(messages)
    assert "rejected" not in a and "rejected" not in b
    with central_engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.results)) == len(messages)
        kinds = dict(
            conn.execute(
                sa.select(schema.events.c.kind, sa.func.count())
                .where(schema.events.c.kind.startswith("certification_"))
                .group_by(schema.events.c.kind)
            ).all()
        )
        # each retiree's first assisted pass certifies; every later one in a row is referred
        # to review ([policy] assisted_review_repeat), whichever process applied it
        assert kinds == {
            "certification_pass": len(RETIREES),
            "certification_referred": len(messages) - len(RETIREES),
        }
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.quarantine)) == 0
