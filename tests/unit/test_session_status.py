"""Status lookup and receipts in the session core (hand-written port fakes) and the kiosk's
``Menu`` and page texts."""

import datetime as dt
import threading
from dataclasses import replace

import pytest

from edge.kiosk.menu import Menu
from edge.session import prompts
from edge.session.core import Session
from edge.session.model import Outcome
from edge.session.ports import CentralUnavailableError, UnknownRetireeError
from protocol.lookups import StatusData
from tests.unit.test_session_core import RETIREE, Cards, build, card, live_script

DATA = StatusData(
    request_id="a" * 32,
    device_id="term-0001",
    retiree_id=RETIREE,
    certified_until=dt.date(2027, 1, 31),
    next_due=dt.date(2027, 1, 31),
    window_opens=dt.date(2026, 11, 1),
    last_certified_on=dt.date(2026, 1, 20),
    last_channel="desk",
    last_place="SY-TIEXI",
    payment_period="2026-11",
    payment_decision="pay",
    payment_reason=None,
)


class Lookups:
    """Central as the session sees it: a status (or an error) and receipts that come late."""

    def __init__(self, status: StatusData | Exception = DATA, late: int = 0) -> None:
        self.answer, self.late = status, late
        self.asked: list[str] = []
        self.receipts: list[str] = []

    def status(self, retiree_id: str) -> StatusData:
        self.asked.append(retiree_id)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def receipt(self, result_id: str) -> str | None:
        self.receipts.append(result_id)
        return "token-" + result_id if len(self.receipts) > self.late else None

    def last_receipt(self, retiree_id: str) -> str | None:
        return "token-last"


class Once:
    """The page's choice, taken once; taking it ends the kiosk's loop after this visit."""

    def __init__(self, stop: threading.Event, choice: str | None = "status") -> None:
        self.stop, self.choice = stop, choice

    def take(self) -> str | None:
        self.stop.set()
        return self.choice


def with_ports(session: Session, **ports: object) -> Session:
    session.ports = replace(session.ports, **ports)  # type: ignore[arg-type]
    return session


def test_the_status_choice_shows_centrals_answer_and_certifies_nothing() -> None:
    session, display, recorder, voice = build(live_script())
    stop, lookups = threading.Event(), Lookups()
    with_ports(session, lookups=lookups, choices=Once(stop))
    session.serve(stop)
    assert lookups.asked == [RETIREE] and recorder.drafts == []
    shown = display.screens[-1]
    assert (shown.step, shown.prompt, shown.token, shown.token_state) == (
        "status",
        "status_shown",
        "token-last",
        "ready",
    )
    assert shown.status is not None and shown.status["certified_until"] == "2027-01-31"
    assert "request_id" not in shown.status and "retiree_id" not in shown.status
    assert shown.retiree is not None and RETIREE not in shown.retiree  # masked
    said = voice.said[-1][1]
    assert "2027-01-31" in said and "照常发放" in said
    rows = {r["label"]["en"]: r["value"]["en"] for r in prompts.status_rows(shown.status)}
    assert rows["Last certification"] == "2026-01-20 · community desk · SY-TIEXI"
    assert rows["This month's pension"] == "2026-11: paid as usual"


@pytest.mark.parametrize(
    ("answer", "prompt"),
    [
        (UnknownRetireeError("not on the roster"), "status_unknown"),
        (CentralUnavailableError("no reply from central in 3s"), "status_offline"),
        (None, "status_offline"),  # a session without a link to central
    ],
)
def test_unknown_or_offline_gets_a_clear_message_and_no_data(
    answer: Exception | None, prompt: str
) -> None:
    session, display, recorder, voice = build(live_script())
    lookups = None if answer is None else Lookups(answer)
    with_ports(session, lookups=lookups)
    session.check_status(card())
    shown = display.screens[-1]
    assert (shown.step, shown.prompt, shown.status, shown.token) == ("status", prompt, None, None)
    assert voice.said[-1] == ("zh", prompts.TEXTS[prompt]["zh"]) and recorder.drafts == []


def test_a_card_left_after_the_status_is_asked_back_not_certified() -> None:
    session, display, recorder, _ = build(live_script(), cards=Cards(card(), card(), None))
    stop = threading.Event()
    with_ports(session, lookups=Lookups())
    session.check_status(card())
    session.wait_taken(stop, card())
    assert display.prompts()[-2:] == ["status_shown", "take_card"] and recorder.drafts == []


def test_without_a_choice_the_card_certifies_as_before() -> None:
    session, display, recorder, _ = build(live_script(), cards=Cards(card(), None))
    stop, lookups = threading.Event(), Lookups()
    with_ports(session, lookups=lookups, choices=Once(stop, None))
    session.serve(stop)
    assert lookups.asked == [] and len(recorder.drafts) == 1
    assert display.screens[-1].step == "done"


def test_after_a_pass_the_receipt_shows_once_central_has_it() -> None:
    session, display, _, _ = build(live_script(), cards=Cards(card()))
    lookups = Lookups(late=2)  # central has not applied the result for two asks
    with_ports(session, lookups=lookups)
    outcome = session.certify(card())
    assert outcome.decision == "pass" and outcome.result_id is not None
    session.wait_removed(threading.Event(), card(), outcome)
    states = [(s.token_state, s.token) for s in display.screens if s.step == "done"]
    assert states[-2:] == [("waiting", None), ("ready", "token-" + outcome.result_id)]
    assert lookups.receipts == [outcome.result_id] * 3  # after 0, 1 and 3 s


def test_a_slow_central_is_asked_a_handful_of_times_not_every_second() -> None:
    session, _, _, _ = build(live_script(), cards=Cards(card()))
    lookups = Lookups(late=99)
    with_ports(session, lookups=lookups)
    outcome = session.certify(card())
    session.wait_removed(threading.Event(), card(), outcome)  # 20 s on screen
    assert len(lookups.receipts) == 5  # after 0, 1, 3, 7 and 15 s


def test_a_card_taken_before_the_receipt_leaves_the_waiting_message() -> None:
    session, display, _, _ = build(live_script(), cards=Cards(card(), None))
    lookups = Lookups(late=99)
    with_ports(session, lookups=lookups)
    outcome = session.certify(card())
    session.wait_removed(threading.Event(), card(), outcome)
    assert display.screens[-1].token_state == "waiting" and display.screens[-1].token is None
    failed = Outcome("fail", "done_fail", RETIREE, "face", "R", "r-1")
    session.wait_removed(threading.Event(), card(), failed)  # no receipt asked for a fail
    assert lookups.receipts == [outcome.result_id]


def test_the_menu_keeps_one_choice_until_taken_or_lapsed() -> None:
    now, woken = [0.0], []
    menu = Menu(lambda: woken.append(1), ttl_s=60, clock=lambda: now[0])
    with pytest.raises(ValueError, match="choice must be one of"):
        menu.choose("certify-someone-else")
    menu.choose("status")
    assert menu.pending() == "status" and menu.take() == "status" and menu.take() is None
    menu.choose("status")
    now[0] = 61
    assert menu.pending() is None and menu.take() is None
    assert len(woken) == 3  # the page is woken on every change
