"""Bank payment files: records with header and trailer, signed, encrypted; returns reconciled.

The file (UTF-8 text, ``|``-separated, one record a line)::

    H|LIFECERT1|<payer>|<period>|<run id>|<created, ISO 8601 UTC>|<count>|<total cents>
    D|<seq>|<id number>|<bank account>|<account name>|<amount cents>
    T|<count>|<total cents>

is signed with central's key (JWS compact, ES256, ``kid`` = key fingerprint) and the
JWS is encrypted for the bank's public key (JWE compact: ECDH-ES+A256KW for a P-256
key, RSA-OAEP-256 for RSA; A256GCM content encryption), both with joserfc — the
same formats and library as the results and templates. A changed byte fails the
GCM tag, a file signed by anyone else fails the signature, and a trailer that
disagrees with the records fails the parse.

A line whose account name differs from the retiree's name is withheld (not in the
file) and listed. The bank's return file, signed by the bank, lists per record
``paid``/``failed``; ``reconcile`` compares it with what was payable.
"""

import datetime as dt
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy.engine import Engine

from central.payments import runs
from central.payments.period import Period
from central.store import schema
from common.errors import ConfigError, LifecertError
from protocol import signing

FORMAT: Final = "LIFECERT1"
RETURN_FORMAT: Final = "RETURN1"
CONTENT_TYPE: Final = "lifecert-bankfile+jws"
_SEP = "|"
_BAD_CELL = re.compile(r"[|\r\n]")

_runs = schema.payment_runs
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class BankFileError(LifecertError, ValueError):
    """A bank file or return file is tampered, not for us, or inconsistent."""


@dataclass(frozen=True)
class Record:
    """One payment record."""

    seq: int
    id_number: str
    bank_account: str
    account_name: str
    amount_cents: int


@dataclass(frozen=True)
class Made:
    """A sealed payment file and what it holds."""

    path: Path
    count: int
    total_cents: int
    sha256: str
    withheld: list[dict[str, str]]


@dataclass(frozen=True)
class Returned:
    """One record of the bank's return file."""

    line: int
    seq: int
    id_number: str
    bank_account: str
    amount_cents: int
    status: str
    note: str


@dataclass
class Reconciliation:
    """Payable against paid: totals and every difference."""

    payable_cents: int = 0
    paid_cents: int = 0
    differences: list[dict[str, Any]] = field(default_factory=list)


def load_public_key(path: Path, field: str) -> Any:
    """A PEM public key from ``path`` (``ConfigError`` naming the config ``field``)."""
    try:
        return serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{field}: cannot load a PEM public key from {path}: {exc}") from None


def same_name(name: str, account_name: str) -> bool:
    """Names equal after Unicode NFKC, case folding and whitespace collapsing."""

    def norm(text: str) -> str:
        return " ".join(unicodedata.normalize("NFKC", text).casefold().split())

    return norm(name) == norm(account_name)


def _cell(value: str) -> str:
    return _BAD_CELL.sub(" ", value)


def render(
    payer: str, period: Period, run_id: int, created: dt.datetime, records: list[Record]
) -> bytes:
    """The file's text as bytes."""
    total = sum(r.amount_cents for r in records)
    head = [FORMAT, payer, str(period), str(run_id), created.isoformat(), str(len(records))]
    out = [_SEP.join(["H", *head, str(total)])]
    out += [
        _SEP.join(
            [
                "D",
                str(r.seq),
                r.id_number,
                r.bank_account,
                _cell(r.account_name),
                str(r.amount_cents),
            ]
        )
        for r in records
    ]
    out.append(_SEP.join(["T", str(len(records)), str(total)]))
    return ("\n".join(out) + "\n").encode()


