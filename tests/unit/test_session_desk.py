"""Assisted desk mode: staff PINs (scrypt, lock-out) and the staff's commands run by the session."""

import threading
from pathlib import Path

import pytest

from edge.session.desk import MAX_FAILURES, Desk, Order, StaffBook, hash_pin
from protocol.errors import ConfigError
from protocol.messages import Channel, Decision, Method
from tests.unit.test_session_core import RETIREE, Veins, build, card, live_script


def book(tmp_path: Path) -> StaffBook:
    path = tmp_path / "staff"
    path.write_text(f"# desk staff\nli-wei:{hash_pin('4711')}\n")
    return StaffBook(path)


def test_pins_are_hashed_checked_and_locked_after_failures(tmp_path: Path) -> None:
    staff = book(tmp_path)
    assert "4711" not in (tmp_path / "staff").read_text()
    assert staff.verify("li-wei", "4711", now=0)
    assert not staff.verify("li-wei", "0000", now=1) and not staff.verify("nobody", "4711", now=1)
    for t in range(MAX_FAILURES):
        staff.verify("li-wei", "0000", now=2 + t)
    assert not staff.verify("li-wei", "4711", now=10)  # locked even with the right PIN
    assert staff.verify("li-wei", "4711", now=10_000)  # the lock expires


def test_a_malformed_staff_file_names_the_field_and_fix(tmp_path: Path) -> None:
    (tmp_path / "staff").write_text("li-wei:4711\n")
    with pytest.raises(ConfigError, match=r"kiosk.staff_file.*line 1"):
        StaffBook(tmp_path / "staff")


def test_desk_records_assisted_and_enrols_vein_only_after_a_check(tmp_path: Path) -> None:
    session, display, recorder, _ = build(live_script(), veins=Veins(b"VEIN"))
    desk = Desk(book(tmp_path))
    assert desk.login("li-wei", "0000") is None
    token = desk.login("li-wei", "4711")
    assert desk.allowed(token) and not desk.allowed("forged")
    for order in (Order("vein"), Order("assisted", note="seen at the desk"), Order("vein")):
        desk.order(order)
    desk.order(Order("end"))
    session.assist(card(), threading.Event(), desk)
    prompts = [s.prompt for s in display.screens]
    assert prompts.index("vein_needs_check") < prompts.index("done_pass")
    assert prompts[-1] == "vein_enrolled"
    (draft,) = recorder.drafts
    assert draft.method is Method.ASSISTED and draft.channel is Channel.DESK
    assert draft.decision is Decision.PASS
    assert draft.assisted is not None and draft.assisted.staff_id == "li-wei"
    assert session.ports.references.vein(RETIREE) == b"VEIN"


def test_desk_runs_the_face_session_on_the_desk_channel(tmp_path: Path) -> None:
    session, _, recorder, _ = build(live_script())
    desk = Desk(book(tmp_path))
    desk.login("li-wei", "4711")
    desk.order(Order("face"))
    desk.order(Order("end"))
    session.assist(card(), threading.Event(), desk)
    (draft,) = recorder.drafts
    assert draft.method is Method.FACE and draft.channel is Channel.DESK
