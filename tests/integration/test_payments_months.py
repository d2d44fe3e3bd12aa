"""Which months a payment run may be for, discarding a wrong run, and odd input to the
payments commands (issue 12): refused in one line, never stored, never a traceback."""

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from central import config
from central.bootstrap import Central
from central.certification.settings import Policy
from central.cli import main
from central.payments import bankfile, runs
from central.payments.period import Period
from central.payments.settings import PaymentSettings
from central.people import roster
from central.store import db, schema
from common import idnumber
from provisioning import pki

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 6, 10, 9, tzinfo=dt.UTC)
RETIREE = idnumber.make("110105", dt.date(1950, 3, 7), 124)


def _enrol(engine: Any, at: dt.datetime) -> None:
    row = {
        "id_number": RETIREE,
        "name": "Wang Fang",
        "sex": "F",
        "birth_date": dt.date(1950, 3, 7),
        "monthly_amount_cents": 320_050,
        "bank_account": "6222000000000001",
        "account_name": "Wang Fang",
        "certified_until": dt.date(2027, 3, 31),
    }
    roster.upsert(engine, [row], "test", at)


def _run(engine: Any, period: str, **window: int) -> runs.RunSummary:
    return runs.run(
        engine, Period.parse(period), Policy(), now=NOW, window=PaymentSettings(**window)
    )


def _runs(engine: Any) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.select(schema.payment_runs.c.period).order_by("period")))


def test_a_run_is_for_a_month_near_today_after_the_roster_began(central_engine: Any) -> None:
    with pytest.raises(runs.RunError, match="the roster is empty: import it first"):
        _run(central_engine, "2026-06")
    _enrol(central_engine, dt.datetime(2026, 2, 20, tzinfo=dt.UTC))
    refused = {
        "9999-12": "after 2026-07, the last month a run may be for now",
        "2026-08": "this month 2026-06 + [payments] months_ahead 1",
        "0000-01": "before 2025-06, the first month a run may be for now",
        "2026-01": "before 2026-02, the roster's first month (its first import)",
    }
    for period, why in refused.items():
        with pytest.raises(runs.RunError, match=re.escape(why)):
            _run(central_engine, period)
    assert _runs(central_engine) == []
    assert _run(central_engine, "2026-02").decisions == {"pay": 1}  # catching up from February
    for period in ("2026-03", "2026-04", "2026-05", "2026-06", "2026-07"):
        _run(central_engine, period)
    with pytest.raises(runs.RunError, match="after 2026-07"):
        _run(central_engine, "2026-08")
    _run(central_engine, "2026-08", months_ahead=2)  # as [payments] months_ahead = 2 allows
    assert _runs(central_engine)[-1] == "2026-08"


def test_the_roster_month_is_counted_in_the_policy_time_zone(central_engine: Any) -> None:
    _enrol(central_engine, dt.datetime(2026, 4, 30, 20, tzinfo=dt.UTC))  # May 1st in Shanghai
    policy = Policy(timezone="Asia/Shanghai")
    with pytest.raises(runs.RunError, match="before 2026-05, the roster's first month"):
        runs.run(central_engine, Period(2026, 4), policy, now=NOW)
    runs.run(central_engine, Period(2026, 4), Policy(), now=NOW)  # April 30th in UTC


def test_discard_the_latest_unfiled_run(central_engine: Any, tmp_path: Path) -> None:
    _enrol(central_engine, dt.datetime(2026, 2, 20, tzinfo=dt.UTC))
    for period in ("2026-05", "2026-06", "2026-07"):
        _run(central_engine, period)
    with pytest.raises(runs.RunError, match="say why"):
        runs.discard(central_engine, Period(2026, 7), " ", "staff-7")
    with pytest.raises(runs.RunError, match=r"not the latest run \(2026-07\): discard 2026-07"):
        runs.discard(central_engine, Period(2026, 6), "typo", "staff-7")
    with pytest.raises(runs.RunError, match="no payment run for 2026-08"):
        runs.discard(central_engine, Period(2026, 8), "typo", "staff-7")
    gone = runs.discard(central_engine, Period(2026, 7), "typed July for June", "staff-7", NOW)
    assert _runs(central_engine) == ["2026-05", "2026-06"]
    with central_engine.connect() as conn:
        event = conn.execute(
            sa.select(schema.events).where(schema.events.c.kind == "payment_run_discarded")
        ).one()
        lines = conn.scalar(
            sa.select(sa.func.count())
            .select_from(schema.payment_lines)
            .where(schema.payment_lines.c.run_id == gone)
        )
    assert lines == 0 and event.actor == "staff-7" and event.retiree_id is None
    assert event.detail["period"] == "2026-07" and event.detail["run_id"] == gone
    assert event.detail["reason"] == "typed July for June"
    assert event.detail["summary"]["decisions"] == {"pay": 1}
    assert not _run(central_engine, "2026-07").recomputed  # July again, a new run

    key = pki.new_key()
    bankfile.make(central_engine, Period(2026, 7), "LIFECERT", tmp_path, key, key.public_key())
    with pytest.raises(runs.RunError, match=r"is filed \(its bank file is made\): it stands"):
        runs.discard(central_engine, Period(2026, 7), "too late", "staff-7")
    assert _runs(central_engine)[-1] == "2026-07"