def parse(data: bytes) -> tuple[dict[str, str], list[Record]]:
    """Header fields and records of a payment file; ``BankFileError`` when inconsistent."""
    lines = data.decode().splitlines()
    if len(lines) < 2 or not lines[0].startswith("H|") or not lines[-1].startswith("T|"):
        raise BankFileError("not a payment file: header or trailer missing")
    head = lines[0].split(_SEP)
    if len(head) != 8 or head[1] != FORMAT:
        raise BankFileError(f"unknown header {lines[0][:60]!r}")
    records = []
    for n, text in enumerate(lines[1:-1], start=2):
        cells = text.split(_SEP)
        if len(cells) != 6 or cells[0] != "D":
            raise BankFileError(f"line {n}: not a D record")
        try:
            records.append(Record(int(cells[1]), cells[2], cells[3], cells[4], int(cells[5])))
        except ValueError:
            raise BankFileError(f"line {n}: seq and amount must be integers") from None
    trailer = lines[-1].split(_SEP)
    count, total = len(records), sum(r.amount_cents for r in records)
    if trailer[1:] != [str(count), str(total)] or head[6:] != [str(count), str(total)]:
        raise BankFileError(
            f"header/trailer say {head[6]}/{trailer[1:]} but the file has {count} records "
            f"totalling {total}"
        )
    keys = ("format", "payer", "period", "run_id", "created", "count", "total_cents")
    return dict(zip(keys, head[1:], strict=True)), records


def _jwk(key: PublicKey | PrivateKey) -> ECKey | RSAKey:
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return ECKey.import_key(key)
    return RSAKey.import_key(key)


def _key_alg(key: PublicKey | PrivateKey) -> str:
    return (
        "ECDH-ES+A256KW"
        if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey)
        else "RSA-OAEP-256"
    )


def seal(data: bytes, sign_key: ec.EllipticCurvePrivateKey, bank_key: PublicKey) -> str:
    """Sign ``data`` (JWS ES256) and encrypt the JWS for ``bank_key`` (JWE compact)."""
    signed = signing.Signer(sign_key, signing.key_fingerprint(sign_key.public_key())).sign(data)
    header = {"alg": _key_alg(bank_key), "enc": "A256GCM", "cty": CONTENT_TYPE}
    return jwe.encrypt_compact(
        header, signed.encode(), _jwk(bank_key), algorithms=[header["alg"], header["enc"]]
    )


def open_sealed(token: str, bank_key: PrivateKey, central_pub: ec.EllipticCurvePublicKey) -> bytes:
    """The bank's side: decrypt, verify central's signature, return the file's bytes."""
    try:
        signed = jwe.decrypt_compact(
            token.strip(), _jwk(bank_key), algorithms=[_key_alg(bank_key), "A256GCM"]
        ).plaintext
    except (JoseError, ValueError) as exc:
        raise BankFileError(
            f"cannot decrypt the payment file (tampered or not for this key): {exc}"
        ) from None
    try:
        return signing.Verifier(central_pub).verify(signed or b"")
    except LifecertError as exc:
        raise BankFileError(f"the payment file's signature does not verify: {exc}") from None


