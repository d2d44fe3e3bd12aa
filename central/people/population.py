"""A synthetic retiree population for benchmarks and demos (never real people).

Valid GB 11643 ID numbers (real region codes, birth dates 1936-1966, serials whose
parity gives the sex), retirement at 60 (men) or 55 (women), amounts 1,800-6,500
with cents, one bank account each, and certifications spread over the past year:
about ``overdue`` of them expired before ``as_of``. Deterministic for a seed.
"""

import datetime as dt
import decimal
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from central.certification.policy import add_months
from central.people import csvio
from central.store import schema
from common import idnumber

REGIONS = {
    "110105": "Chaoyang",
    "110108": "Haidian",
    "310104": "Xuhui",
    "310115": "Pudong",
    "440106": "Tianhe",
    "440305": "Nanshan",
    "510107": "Wuhou",
    "330106": "Xihu",
    "420106": "Wuchang",
    "610113": "Yanta",
}
SURNAMES = [
    "Wang",
    "Li",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Huang",
    "Zhao",
    "Wu",
    "Zhou",
    "Xu",
    "Sun",
    "Ma",
    "Zhu",
    "Hu",
    "Guo",
    "He",
    "Lin",
    "Gao",
    "Luo",
]
GIVEN = [
    "Fang",
    "Wei",
    "Min",
    "Jing",
    "Li",
    "Qiang",
    "Lei",
    "Jun",
    "Yang",
    "Yong",
    "Yan",
    "Jie",
    "Juan",
    "Tao",
    "Ming",
    "Chao",
    "Xiu",
    "Xia",
    "Ping",
    "Gang",
    "Hua",
    "Hui",
    "Jian",
    "Lan",
    "Mei",
    "Na",
    "Ning",
    "Qing",
    "Rong",
    "Shan",
    "Ting",
    "Xin",
    "Yu",
    "Zhen",
    "Zhi",
    "Bo",
    "Hong",
    "Kai",
    "Lin",
    "Ying",
]
COLUMNS = (
    "id_number",
    "name",
    "sex",
    "birth_date",
    "community",
    "monthly_amount",
    "bank_account",
    "account_name",
    "status",
    "retirement_date",
    "certified_until",
)


def generate(
    n: int, *, seed: int = 1, as_of: dt.date = dt.date(2026, 4, 1), overdue: float = 0.05
) -> Iterator[dict[str, Any]]:
    """``n`` distinct retirees as roster values (amounts in cents)."""
    rng = random.Random(seed)
    regions = list(REGIONS)
    seen: set[str] = set()
    names: set[tuple[str, str]] = set()
    start, span = dt.date(1936, 1, 1).toordinal(), 365 * 30
    made = 0
    while made < n:
        region = rng.choice(regions)
        born = dt.date.fromordinal(start + rng.randrange(span))
        number = idnumber.make(region, born, rng.randrange(1000))
        if number in seen:
            continue
        name = f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}{rng.choice(GIVEN).lower()}"
        if (name, number[:14]) in names:
            continue
        seen.add(number)
        names.add((name, number[:14]))
        sex = idnumber.sex(number)
        late = rng.random() < overdue
        days = rng.randrange(1, 180) if late else -rng.randrange(0, 365)
        made += 1
        yield {
            "id_number": number,
            "name": name,
            "sex": sex,
            "birth_date": born,
            "community": REGIONS[region],
            "monthly_amount_cents": rng.randrange(180_000, 650_000),
            "bank_account": f"6222{made:015d}",
            "account_name": name,
            "status": "suspended" if rng.random() < 0.005 else "active",
            "retirement_date": add_months(born, 12 * (60 if sex == "M" else 55)),
            "certified_until": as_of - dt.timedelta(days=days),
        }


def write_csv(rows: Iterable[dict[str, Any]], path: Path) -> int:
    """Write rows in the roster CSV format (``central.people.csvio``'s writer); returns how many."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csvio.writer(out)
        writer.writerow(COLUMNS)
        for row in rows:
            values = row | {
                "monthly_amount": decimal.Decimal(row["monthly_amount_cents"]).scaleb(-2)
            }
            writer.writerow([values[c] for c in COLUMNS])
            count += 1
    return count


def insert(
    engine: Engine,
    rows: Iterable[dict[str, Any]],
    chunk: int = 20_000,
    added: dt.datetime | None = None,
) -> int:
    """Bulk-insert rows straight into ``retirees`` (benchmarks; no events, no rules), as
    if imported at ``added`` (default: now; payment runs are for months from then on)."""
    now = added or dt.datetime.now(dt.UTC)
    count = 0
    batch: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for row in rows:
            batch.append(row | {"created_at": now, "updated_at": now})
            if len(batch) == chunk:
                conn.execute(sa.insert(schema.retirees), batch)
                count += len(batch)
                batch = []
        if batch:
            conn.execute(sa.insert(schema.retirees), batch)
            count += len(batch)
    return count
