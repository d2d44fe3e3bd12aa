"""Bank files: sealed and signed, tamper detected, delivered to a real OpenSSH sshd over
SFTP with a pinned host key, the return file reconciled; SQLite and PostgreSQL."""

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jws
from joserfc.jwk import ECKey

from central.certification.settings import Policy
from central.payments import bankfile, runs, sftp
from central.payments.period import Period
from central.people import roster
from common import idnumber
from tests.fixtures.bank import Bank

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 5, 3, tzinfo=dt.UTC)
APRIL = Period.parse("2026-04")


def _people(engine: Any) -> list[str]:
    rows = []
    for serial, holder in ((11, None), (13, "X"), (15, None), (17, None)):
        number = idnumber.make("110105", dt.date(1950, 3, 7), serial)
        name = f"Retiree {serial}"
        rows.append(
            {
                "id_number": number,
                "name": name,
                "sex": idnumber.sex(number),
                "birth_date": dt.date(1950, 3, 7),
                "monthly_amount_cents": 100_000 + serial,
                "bank_account": f"62220000000000{serial}",
                "account_name": holder or f"  retiree {serial} ",  # case/space differences pass
                "status": "active",
                "certified_until": dt.date(2026, 12, 31),
            }
        )
    roster.upsert(engine, rows, "test", NOW - dt.timedelta(days=60))  # enrolled in March
    return [r["id_number"] for r in rows]


def test_file_sealed_delivered_and_reconciled(
    central_engine: Any, bank: Bank, tmp_path: Path
) -> None:
    ids = _people(central_engine)
    runs.run(central_engine, APRIL, Policy(), now=NOW)
    central_key = ec.generate_private_key(ec.SECP256R1())
    made = bankfile.make(
        central_engine,
        APRIL,
        "LIFECERT",
        tmp_path / "out",
        central_key,
        bank.encrypt_key.public_key(),
        NOW,
    )
    assert (made.count, made.total_cents) == (3, 300_000 + 11 + 15 + 17)
    assert [w["id_number"] for w in made.withheld] == [ids[1]]  # account name "X"
    with pytest.raises(runs.RunError, match="filed"):
        runs.run(central_engine, APRIL, Policy(), now=NOW)  # frozen once filed

    remote = sftp.upload(bank.settings, made.path)
    arrived = Path(remote)
    assert arrived.parent == bank.incoming and not list(bank.incoming.glob("*.part"))
    data = bankfile.open_sealed(arrived.read_text(), bank.encrypt_key, central_key.public_key())
    head, records = bankfile.parse(data)
    assert head["period"] == "2026-04" and [r.id_number for r in records] == [
        ids[0],
        ids[2],
        ids[3],
    ]
    bankfile.mark_sent(central_engine, APRIL)

    # the bank pays the first, fails the second, pays the third twice
    first, second, third = records
    returned = [
        bankfile.Returned(
            2, first.seq, first.id_number, first.bank_account, first.amount_cents, "paid", ""
        ),
        bankfile.Returned(
            3,
            second.seq,
            second.id_number,
            second.bank_account,
            second.amount_cents,
            "failed",
            "account closed",
        ),
        bankfile.Returned(
            4, third.seq, third.id_number, third.bank_account, third.amount_cents, "paid", ""
        ),
        bankfile.Returned(
            5, third.seq, third.id_number, third.bank_account, third.amount_cents, "paid", ""
        ),
    ]
    text = bankfile.render_return("LIFECERT", APRIL, int(head["run_id"]), returned)
    signed = jws.serialize_compact({"alg": "ES256"}, text, ECKey.import_key(bank.sign_key))
    (bank.incoming / "LIFECERT-2026-04.return").write_text(signed)
    local = sftp.download(bank.settings, "LIFECERT-2026-04.return", tmp_path / "return.jws")
    verified = bankfile.verify_return(local.read_text(), bank.sign_key.public_key())
    rec = bankfile.reconcile(central_engine, APRIL, verified, NOW)
    kinds = {(d["kind"], d["id_number"]) for d in rec.differences}
    assert kinds == {("withheld", ids[1]), ("failed", ids[2]), ("paid_twice", ids[3])}
    assert rec.paid_cents == first.amount_cents + 2 * third.amount_cents

    forged = jws.serialize_compact(
        {"alg": "ES256"}, text, ECKey.import_key(ec.generate_private_key(ec.SECP256R1()))
    )
    with pytest.raises(bankfile.BankFileError, match="signature"):
        bankfile.verify_return(forged, bank.sign_key.public_key())


def test_wrong_host_key_is_refused(bank: Bank, tmp_path: Path) -> None:
    wrong = bank.settings.model_copy(update={"host_key": bank.other_host_key})
    payload = tmp_path / "x.jwe"
    payload.write_text("x")
    with pytest.raises(sftp.DeliveryError, match="pinned: refusing"):
        sftp.upload(wrong, payload)
    assert list(bank.incoming.iterdir()) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_tampering_is_detected(central_engine: Any, tmp_path: Path) -> None:
    _people(central_engine)
    runs.run(central_engine, APRIL, Policy(), now=NOW)
    central_key = ec.generate_private_key(ec.SECP256R1())
    bank_key = rsa.generate_private_key(65537, 2048)  # an RSA bank key works as well
    made = bankfile.make(
        central_engine, APRIL, "LIFECERT", tmp_path, central_key, bank_key.public_key(), NOW
    )
    token = made.path.read_text()
    assert bankfile.parse(bankfile.open_sealed(token, bank_key, central_key.public_key()))[1]
    parts = token.split(".")
    body = bytearray(parts[3].encode())
    body[10] = ord("A") if body[10] != ord("A") else ord("B")
    with pytest.raises(bankfile.BankFileError, match="tampered"):
        bankfile.open_sealed(
            ".".join([*parts[:3], body.decode(), parts[4]]), bank_key, central_key.public_key()
        )
    impostor = ec.generate_private_key(ec.SECP256R1())
    data = bankfile.open_sealed(token, bank_key, central_key.public_key())
    reforged = bankfile.seal(
        data.replace(b"|100011\n", b"|900011\n"), impostor, bank_key.public_key()
    )
    with pytest.raises(bankfile.BankFileError, match="signature"):
        bankfile.open_sealed(reforged, bank_key, central_key.public_key())
    with pytest.raises(bankfile.BankFileError, match="header/trailer"):
        bankfile.parse(data.replace(b"|100011\n", b"|900011\n"))