def make(
    engine: Engine,
    period: Period,
    payer: str,
    out_dir: Path,
    sign_key: ec.EllipticCurvePrivateKey,
    bank_key: PublicKey,
    now: dt.datetime | None = None,
) -> Made:
    """Write the sealed payment file of a computed run and freeze the run (status ``filed``;
    its summary keeps the sealed file's SHA-256, ``file.sealed_sha256``). The run's row is
    locked meanwhile, so two makers never both file it."""
    now = now or dt.datetime.now(dt.UTC)
    records: list[Record] = []
    withheld: list[dict[str, str]] = []
    with engine.begin() as conn:
        run = runs.get_run(conn, period, lock=True)
        if run.status != "computed":
            raise runs.RunError(f"the run for {period} is already {run.status}")
        every = runs.run_lines(run)  # name and account as the run read them
        rows = conn.execute(
            sa.select(
                every.c.retiree_id,
                every.c.payable_cents,
                every.c.name,
                every.c.bank_account,
                every.c.account_name,
            )
            .where(every.c.payable_cents > 0)
            .order_by(every.c.retiree_id),
            execution_options={"yield_per": 20_000},
        )
        for row in rows:
            holder = row.account_name or ""
            if not holder or not same_name(row.name, holder):
                withheld.append(
                    {
                        "id_number": row.retiree_id,
                        "problem": f"account name {holder!r} differs from the name {row.name!r}",
                    }
                )
                continue
            records.append(
                Record(
                    len(records) + 1, row.retiree_id, row.bank_account, holder, row.payable_cents
                )
            )
        data = render(payer, period, run.id, now, records)
        token = seal(data, sign_key, bank_key)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{payer}-{period}.jwe"
        tmp = path.with_suffix(".part")
        tmp.write_text(token)
        tmp.replace(path)
        digest = hashlib.sha256(data).hexdigest()
        total = sum(r.amount_cents for r in records)
        summary = dict(run.summary) | {
            "file": {
                "count": len(records),
                "total_cents": total,
                "withheld": withheld,
                "sealed_sha256": hashlib.sha256(token.encode()).hexdigest(),
            }
        }
        conn.execute(
            _runs.update()
            .where(_runs.c.id == run.id)
            .values(status="filed", file_sha256=digest, summary=summary)
        )
    return Made(path, len(records), total, digest, withheld)


def mark_sent(engine: Engine, period: Period) -> None:
    """Record that the file of ``period`` reached the bank."""
    with engine.begin() as conn:
        run = runs.get_run(conn, period)
        conn.execute(_runs.update().where(_runs.c.id == run.id).values(status="sent"))


def render_return(payer: str, period: Period, run_id: int, returned: list[Returned]) -> bytes:
    """A return file's text (what the bank sends back; used by tests and the demo bank)."""
    paid = sum(r.amount_cents for r in returned if r.status == "paid")
    lines = [
        _SEP.join(
            ["H", RETURN_FORMAT, payer, str(period), str(run_id), str(len(returned)), str(paid)]
        )
    ]
    lines += [
        _SEP.join(
            [
                "R",
                str(r.seq),
                r.id_number,
                r.bank_account,
                str(r.amount_cents),
                r.status,
                _cell(r.note),
            ]
        )
        for r in returned
    ]
    lines.append(_SEP.join(["T", str(len(returned)), str(paid)]))
    return ("\n".join(lines) + "\n").encode()


def verify_return(token: str, bank_pub: PublicKey) -> bytes:
    """The bytes of a return file signed by the bank (JWS ES256, or PS256/RS256 for RSA)."""
    algs = ["ES256"] if isinstance(bank_pub, ec.EllipticCurvePublicKey) else ["PS256", "RS256"]
    try:
        return jws.deserialize_compact(token.strip(), _jwk(bank_pub), algorithms=algs).payload
    except (JoseError, ValueError) as exc:
        raise BankFileError(f"the return file's signature does not verify: {exc}") from None


def parse_return(data: bytes) -> tuple[dict[str, str], list[Returned]]:
    """Header fields and records of a return file; ``BankFileError`` naming the line."""
    lines = data.decode().splitlines()
    if len(lines) < 2 or not lines[0].startswith("H|") or not lines[-1].startswith("T|"):
        raise BankFileError("not a return file: header or trailer missing")
    head = lines[0].split(_SEP)
    if len(head) != 7 or head[1] != RETURN_FORMAT:
        raise BankFileError(f"unknown return header {lines[0][:60]!r}")
    out = []
    for n, text in enumerate(lines[1:-1], start=2):
        cells = text.split(_SEP)
        if len(cells) != 7 or cells[0] != "R" or cells[5] not in ("paid", "failed"):
            raise BankFileError(f"line {n}: not an R record with status paid or failed")
        try:
            out.append(
                Returned(n, int(cells[1]), cells[2], cells[3], int(cells[4]), cells[5], cells[6])
            )
        except ValueError:
            raise BankFileError(f"line {n}: seq and amount must be integers") from None
    paid = sum(r.amount_cents for r in out if r.status == "paid")
    if lines[-1].split(_SEP)[1:] != [str(len(out)), str(paid)] or head[5:] != [
        str(len(out)),
        str(paid),
    ]:
        raise BankFileError(f"header/trailer disagree with the {len(out)} records ({paid} paid)")
    keys = ("format", "payer", "period", "run_id", "count", "paid_cents")
    return dict(zip(keys, head[1:], strict=True)), out


