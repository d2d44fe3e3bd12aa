"""The session core driven through hand-written fakes of every port."""

import datetime as dt
import random
import threading
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from edge.session.core import Session, mask
from edge.session.model import (
    Challenge,
    Comparison,
    Draft,
    Measures,
    Observation,
    Probe,
    Receipt,
    Screen,
)
from edge.session.ports import Ports, UnknownRetireeError
from edge.session.settings import SessionSettings
from hal.camera import Frame
from hal.card.identity import Identity
from hal.errors import CardReadError
from hal.vein import Prompt
from protocol import templates
from protocol.messages import Decision, Method

RETIREE = "11010519491231002X"
NEUTRAL = Measures(eye=0.3, mouth=0.05, yaw=0.0, pitch=5.0)
ME = np.full(128, 0.1, np.float32)
OTHER = np.full(128, -0.1, np.float32)
KEPT_SHIFT = np.float32(0.001)  # the fake's kept (reference) template differs from the probe's


def card(**kw: object) -> Identity:
    fields: dict[str, object] = dict(
        id_number=RETIREE,
        name="王秀英",
        sex="F",
        nation="01",
        birth_date=dt.date(1949, 12, 31),
        source="resident-id",
        valid_until=dt.date(2040, 1, 1),
        photo=np.zeros((126, 102, 3), np.uint8),
    )
    fields.update(kw)
    return Identity(**fields)  # type: ignore[arg-type]


def face(m: Measures = NEUTRAL, who: np.ndarray = ME, **kw: object) -> tuple[Observation, Probe]:
    obs = Observation(0.0, 1, m, face_width=120, brightness=120, sharpness=50, **kw)  # type: ignore[arg-type]
    return obs, Probe(who)


def action(challenge: Challenge) -> list[Measures]:
    """Measures of a person doing ``challenge`` and coming back to neutral."""
    n = NEUTRAL
    return {
        Challenge.TURN_LEFT: [Measures(n.eye, n.mouth, 25, n.pitch)],
        Challenge.TURN_RIGHT: [Measures(n.eye, n.mouth, -25, n.pitch)],
        Challenge.OPEN_MOUTH: [Measures(n.eye, 0.5, n.yaw, n.pitch)],
        Challenge.BLINK: [Measures(0.08, n.mouth, n.yaw, n.pitch)],
        Challenge.NOD: [Measures(n.eye, n.mouth, n.yaw, -12)],
    }[challenge] + [n]


class Camera:
    """Plays a script of (observation, probe) pairs at 10 frames/s, then holds the last one."""

    def __init__(self, script: list[tuple[Observation, Probe]]) -> None:
        self.script, self.index, self.t = script, -1, 0.0

    def read(self) -> Frame:
        self.index = min(self.index + 1, len(self.script) - 1)
        self.t += 0.1
        return Frame(np.array([self.index]), self.t)


class Faces:
    model = "fake-face 1"
    template_model = "fake-embedder@0"

    def __init__(self, camera: Camera, threshold: float = 0.6) -> None:
        self.camera, self.threshold = camera, threshold

    def observe(self, frame: Frame) -> Observation:
        obs = self.camera.script[int(frame.rgb[0])][0]
        return Observation(frame.timestamp, obs.faces, obs.measures, obs.face_width,
                           obs.brightness, obs.sharpness)  # fmt: skip

    def probe(self, frame: Frame) -> Probe | None:
        obs, probe = self.camera.script[int(frame.rgb[0])]
        return probe if obs.faces == 1 else None

    def keep(self, probe: Probe) -> np.ndarray:
        return probe.template + KEPT_SHIFT

    def photo_template(self, rgb: np.ndarray) -> np.ndarray | None:
        return ME

    def compare(self, probe: np.ndarray, reference: np.ndarray, mode: str) -> Comparison:
        d = float(np.linalg.norm(probe - reference))
        return Comparison(d, self.threshold, d <= self.threshold)


class References:
    def __init__(self, face: np.ndarray | None = None, vein: bytes | None = None) -> None:
        self.faces: dict[str, np.ndarray] = {RETIREE: face} if face is not None else {}
        self.veins: dict[str, bytes] = {RETIREE: vein} if vein is not None else {}
        self.unknown: set[str] = set()

    def face(self, retiree_id: str) -> np.ndarray | None:
        if retiree_id in self.unknown:
            raise UnknownRetireeError(retiree_id)
        return self.faces.get(retiree_id)

    def remember_face(self, retiree_id: str, template: np.ndarray) -> None:
        self.faces[retiree_id] = template

    def vein(self, retiree_id: str) -> bytes | None:
        return self.veins.get(retiree_id)

    def enrol_vein(self, retiree_id: str, template: bytes) -> None:
        self.veins[retiree_id] = template


class Recorder:
    def __init__(self, display: "Display") -> None:
        self.display = display
        self.drafts: list[Draft] = []
        self.screens_before: list[list[str]] = []

    def record(self, draft: Draft) -> Receipt:
        self.drafts.append(draft)
        self.screens_before.append([s.step for s in self.display.screens])
        return Receipt(f"00000000-0000-0000-0000-{len(self.drafts):012d}", len(self.drafts), 0.0)


