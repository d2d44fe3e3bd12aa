"""One certification, step by step, against the ports (no I/O of its own).

Or, when the person chose "check my status" before the card: central's answer for the card's
holder, nothing certified. After a pass: the receipt's signed token once central has it.

card → identity checks → reference → up to ``attempts`` face attempts (capture
with quality gates, two random challenges, match) → vein fallback or staff →
signed result stored durably → only then the "done" screen with a receipt.
"""

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from edge.session import liveness, prompts
from edge.session.model import (
    Attempt,
    Challenge,
    Comparison,
    Draft,
    Measures,
    Observation,
    Outcome,
    Probe,
    Reference,
    Screen,
    assisted,
)
from edge.session.ports import CentralUnavailableError, Desk, Ports, UnknownRetireeError
from edge.session.settings import SessionSettings
from hal.camera import Frame
from hal.card.identity import Identity
from hal.errors import CardReadError, NoFingerError
from hal.vein import Prompt
from protocol import templates
from protocol.messages import Channel, Decision, LivenessEvidence, MatchEvidence, Method

log = logging.getLogger(__name__)

# seconds before asking central again for a pass's receipt: doubling, so that a slow central
# costs the terminal's request budget (shared with template requests) a handful of asks
_RECEIPT_POLL_S, _RECEIPT_POLL_MAX_S = 1.0, 8.0
_STATUS_FIELDS = (
    "certified_until",
    "next_due",
    "last_certified_on",
    "last_channel",
    "last_place",
    "payment_period",
    "payment_decision",
)

_VEIN_PROMPTS = {
    Prompt.PLACE_FINGER: "vein_place",
    Prompt.RELEASE_FINGER: "vein_release",
    Prompt.NO_VEIN: "vein_no_vein",
}


def mask(id_number: str) -> str:
    """An ID number as shown on screen: region and last four only."""
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]


def receipt_number(device_id: str, seq: int) -> str:
    """The short number the retiree can quote: device and sequence."""
    return f"{device_id.upper()}-{seq:06d}"


def sealed_form(template: np.ndarray, model: str) -> bytes:
    """A face template as it travels sealed to central (``protocol.templates``)."""
    return templates.encode(np.asarray(template, np.float32).tolist(), model)


