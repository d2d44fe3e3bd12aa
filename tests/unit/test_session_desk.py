"""Assisted desk mode: staff PINs (scrypt, lock-out) and the staff's commands run by the session."""

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from common.errors import ConfigError
from edge.cli import main as edge_main
from edge.kiosk.desk import Desk, StaffBook, hash_pin
from edge.kiosk.lockout import PinLockout
from edge.session.model import Order
from hal.vein import Prompt
from protocol.messages import Channel, Decision, Method
from tests.unit.test_edge_keys import Bundle, edge_bundle  # noqa: F401
from tests.unit.test_session_core import RETIREE, Veins, build, card, live_script


def book(tmp_path: Path) -> StaffBook:
    path = tmp_path / "staff"
    path.write_text(f"# desk staff\nli-wei:{hash_pin('4711')}\n")
    return StaffBook(path)


def desk_for(tmp_path: Path) -> Desk:
    return Desk(book(tmp_path), PinLockout(tmp_path / "edge.sqlite"))


def test_pins_are_hashed_and_checked(tmp_path: Path) -> None:
    staff = book(tmp_path)
    assert "4711" not in (tmp_path / "staff").read_text()
    assert staff.verify("li-wei", "4711") and staff.known("li-wei")
    assert not staff.verify("li-wei", "0000") and not staff.verify("li-wei", "")
    assert not staff.verify("nobody", "4711") and not staff.known("nobody")


@pytest.mark.parametrize(
    "line",
    [
        "li-wei:4711",
        f":{hash_pin('4711')}",
        "li-wei:" + hash_pin("4711").replace("scrypt$16384", "scrypt$16383"),
        "li-wei:" + hash_pin("4711").replace("scrypt$16384$8", "scrypt$1048576$64"),
        "li-wei:" + hash_pin("4711")[:-6] + "!!!!!!",
    ],
    ids=["plain-pin", "no-id", "bad-cost", "huge-cost", "bad-hash"],
)
def test_a_malformed_staff_file_names_the_field_and_fix(tmp_path: Path, line: str) -> None:
    (tmp_path / "staff").write_text(f"# staff\n{line}\n")
    with pytest.raises(ConfigError, match=r"kiosk.staff_file.*line 2.*staff add"):
        StaffBook(tmp_path / "staff")


def test_desk_login_goes_through_the_lockout(tmp_path: Path) -> None:
    desk = desk_for(tmp_path)
    assert desk.login("li-wei", "0000").token is None
    for _ in range(4):
        desk.login("li-wei", "0000")
    locked = desk.login("li-wei", "4711")  # the sixth try, with the right PIN
    assert locked.token is None and 299 <= locked.retry_after <= 300
    assert desk.staff is None
    events = [event for _, event, _, _ in desk.lockout.events()]
    assert events.count("staff_login_failed") == 5 and events[-1] == "staff_login_locked"


def test_desk_records_assisted_and_enrols_vein_only_after_a_check(tmp_path: Path) -> None:
    session, display, recorder, _ = build(live_script(), veins=Veins(b"VEIN"))
    desk = desk_for(tmp_path)
    assert desk.login("li-wei", "0000").token is None
    token = desk.login("li-wei", "4711").token
    assert desk.allowed(token) and not desk.allowed("forged") and not desk.allowed(None)
    for order in (Order("vein"), Order("assisted", note="seen at the desk"), Order("vein")):
        desk.order(order)
    desk.order(Order("end"))
    session.assist(card(), threading.Event(), desk)
    prompts = [s.prompt for s in display.screens]
    assert prompts.index("vein_needs_check") < prompts.index("done_pass")
    assert (
        prompts.index("vein_place") < prompts.index("vein_again") and prompts[-1] == "vein_enrolled"
    )
    draft, vein = recorder.drafts
    assert draft.method is Method.ASSISTED and draft.channel is Channel.DESK
    assert draft.decision is Decision.PASS and draft.vein_template is None
    assert draft.assisted is not None and draft.assisted.staff_id == "li-wei"
    assert vein.method is Method.VEIN and vein.channel is Channel.DESK
    assert vein.decision is Decision.PASS and vein.vein_template == b"VEIN"
    assert vein.match is not None and vein.match.reference == "enrolled_vein"
    assert session.ports.references.vein(RETIREE) == b"VEIN"


class TwoFingers(Veins):
    """Someone who puts a different finger the second time."""

    def __init__(self) -> None:
        super().__init__(b"")
        self.probes = [b"INDEX", b"MIDDLE"]

    def capture(self, timeout: float, on_prompt: Callable[[Prompt], None]) -> bytes:
        on_prompt(Prompt.PLACE_FINGER)
        return self.probes.pop(0)


def test_vein_enrolment_needs_two_matching_captures(tmp_path: Path) -> None:
    session, display, recorder, _ = build(live_script(), veins=TwoFingers())
    desk = desk_for(tmp_path)
    desk.login("li-wei", "4711")
    for order in (Order("assisted"), Order("vein"), Order("end")):
        desk.order(order)
    session.assist(card(), threading.Event(), desk)
    assert [d.method for d in recorder.drafts] == [Method.ASSISTED]
    assert display.screens[-1].prompt == "vein_unavailable"
    assert session.ports.references.vein(RETIREE) is None


def test_desk_runs_the_face_session_on_the_desk_channel(tmp_path: Path) -> None:
    session, _, recorder, _ = build(live_script())
    desk = desk_for(tmp_path)
    desk.login("li-wei", "4711")
    desk.order(Order("face"))
    desk.order(Order("end"))
    session.assist(card(), threading.Event(), desk)
    (draft,) = recorder.drafts
    assert draft.method is Method.FACE and draft.channel is Channel.DESK


def test_staff_add_command_asks_the_pin_twice_and_writes_a_hash(
    edge_bundle: Bundle,  # noqa: F811
) -> None:
    edge_bundle.write_config(kiosk={"staff_file": "staff"})
    cfg = ["--config", str(edge_bundle.config_path)]
    runner = CliRunner()
    result = runner.invoke(edge_main, [*cfg, "staff", "add", "desk-07"], input="4711\n4711\n")
    assert result.exit_code == 0, result.output
    path = edge_bundle.dir / "staff"
    assert "added desk-07" in result.output and "4711" not in path.read_text()
    assert path.stat().st_mode & 0o077 == 0
    result = runner.invoke(edge_main, [*cfg, "staff", "add", "li-wei"], input="2024\n2024\n")
    result = runner.invoke(edge_main, [*cfg, "staff", "add", "desk-07"], input="9999\n9999\n")
    assert "changed the PIN of desk-07" in result.output
    staff = StaffBook(path)
    assert set(staff.hashes) == {"desk-07", "li-wei"}
    assert staff.verify("desk-07", "9999") and not staff.verify("desk-07", "4711")
    assert staff.verify("li-wei", "2024")
    mismatch = runner.invoke(edge_main, [*cfg, "staff", "add", "x"], input="1234\n4321\n")
    assert mismatch.exit_code != 0 and "x:" not in path.read_text()
    short = runner.invoke(edge_main, [*cfg, "staff", "add", "x"], input="12\n12\n")
    assert short.exit_code == 2 and "4 to 64 digits" in short.output


def test_staff_add_without_a_staff_file_says_how_to_set_it(
    edge_bundle: Bundle,  # noqa: F811
) -> None:
    args = ["--config", str(edge_bundle.config_path), "staff", "add", "desk-07"]
    result = CliRunner().invoke(edge_main, args, input="4711\n4711\n")
    assert result.exit_code == 2 and "kiosk.staff_file is not set" in result.output