class Display:
    def __init__(self) -> None:
        self.screens: list[Screen] = []
        self.previews = 0

    def show(self, screen: Screen) -> None:
        self.screens.append(screen)

    def preview(self, frame: Frame, observation: Observation) -> None:
        self.previews += 1

    def prompts(self) -> list[str]:
        return [s.prompt for s in self.screens]


class Voice:
    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []

    def say(self, text: str, lang: str = "zh") -> None:
        self.said.append((lang, text))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def today(self) -> dt.date:
        return dt.date(2026, 11, 23)

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class Cards:
    def __init__(self, *polls: Identity | Exception | None) -> None:
        self.polls = list(polls)

    def poll(self) -> Identity | None:
        item = self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]
        if isinstance(item, Exception):
            raise item
        return item


class Veins:
    model = "fake-vein 1"

    def __init__(self, probe: bytes) -> None:
        self.probe = probe

    def capture(self, timeout: float, on_prompt: Callable[[Prompt], None]) -> bytes:
        on_prompt(Prompt.PLACE_FINGER)
        return self.probe

    def compare(self, reference: bytes, probe: bytes) -> Comparison:
        score = 0.3 if reference == probe else 0.05
        return Comparison(score, 0.17, score >= 0.17)


SEED = 5


def challenges(seed: int = SEED) -> tuple[Challenge, ...]:
    from edge.session.liveness import pick

    return pick(random.Random(seed), list(Challenge))


def live_script(who: np.ndarray = ME) -> list[tuple[Observation, Probe]]:
    """A person who does what is asked: steady, both challenges, steady again."""
    script = [face(who=who)] * 2
    for c in challenges():
        script += [face(m, who) for m in action(c)]
    return script + [face(who=who)] * 3


def eager_script(who: np.ndarray) -> list[tuple[Observation, Probe]]:
    """Someone who does every action twice per attempt, whatever is asked."""
    actions = [face(m, who) for c in Challenge for m in action(c)]
    return ([face(who=who)] * 2 + actions * 2 + [face(who=who)] * 3) * 3


def build(
    script: list[tuple[Observation, Probe]],
    refs: References | None = None,
    veins: Veins | None = None,
    cards: Cards | None = None,
    threshold: float = 0.6,
) -> tuple[Session, Display, Recorder, Voice]:
    camera = Camera(script)
    display, voice = Display(), Voice()
    recorder = Recorder(display)
    ports = Ports(
        cards=cards or Cards(card()),
        camera=camera,
        faces=Faces(camera, threshold),
        references=refs or References(face=ME),
        recorder=recorder,
        voice=voice,
        display=display,
        clock=Clock(),
        veins=veins,
    )
    return (
        Session(ports, SessionSettings(), "term-0001", random.Random(SEED)),
        display,
        recorder,
        voice,
    )


def test_genuine_retiree_passes_and_done_shows_only_after_the_result_is_stored() -> None:
    references = References(face=ME)
    session, display, recorder, voice = build(live_script(), refs=references)
    outcome = session.certify(card())
    assert outcome.decision == "pass" and outcome.method == "face"
    assert outcome.receipt == "TERM-0001-000001"
    (draft,) = recorder.drafts
    assert draft.method is Method.FACE and draft.decision is Decision.PASS
    assert draft.template is not None
    sent = templates.decode(draft.template)
    # what is sent and cached is the kept (reference-form) template, not the probe's
    assert sent.model == "fake-embedder@0" and np.allclose(sent.vector, ME + KEPT_SHIFT, atol=0)
    assert np.allclose(references.faces[RETIREE], ME + KEPT_SHIFT, atol=0)
    assert draft.match is not None and draft.match.reference == "template"
    assert draft.liveness is not None and draft.liveness.passed
    assert draft.liveness.challenges == tuple(c.value for c in challenges())
    assert "done" not in recorder.screens_before[0]
    assert display.screens[-1].step == "done" and display.screens[-1].receipt == outcome.receipt
    assert display.screens[-1].retiree == mask(RETIREE) and RETIREE not in str(display.screens)
    asked = [s.challenge for s in display.screens if s.step == "challenge"]
    assert [c.value for c in challenges()] == list(dict.fromkeys(asked))
    assert ("zh", "认证成功！本年度养老金照常发放") in voice.said


def test_card_photo_is_the_reference_on_a_first_certification() -> None:
    session, _, recorder, _ = build(live_script(), refs=References())
    assert session.certify(card()).decision == "pass"
    assert recorder.drafts[0].match.reference == "card_photo"  # type: ignore[union-attr]


def test_still_photo_fails_liveness_three_times_and_is_referred_to_staff() -> None:
    session, display, recorder, _ = build([face()] * 5)
    outcome = session.certify(card())
    assert outcome.decision == "refer" and len(outcome.attempts) == 3
    assert not any(a.live for a in outcome.attempts)
    (draft,) = recorder.drafts
    assert draft.decision is Decision.REFER and draft.template is None
    assert draft.liveness is not None and not draft.liveness.passed
    assert display.prompts().count("try_again") == 2 and display.screens[-1].prompt == "staff"