class Session:
    """Runs certifications one after the other; ``language`` follows the kiosk's switch."""

    def __init__(
        self,
        ports: Ports,
        settings: SessionSettings,
        device_id: str,
        rng: random.Random | None = None,
    ) -> None:
        self.ports = ports
        self.settings = settings
        self.device_id = device_id
        self.rng = rng or random.SystemRandom()
        self.language = "zh"
        self.limits = liveness.Limits(
            settings.turn_deg, settings.nod_deg, settings.blink_ratio, settings.mouth_open
        )
        self._screen = Screen(step="idle", prompt="idle")
        self._spoken: str | None = None
        self.desk: Desk | None = None
        self.watch: Callable[[bool], None] | None = None
        """Told after each certification whether it ended in an error (release probation)."""

    # -- screen and voice -----------------------------------------------------------------

    @property
    def screen(self) -> Screen:
        """What is on screen now."""
        return self._screen

    def show(self, step: str, prompt: str, speak: bool = True, **details: object) -> None:
        """Put a step on screen and say its prompt once (not again while it stays the same)."""
        self._screen = Screen(step=step, prompt=prompt, language=self.language, **details)  # type: ignore[arg-type]
        self.ports.display.show(self._screen)
        if speak and prompt != self._spoken:
            self._spoken = prompt
            self.ports.voice.say(prompts.text(prompt, self.language), self.language)

    def set_language(self, language: str) -> None:
        """Switch the language of text and voice (``zh`` or ``en``)."""
        if language not in prompts.LANGUAGES:
            raise ValueError(f"unknown language {language!r}: one of {prompts.LANGUAGES}")
        self.language = language
        self._spoken = None
        self._screen = replace(self._screen, language=language)
        self.ports.display.show(self._screen)

    # -- the loop -------------------------------------------------------------------------

    def wait_card(self, stop: threading.Event) -> Identity | None:
        """Show the idle screen until a readable card is on the reader (``None`` on stop)."""
        self._spoken = None
        self.show("idle", "idle", speak=False)
        while not stop.is_set():
            try:
                card = self.ports.cards.poll()
            except CardReadError as exc:
                log.info("card unreadable: %s", exc)
                self.show("card", "card_unreadable")
                self.ports.clock.sleep(self.settings.card_poll_s * 5)
                continue
            if card is not None:
                return card
            self.ports.clock.sleep(self.settings.card_poll_s)
        return None

    def wait_removed(
        self, stop: threading.Event, card: Identity, outcome: Outcome | None = None
    ) -> None:
        """Keep the result on screen until the card is taken or ``result_screen_s`` passes;
        after a pass, ask central for its receipt meanwhile and show it when there."""
        clock, lookups = self.ports.clock, self.ports.lookups
        until = clock.now() + self.settings.result_screen_s
        wanted = None
        if lookups is not None and outcome is not None and outcome.decision == "pass":
            wanted = outcome.result_id
            self._screen = replace(self._screen, token_state="waiting")
            self.ports.display.show(self._screen)
        ask_at, pause = clock.now(), _RECEIPT_POLL_S
        while not stop.is_set() and clock.now() < until:
            if wanted is not None and lookups is not None and clock.now() >= ask_at:
                token = lookups.receipt(wanted)
                if token is not None:
                    self._screen = replace(self._screen, token=token, token_state="ready")
                    self.ports.display.show(self._screen)
                    wanted = None
                ask_at, pause = clock.now() + pause, min(pause * 2, _RECEIPT_POLL_MAX_S)
            try:
                now = self.ports.cards.poll()
            except CardReadError:
                now = card
            if now is None or now.id_number != card.id_number:
                return
            self.ports.clock.sleep(self.settings.card_poll_s)

    def wait_taken(self, stop: threading.Event, card: Identity) -> None:
        """Ask for the card back until it is off the reader."""
        while not stop.is_set():
            try:
                now = self.ports.cards.poll()
            except CardReadError:
                now = card
            if now is None or now.id_number != card.id_number:
                return
            if self._screen.prompt != "take_card":
                self.show("card", "take_card", retiree=mask(card.id_number))
            self.ports.clock.sleep(self.settings.card_poll_s)

    def serve(self, stop: threading.Event) -> None:
        """Certify whoever comes, until ``stop`` is set."""
        while not stop.is_set():
            card = self.wait_card(stop)
            if card is None:
                return
            if self.desk is not None and self.desk.staff is not None:
                self.assist(card, stop, self.desk)
                continue
            if self.ports.choices is not None and self.ports.choices.take() == "status":
                self.check_status(card)
                self.wait_removed(stop, card)
                self.wait_taken(stop, card)  # a card left on the reader does not certify
                continue
            try:
                outcome = self.certify(card)
            except Exception:
                self._ended(error=True)
                raise
            if outcome.decision != "none":  # a decision the models took part in
                self._ended(error=False)
            self.wait_removed(stop, card, outcome)

    def _ended(self, error: bool) -> None:
        if self.watch is not None:
            self.watch(error)

    # -- status lookup --------------------------------------------------------------------

    def check_status(self, card: Identity) -> None:
        """Show central's answer about the card's holder (and their last receipt from this
        terminal, if central has it); certify nothing."""
        self._spoken = None
        retiree = mask(card.id_number)
        lookups = self.ports.lookups
        if lookups is None:
            self.show("status", "status_offline", retiree=retiree)
            return
        self.show("status", "status_asking", retiree=retiree)
        try:
            data = lookups.status(card.id_number)
        except UnknownRetireeError:
            self.show("status", "status_unknown", retiree=retiree)
            return
        except CentralUnavailableError as exc:
            log.info("status of %s not available: %s", retiree, exc)
            self.show("status", "status_offline", retiree=retiree)
            return
        found = data.model_dump(include=set(_STATUS_FIELDS))
        status = {k: None if found[k] is None else str(found[k]) for k in _STATUS_FIELDS}
        token = lookups.last_receipt(card.id_number)
        self.show(
            "status",
            "status_shown",
            speak=False,
            retiree=retiree,
            status=status,
            token=token,
            token_state="ready" if token else None,
        )
        self._spoken = "status_shown"
        self.ports.voice.say(prompts.status_speech(status, self.language), self.language)

    # -- assisted desk mode ---------------------------------------------------------------

    def assist(self, card: Identity, stop: threading.Event, desk: Desk) -> None:
        """Run the logged-in staff member's commands for the card's holder until it is taken."""
        staff = desk.staff
        assert staff is not None
        checked = False  # a face pass or an in-person check in this visit allows vein enrolment
        self.show("desk", "desk_ready", speak=False, retiree=mask(card.id_number))
        while not stop.is_set() and desk.staff == staff:
            order = desk.next(self.settings.card_poll_s)
            if order is None:
                try:
                    now = self.ports.cards.poll()
                except CardReadError:
                    now = card
                if now is None or now.id_number != card.id_number:
                    return
            elif order.command == "end":
                return
            elif order.command == "face":
                outcome = self.certify(card, Channel.DESK, staff)
                checked = checked or (outcome.decision == "pass" and outcome.method == "face")
            elif order.command == "assisted":
                draft = assisted(card.id_number, staff, order.document, order.note)
                self._store(draft, [])
                checked = True
            elif order.command == "vein":
                self._enrol_vein(card, checked)

    def _enrol_vein(self, card: Identity, checked: bool) -> None:
        """Capture twice; when the captures match, record a signed vein result of this visit.

        The result carries the first capture as the enrolled template, sealed to central; the
        terminal's encrypted cache keeps it only once that result is durable.
        """
        retiree = mask(card.id_number)
        veins = self.ports.veins
        if not checked:
            self.show("desk", "vein_needs_check", retiree=retiree)
            return
        if veins is None:
            self.show("desk", "vein_unavailable", retiree=retiree)
            return
        captured: list[bytes] = []
        for prompt in ("vein_place", "vein_again"):
            self.show("vein", prompt, retiree=retiree)
            try:
                captured.append(
                    veins.capture(
                        self.settings.vein_timeout_s,
                        lambda p: self.show("vein", _VEIN_PROMPTS[p]),
                    )
                )
            except NoFingerError:
                self.show("desk", "vein_unavailable", retiree=retiree)
                return
        template, probe = captured
        comparison = veins.compare(template, probe)
        if not comparison.matched:
            log.info("vein enrolment for %s: the two captures differ", retiree)
            self.show("desk", "vein_unavailable", retiree=retiree)
            return
        draft = Draft(
            retiree_id=card.id_number,
            method=Method.VEIN,
            decision=Decision.PASS,
            channel=Channel.DESK,
            match=MatchEvidence(
                modality="vein",
                reference="enrolled_vein",
                score=round(comparison.score, 6),
                threshold=comparison.threshold,
                model=veins.model[:128],
                attempts=1,
            ),
            vein_template=template,
        )
        self._store(draft, [])
        self.ports.references.enrol_vein(card.id_number, template)
        log.info("vein template enrolled for %s (sealed to central, encrypted here)", retiree)
        self.show("desk", "vein_enrolled", retiree=retiree)

    # -- one certification ----------------------------------------------------------------

    def certify(
        self, card: Identity, channel: Channel = Channel.KIOSK, staff_id: str | None = None
    ) -> Outcome:
        """Certify the holder of ``card``; the outcome is durable before "done" is shown."""
        self._spoken = None
        retiree = card.id_number
        self.show("card", "reading", retiree=mask(retiree))
        expiry = card.valid_until
        if expiry is not None and expiry < self.ports.clock.today():
            self.show("card", "card_expired", retiree=mask(retiree))
            return Outcome("none", "card_expired", retiree)
        try:
            reference = self._reference(card)
        except UnknownRetireeError:
            self.show("card", "card_unknown", retiree=mask(retiree))
            return Outcome("none", "card_unknown", retiree)
        attempts: list[Attempt] = []
        if reference is not None:
            for n in range(1, self.settings.attempts + 1):
                attempt, probe = self._attempt(n, reference)
                attempts.append(attempt)
                if probe is not None:
                    return self._finish_face(card, channel, reference, attempts, probe)
                if n < self.settings.attempts:
                    self.show("capture", "try_again", attempt=n + 1)
        return self._fallback(card, channel, reference, attempts)

    def _reference(self, card: Identity) -> Reference | None:
        cached = self.ports.references.face(card.id_number)
        if cached is not None:
            return Reference(cached, "template")
        if card.photo is not None:
            template = self.ports.faces.photo_template(card.photo)
            if template is not None:
                return Reference(template, "card_photo")
        log.info("no face reference: %s", card.photo_reason or "no face on the card photo")
        return None

    def _mode(self, reference: Reference) -> str:
        return "live" if reference.kind == "template" else "card_photo"

    def _gate(self, obs: Observation) -> str | None:
        s = self.settings
        if obs.faces == 0 or obs.measures is None:
            return "look"
        if obs.faces > 1:
            return "one_person"
        if obs.face_width < s.min_face_px:
            return "closer"
        if obs.brightness < s.min_brightness:
            return "light"
        if abs(obs.measures.yaw) > s.max_pose_deg or abs(obs.measures.pitch) > s.max_pose_deg:
            return "look"
        if obs.sharpness < s.min_sharpness:
            return "hold_still"
        return None

    def _capture(self, attempt: int) -> tuple[Frame, list[Measures]] | None:
        """Frames until ``steady_frames`` good ones in a row; ``None`` after ``capture_s``."""
        start: float | None = None
        steady: list[Measures] = []
        self.show("capture", "look", attempt=attempt)
        while True:
            frame = self.ports.camera.read()
            start = frame.timestamp if start is None else start
            if frame.timestamp - start > self.settings.capture_s:
                return None
            obs = self.ports.faces.observe(frame)
            self.ports.display.preview(frame, obs)
            problem = self._gate(obs)
            if problem is not None:
                steady.clear()
                self.show("capture", problem, attempt=attempt)
                continue
            assert obs.measures is not None
            steady.append(obs.measures)
            if len(steady) >= self.settings.steady_frames:
                return frame, steady

    def _challenge(self, challenge: Challenge, base: Measures, attempt: int) -> bool:
        limit = self.settings.challenge_s
        prompt = f"challenge_{challenge.value}"
        start: float | None = None
        series: list[Measures] = []
        shown = -1
        while True:
            frame = self.ports.camera.read()
            start = frame.timestamp if start is None else start
            left = limit - (frame.timestamp - start)
            if left < 0:
                return False
            if int(left) != shown:
                shown = int(left)
                self.show(
                    "challenge",
                    prompt,
                    attempt=attempt,
                    challenge=challenge.value,
                    seconds_left=float(shown + 1),
                )
            obs = self.ports.faces.observe(frame)
            self.ports.display.preview(frame, obs)
            if obs.faces != 1 or obs.measures is None:
                continue
            series.append(obs.measures)
            if liveness.done(challenge, base, series, self.limits):
                self.show("challenge", "good", attempt=attempt, challenge=challenge.value)
                return True

    def _attempt(self, n: int, reference: Reference) -> tuple[Attempt, Probe | None]:
        """One face attempt; the probe to certify with when it passed, else ``None``."""
        faces = self.ports.faces
        captured = self._capture(n)
        first = faces.probe(captured[0]) if captured else None
        if captured is None or first is None:
            return Attempt(captured=False, reason="no face captured in time"), None
        base = liveness.baseline(captured[1])
        pad_ok = first.pad_passed
        asked = liveness.pick(self.rng, self.settings.challenges)
        done: list[str] = []
        if pad_ok:
            for challenge in asked:
                if not self._challenge(challenge, base, n):
                    break
                done.append(challenge.value)
        names = tuple(c.value for c in asked)
        live = pad_ok and len(done) == len(asked)
        mode = self._mode(reference)
        if not live:
            reason = "passive liveness check failed" if not pad_ok else "challenge not done"
            comparison = faces.compare(first.template, reference.template, mode)
            return Attempt(True, names, False, first.pad_score, comparison, reason), None
        again = self._capture(n)
        final = faces.probe(again[0]) if again else None
        if final is None:
            return Attempt(True, names, False, first.pad_score, None, "face lost"), None
        if not faces.compare(final.template, first.template, "live").matched:
            comparison = faces.compare(final.template, reference.template, mode)
            return Attempt(True, names, False, first.pad_score, comparison, "face changed"), None
        self.show("matching", "matching", attempt=n)
        comparison = faces.compare(final.template, reference.template, mode)
        attempt = Attempt(True, names, True, first.pad_score, comparison)
        if not comparison.matched:
            return replace(attempt, reason="face does not match the reference"), None
        return attempt, final

    # -- endings --------------------------------------------------------------------------

    def _face_evidence(
        self, reference: Reference | None, attempts: list[Attempt], chosen: Attempt
    ) -> tuple[MatchEvidence, LivenessEvidence]:
        assert chosen.comparison is not None
        match = MatchEvidence(
            modality="face",
            reference="template" if reference and reference.kind == "template" else "card_photo",
            score=round(chosen.comparison.score, 6),
            threshold=chosen.comparison.threshold,
            model=self.ports.faces.model[:128],
            attempts=len(attempts),
        )
        live = LivenessEvidence(
            passed=chosen.live,
            challenges=chosen.challenges,
            pad_score=None if chosen.pad_score is None else round(chosen.pad_score, 4),
        )
        return match, live

    def _finish_face(
        self,
        card: Identity,
        channel: Channel,
        reference: Reference,
        attempts: list[Attempt],
        probe: Probe,
    ) -> Outcome:
        match, live = self._face_evidence(reference, attempts, attempts[-1])
        kept = self.ports.faces.keep(probe)
        draft = Draft(
            retiree_id=card.id_number,
            method=Method.FACE,
            decision=Decision.PASS,
            channel=channel,
            match=match,
            liveness=live,
            template=sealed_form(kept, self.ports.faces.template_model),
        )
        outcome = self._store(draft, attempts)
        self.ports.references.remember_face(card.id_number, kept)
        return outcome

    def _fallback(
        self, card: Identity, channel: Channel, reference: Reference | None, attempts: list[Attempt]
    ) -> Outcome:
        retiree = card.id_number
        compared = [a for a in attempts if a.comparison is not None]
        best = min(compared, key=lambda a: a.comparison.score) if compared else None  # type: ignore[union-attr]
        face = self._face_evidence(reference, attempts, best) if best else None
        vein_ref = self.ports.references.vein(retiree) if self.ports.veins else None
        if self.ports.veins is not None and vein_ref is not None:
            comparison = self._vein(vein_ref)
            if comparison is not None:
                draft = Draft(
                    retiree_id=retiree,
                    method=Method.VEIN,
                    decision=Decision.PASS if comparison.matched else Decision.FAIL,
                    channel=channel,
                    match=MatchEvidence(
                        modality="vein",
                        reference="enrolled_vein",
                        score=round(comparison.score, 6),
                        threshold=comparison.threshold,
                        model=self.ports.veins.model[:128],
                        attempts=1,
                    ),
                    liveness=face[1] if face else None,
                )
                return self._store(draft, attempts)
        if face is None:
            log.warning("session for %s ended without any biometric evidence", mask(retiree))
            self.show("staff", "staff" if reference else "no_reference", retiree=mask(retiree))
            return Outcome("none", "staff", retiree, attempts=tuple(attempts))
        draft = Draft(
            retiree_id=retiree,
            method=Method.FACE,
            decision=Decision.REFER,
            channel=channel,
            match=face[0],
            liveness=face[1],
        )
        return self._store(draft, attempts)

    def _vein(self, reference: bytes) -> Comparison | None:
        veins = self.ports.veins
        assert veins is not None
        self.show("vein", "vein_place")
        try:
            probe = veins.capture(
                self.settings.vein_timeout_s,
                lambda p: self.show("vein", _VEIN_PROMPTS[p]),
            )
        except NoFingerError:
            return None
        self.show("matching", "matching")
        return veins.compare(reference, probe)

    def _store(self, draft: Draft, attempts: list[Attempt]) -> Outcome:
        """Record the result; the done screen appears only after the outbox commit."""
        self.show("matching", "matching", speak=False)
        receipt = self.ports.recorder.record(draft)
        number = receipt_number(self.device_id, receipt.seq)
        decision = draft.decision.value
        prompt = {"pass": "done_pass", "fail": "done_fail", "refer": "staff"}[decision]
        log.info(
            "certification stored: %s %s %s receipt %s",
            draft.method.value,
            decision,
            mask(draft.retiree_id),
            number,
        )
        self.show("done", prompt, receipt=number, decision=decision, retiree=mask(draft.retiree_id))
        return Outcome(
            decision,
            prompt,
            draft.retiree_id,
            draft.method.value,
            number,
            receipt.result_id,
            tuple(attempts),
        )