def reconcile(
    engine: Engine, period: Period, data: bytes, now: dt.datetime | None = None
) -> Reconciliation:
    """Store a verified return file and list every difference from what was payable."""
    now = now or dt.datetime.now(dt.UTC)
    head, returned = parse_return(data)
    rec = Reconciliation()
    with engine.begin() as conn:
        run = runs.get_run(conn, period)
        if head["period"] != str(period) or head["run_id"] != str(run.id):
            raise BankFileError(
                f"the return file is for {head['period']} run {head['run_id']}, "
                f"not {period} run {run.id}"
            )
        if run.status not in ("filed", "sent", "reconciled"):
            raise BankFileError(f"no payment file was made for {period}: nothing to reconcile")
        every = runs.run_lines(run)  # the accounts the run paid to
        payable = {
            row.retiree_id: row
            for row in conn.execute(
                sa.select(every.c.retiree_id, every.c.payable_cents, every.c.bank_account).where(
                    every.c.payable_cents > 0
                )
            )
        }
        withheld = {w["id_number"]: w["problem"] for w in run.summary["file"]["withheld"]}
        conn.execute(schema.bank_returns.delete().where(schema.bank_returns.c.run_id == run.id))
        if returned:
            conn.execute(
                schema.bank_returns.insert(),
                [
                    {
                        "run_id": run.id,
                        "line": r.line,
                        "retiree_id": r.id_number,
                        "bank_account": r.bank_account,
                        "amount_cents": r.amount_cents,
                        "status": r.status,
                        "note": r.note[:200] or None,
                        "imported_at": now,
                    }
                    for r in returned
                ],
            )
        conn.execute(_runs.update().where(_runs.c.id == run.id).values(status="reconciled"))
    rec.payable_cents = sum(int(p.payable_cents) for p in payable.values())
    paid_by: dict[str, list[Returned]] = {}
    for r in returned:
        if r.status == "paid":
            paid_by.setdefault(r.id_number, []).append(r)
            rec.paid_cents += r.amount_cents

    def diff(kind: str, number: str, detail: str, payable_c: int = 0, paid_c: int = 0) -> None:
        rec.differences.append(
            {
                "kind": kind,
                "id_number": number,
                "payable_cents": payable_c,
                "paid_cents": paid_c,
                "detail": detail,
            }
        )

    failed = {r.id_number: r for r in returned if r.status == "failed"}
    for number, line in sorted(payable.items()):
        due = int(line.payable_cents)
        paid = paid_by.get(number, [])
        got = sum(p.amount_cents for p in paid)
        if number in withheld:
            diff("withheld", number, withheld[number], due)
        elif len(paid) > 1:
            diff(
                "paid_twice",
                number,
                f"{len(paid)} paid records (lines {', '.join(str(p.line) for p in paid)})",
                due,
                got,
            )
        elif paid and got != due:
            diff("amount_differs", number, f"paid {got}, payable {due}", due, got)
        elif paid and paid[0].bank_account != line.bank_account:
            diff("account_differs", number, f"paid to {paid[0].bank_account}", due, got)
        elif not paid and number in failed:
            diff("failed", number, failed[number].note or "failed", due)
        elif not paid:
            diff("not_returned", number, "payable, sent, but not in the return file", due)
    for number in sorted(set(paid_by) - set(payable)):
        got = sum(p.amount_cents for p in paid_by[number])
        diff("unexpected", number, "paid, but not payable in this run", 0, got)
    return rec