def test_impostor_on_a_genuine_card_is_referred_not_passed() -> None:
    session, _, recorder, _ = build(eager_script(OTHER))
    outcome = session.certify(card())
    assert outcome.decision == "refer"
    assert all(a.live and not a.comparison.matched for a in outcome.attempts)  # type: ignore[union-attr]
    assert recorder.drafts[0].match.score > 0.6  # type: ignore[union-attr]


def test_after_three_failures_the_enrolled_vein_decides() -> None:
    enrolled = b"VT-enrolled"
    session, display, recorder, _ = build(
        [face()] * 5, refs=References(face=ME, vein=enrolled), veins=Veins(enrolled)
    )
    outcome = session.certify(card())
    assert outcome.decision == "pass" and outcome.method == "vein"
    assert recorder.drafts[0].match.modality == "vein"  # type: ignore[union-attr]
    assert "vein_place" in display.prompts()
    session, _, recorder, _ = build(
        [face()] * 5, refs=References(face=ME, vein=enrolled), veins=Veins(b"someone else")
    )
    assert session.certify(card()).decision == "fail"
    assert recorder.drafts[0].decision is Decision.FAIL


def test_passive_attack_score_fails_liveness_without_asking_challenges() -> None:
    script = [(o, Probe(p.template, pad_score=0.1)) for o, p in live_script()]
    session, display, _, _ = build(script)
    outcome = session.certify(card())
    assert outcome.decision == "refer"
    assert all(a.reason == "passive liveness check failed" for a in outcome.attempts)
    assert not any(s.step == "challenge" for s in display.screens)


@pytest.mark.parametrize(
    ("obs", "prompt"),
    [
        (Observation(0, 0), "look"),
        (Observation(0, 2, NEUTRAL, 120, 120, 50), "one_person"),
        (Observation(0, 1, NEUTRAL, 40, 120, 50), "closer"),
        (Observation(0, 1, NEUTRAL, 120, 20, 50), "light"),
        (Observation(0, 1, Measures(0.3, 0.05, 40, 0), 120, 120, 50), "look"),
    ],
)
def test_quality_gates_guide_the_person(obs: Observation, prompt: str) -> None:
    session, display, _, _voice = build([(obs, Probe(ME)), *live_script()])
    assert session.certify(card()).decision == "pass"
    assert prompt in display.prompts()[:4]


def test_expired_and_unknown_cards_get_clear_prompts_and_no_result() -> None:
    session, display, recorder, _ = build(live_script())
    outcome = session.certify(card(valid_until=dt.date(2020, 1, 1)))
    assert (outcome.decision, outcome.prompt) == ("none", "card_expired")
    assert display.screens[-1].prompt == "card_expired"
    refs = References(face=ME)
    refs.unknown.add(RETIREE)
    session, display, recorder, _ = build(live_script(), refs=refs)
    assert session.certify(card()).prompt == "card_unknown"
    assert recorder.drafts == []


def test_no_reference_and_no_vein_sends_to_staff_without_a_result() -> None:
    no_photo = card(photo=None, photo_reason="social-security card", source="social-security")
    session, display, recorder, _ = build(live_script(), refs=References())
    outcome = session.certify(no_photo)
    assert outcome.decision == "none" and display.screens[-1].prompt == "no_reference"
    assert recorder.drafts == []


def test_unreadable_card_prompts_then_reads_and_english_switch() -> None:
    cards = Cards(None, CardReadError("scratched"), card())
    session, display, _, voice = build(live_script(), cards=cards)
    session.set_language("en")
    got = session.wait_card(threading.Event())
    assert got is not None and got.id_number == RETIREE
    assert display.prompts()[-1] == "card_unreadable"
    assert voice.said[-1] == ("en", "The card could not be read. Please take it out and try again")


def test_new_template_becomes_the_reference() -> None:
    refs = References()
    session, _, _, _ = build(live_script(), refs=refs)
    session.certify(card())
    assert np.array_equal(refs.faces[RETIREE], ME + KEPT_SHIFT)


def test_the_release_probation_is_told_how_each_certification_ended() -> None:
    stop, ended = threading.Event(), list[bool]()

    def watch(error: bool) -> None:
        ended.append(error)
        stop.set()

    session, _, recorder, _ = build(live_script(), cards=Cards(card(), None))
    session.watch = watch
    session.serve(stop)
    assert ended == [False] and recorder.drafts[0].decision is Decision.PASS

    class Broken(Faces):
        def compare(self, probe: np.ndarray, reference: np.ndarray, mode: str) -> Comparison:
            raise RuntimeError("the new model cannot run")

    session, _, recorder, _ = build(live_script(), cards=Cards(card(), None))
    session.ports = replace(session.ports, faces=Broken(session.ports.camera))  # type: ignore[arg-type]
    session.watch = watch
    with pytest.raises(RuntimeError, match="cannot run"):
        session.serve(threading.Event())
    assert ended == [False, True] and recorder.drafts == []
