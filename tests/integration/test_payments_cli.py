"""The payments commands end to end through the CLI (SQLite), as signed-in staff: changes
go through proposals entered, rechecked and approved by different people."""

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from central.cli import main
from central.payments import bankfile
from central.payments.period import Period
from common import idnumber
from protocol import signing
from provisioning import pki
from tests.fixtures.proposals import staff_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    (tmp_path / "bank").mkdir()
    pki.write_private_key(tmp_path / "sign.key", pki.new_key())
    bank_key = ec.generate_private_key(ec.SECP256R1())
    pki.write_public_key(tmp_path / "bank" / "bank-encrypt.pub.pem", bank_key.public_key())
    config = tmp_path / "central.toml"
    config.write_text(
        '[database]\nurl = "sqlite:///central.sqlite"\n[policy]\nreminder_days = 30\n'
    )

    upgraded = CliRunner().invoke(main, ["--config", str(config), "db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    invoke = staff_cli(config, f"sqlite:///{tmp_path / 'central.sqlite'}", tmp_path / "staff")
    invoke.bank_key = bank_key  # type: ignore[attr-defined]
    return invoke


def test_population_run_registry_coverage_bank(cli: Any, tmp_path: Path) -> None:
    # runs may be for this month and the next, not before the roster's first import (today)
    this = Period.of(dt.datetime.now(dt.UTC).date())
    first_day, later = this.first_day.isoformat(), this.shift(1)
    roster_csv = tmp_path / "synthetic.csv"
    out = cli("population", "generate", "60", "--out", str(roster_csv), "--as-of", first_day)
    assert out.exit_code == 0, out.output
    anonymous = cli("roster", "import", str(roster_csv))
    assert anonymous.exit_code == 1 and "sign in with --staff-cert" in anonymous.output
    proposed = cli("roster", "import", str(roster_csv), who="clerk")
    assert proposed.output.startswith("proposal 1: roster synthetic.csv: 60 added, 0 changed")
    assert len(cli("retirees", "list").output.splitlines()) == 1  # a header, nobody yet
    assert "applied" in cli.through(proposed).output
    rows = list(csv.DictReader(roster_csv.open()))
    first = rows[0]["id_number"]

    too_early = cli("payments", "run", str(this.shift(-1)), who="clerk")
    assert too_early.exit_code == 1 and "the roster's first month" in too_early.output
    made = cli("payments", "run", str(this), who="clerk")
    assert made.exit_code == 0 and f"run 1 for {this} computed" in made.output
    held = [r for r in rows if r["certified_until"] < first_day]
    assert f"certification_overdue    {len(held)}" in made.output
    shown = cli("retirees", "show", held[0]["id_number"]).output
    assert f"payment          {this} hold (certification_overdue)" in shown

    death = tmp_path / "death.csv"
    death.write_text(
        f"id_number,birth_date,death_date\n{first},{rows[0]['birth_date']},{first_day}\n"
        f"110105195003071240,1950-03-07,{first_day}\n"
    )
    bad = cli("registry", "import", "death", str(death), who="clerk")
    assert bad.exit_code == 1 and "line 3, field id_number" in bad.output
    assert "Traceback" not in bad.output
    good = cli("registry", "import", "death", str(death), "--partial", who="clerk")
    assert "1 matched to retirees, 1 marked deceased" in good.output
    assert cli("payments", "run", str(later), who="clerk").exit_code == 0
    why = cli("payments", "explain", str(later), first).output
    assert f"died on {first_day}" in why and f"{this} was the last month payable" in why
    assert "pay -> stop:deceased" in cli("payments", "diff", str(later)).output
    hits = cli("registry", "hits", "--summary").output
    assert "died_stopped" in hits

    held_one = rows[1]["id_number"]
    cli.through(cli("holds", "place", held_one, "--note", "letter returned", who="clerk"))
    release = cli("holds", "release", held_one, "--note", "address confirmed", who="clerk")
    assert '"released": 1' in cli.through(release).output

    report = cli(
        "coverage",
        "--as-of",
        first_day,
        "--csv",
        str(tmp_path / "c.csv"),
        "--png",
        str(tmp_path / "c.png"),
    )
    assert report.exit_code == 0 and "TOTAL" in report.output
    table = list(csv.DictReader((tmp_path / "c.csv").open()))
    alive_overdue = [r for r in held if r["id_number"] != first]  # the dead need no certificate
    assert (table[-1]["retirees"], table[-1]["overdue"]) == ("59", str(len(alive_overdue)))
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"

    made = cli.through(cli("bank", "make", str(later), who="clerk"))
    assert made.exit_code == 0 and '"withheld"' in made.output
    token = (tmp_path / "bank" / "out" / f"LIFECERT-{later}.jwe").read_text()
    sign_pub = signing.load_private_key(tmp_path / "sign.key").public_key()
    head, records = bankfile.parse(bankfile.open_sealed(token, cli.bank_key, sign_pub))
    assert head["period"] == str(later) and len(records) == int(head["count"]) > 0
    again = cli("payments", "run", str(later), who="clerk")
    assert again.exit_code == 1 and "filed" in again.output
    kept = cli("payments", "discard", str(later), "--reason", "wrong month", who="clerk")
    assert kept.exit_code == 1 and "it stands" in kept.output


def test_bad_input_is_one_clear_line(cli: Any) -> None:
    bad = cli("payments", "run", "2026-13", who="clerk")
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output
    missing = cli("payments", "explain", "2026-04", idnumber.make("110105", dt.date(1950, 1, 1), 1))
    assert missing.exit_code == 1 and "no payment run for 2026-04" in missing.output
    assert "Traceback" not in missing.output
    nokey = cli("duplicates", "scan")
    assert nokey.exit_code == 2 and "duplicates init-key" in nokey.output
