"""EspeakSpeaker synthesises Mandarin and English prompts with the real espeak-ng."""

import io
import shutil
import wave

import pytest

from hal.speaker import EspeakSpeaker

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt install espeak-ng)"
)


def duration(wav: bytes) -> float:
    # espeak-ng --stdout leaves the RIFF sizes unset; count the samples ourselves
    with wave.open(io.BytesIO(wav)) as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
    return (len(wav) - 44) / (rate * width * channels)


@pytest.mark.parametrize(
    ("text", "lang"), [("请看摄像头，眨眨眼。", "zh"), ("Please look at the camera.", "en")]
)
def test_prompts_are_spoken(text: str, lang: str) -> None:
    wav = EspeakSpeaker().synthesize(text, lang)
    assert wav[:4] == b"RIFF"
    assert 0.5 < duration(wav) < 10


def test_slower_rate_is_longer() -> None:
    fast = EspeakSpeaker(rate=220).synthesize("请把手指放在传感器上", "zh")
    slow = EspeakSpeaker(rate=110).synthesize("请把手指放在传感器上", "zh")
    assert duration(slow) > 1.4 * duration(fast)


def test_unknown_language() -> None:
    with pytest.raises(ValueError, match="language"):
        EspeakSpeaker().synthesize("Hallo", "de")
