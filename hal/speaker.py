"""Voice prompts: the ``Speaker`` port, an espeak-ng backend and a silent one."""

import abc
import logging
import shutil
import subprocess

from hal.device import Device
from hal.errors import BackendUnavailableError, SpeakerError

log = logging.getLogger(__name__)

VOICES = {"zh": "cmn", "en": "en"}
"""Language code -> espeak-ng voice (Mandarin, English)."""


class Speaker(Device, abc.ABC):
    """Speaks short prompts."""

    @abc.abstractmethod
    def say(self, text: str, lang: str = "zh") -> None:
        """Speak ``text`` in ``lang`` ("zh" or "en"); returns when it has been spoken."""


class SilentSpeaker(Speaker):
    """Speaks nothing; keeps what it was asked to say in ``said`` (kiosks without audio, tests)."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []

    def say(self, text: str, lang: str = "zh") -> None:
        if lang not in VOICES:
            raise ValueError(f"unknown prompt language {lang!r}: one of {sorted(VOICES)}")
        self.said.append((lang, text))
        log.debug("silent prompt (%s): %s", lang, text)


class EspeakSpeaker(Speaker):
    """espeak-ng on the default audio device (or ``device`` for ALSA through aplay)."""

    def __init__(self, *, rate: int = 140, volume: int = 150, device: str | None = None) -> None:
        self._exe = shutil.which("espeak-ng")
        if self._exe is None:
            raise BackendUnavailableError(
                "speaker backend 'espeak' needs the espeak-ng program (apt install espeak-ng)"
            )
        self._aplay = shutil.which("aplay") if device else None
        if device and self._aplay is None:
            raise BackendUnavailableError(
                f"speaker backend 'espeak' with device {device!r} needs aplay "
                "(apt install alsa-utils)"
            )
        self.rate, self.volume, self.device = rate, volume, device

    def _command(self, text: str, lang: str, to_stdout: bool) -> list[str]:
        if lang not in VOICES:
            raise ValueError(f"unknown prompt language {lang!r}: one of {sorted(VOICES)}")
        cmd = [str(self._exe), "-v", VOICES[lang], "-s", str(self.rate), "-a", str(self.volume)]
        return [*cmd, "--stdout", text] if to_stdout else [*cmd, text]

    def synthesize(self, text: str, lang: str = "zh") -> bytes:
        """The prompt as WAV bytes."""
        try:
            done = subprocess.run(
                self._command(text, lang, True), capture_output=True, check=True, timeout=30
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise SpeakerError(f"espeak-ng failed: {exc}") from None
        return done.stdout

    def say(self, text: str, lang: str = "zh") -> None:
        try:
            if self.device:
                wav = self.synthesize(text, lang)
                subprocess.run(
                    [str(self._aplay), "-q", "-D", self.device], input=wav, check=True, timeout=30
                )
            else:
                subprocess.run(
                    self._command(text, lang, False), capture_output=True, check=True, timeout=30
                )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise SpeakerError(f"voice prompt could not be played: {exc}") from None