def test_a_run_stored_for_9999_12_before_the_limits_can_be_discarded(
    central_engine: Any,
) -> None:
    _enrol(central_engine, dt.datetime(2026, 2, 20, tzinfo=dt.UTC))
    with central_engine.begin() as conn:  # what `payments run 9999-12` stored (issue 12)
        conn.execute(
            schema.payment_runs.insert().values(
                period="9999-12",
                created_at=NOW,
                actor="cli",
                policy={},
                status="computed",
                summary={},
                roster_revision=0,
            )
        )
    with pytest.raises(runs.RunError, match=r"9999-12, which has no next month; if 9999-12"):
        _run(central_engine, "2026-06")
    runs.discard(central_engine, Period(9999, 12), "typed 9999-12", "staff-7", NOW)
    assert _run(central_engine, "2026-06").decisions == {"pay": 1}


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A central.toml whose SQLite database holds a roster and this month's run."""
    path = tmp_path_factory.mktemp("cli") / "central.toml"
    path.write_text('[database]\nurl = "sqlite:///c.sqlite"\n')
    engine = Central(config.load(path)).engine
    db.upgrade(engine)
    _enrol(engine, dt.datetime.now(dt.UTC) - dt.timedelta(days=40))
    runs.run(engine, Period.of(dt.datetime.now(dt.UTC).date()), Policy())
    engine.dispose()
    return path


months = st.one_of(
    st.text(max_size=12),
    st.builds(lambda y, m: f"{y:04d}-{m:02d}", st.integers(0, 9999), st.integers(0, 13)),
    st.sampled_from(["9999-12", "0000-01", "0001-01", "2026-02-29", " 2026-05 ", "-0001-01"]),
)


@settings(max_examples=80, deadline=None)
@given(month=months, command=st.sampled_from(["run", "show", "diff", "explain", "discard"]))
def test_no_month_gives_a_traceback(cli_config: Path, month: str, command: str) -> None:
    extra = {"explain": [RETIREE], "discard": ["--reason", "fuzz"]}.get(command, [])
    done = CliRunner().invoke(
        main,
        ["--config", str(cli_config), "payments", command, month, *extra],
        catch_exceptions=False,  # an exception fails the test
    )
    assert done.exit_code in (0, 1, 2), done.output
    assert "Traceback" not in done.output
    if done.exit_code:
        assert "rror" in done.output  # "error: ..." (ours) or "Error: ..." (click's usage)


def _invoke(config_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(
        main, ["--config", str(config_path), *args], env=env, catch_exceptions=False
    )


words = st.one_of(st.text(max_size=40), st.text(min_size=90, max_size=600), st.just(RETIREE))


@settings(max_examples=80, deadline=None)
@given(
    command=st.sampled_from(["place", "release", "explain", "discard"]),
    first=words,
    second=words,
)
def test_no_id_or_note_gives_a_traceback(
    cli_config: Path, command: str, first: str, second: str
) -> None:
    this = str(Period.of(dt.datetime.now(dt.UTC).date()))
    args = {
        "place": ["holds", "place", first, "--note", second],
        "release": ["holds", "release", first, "--note", second],
        "explain": ["payments", "explain", this, first],
        "discard": ["payments", "discard", "2000-01", "--reason", first],
    }[command]
    done = _invoke(cli_config, *args)
    assert done.exit_code in (0, 1, 2), done.output
    assert "Traceback" not in done.output


def test_text_postgresql_cannot_store_is_refused_first(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "central.toml"
    path.write_text("")
    env = {"LIFECERT_CENTRAL__DATABASE__URL": db_url}
    assert _invoke(path, "db", "upgrade", env=env).exit_code == 0
    for args in (
        ["holds", "place", RETIREE[:9] + "\x00" + RETIREE[10:], "--note", "x"],
        ["holds", "place", RETIREE, "--note", "staff\x00"],
        ["holds", "release", RETIREE, "--note", "line\nbreak"],
        ["payments", "explain", "2026-04", "\x00"],
        ["payments", "discard", "2026-04", "--reason", "x" * 501],
    ):
        done = _invoke(path, *args, env=env)
        assert done.exit_code == 2 and "Invalid value" in done.output, (args, done.output)
