"""The self-test of a model bundle: known face pairs must match, or not, as listed.

``cases.json`` in ``[fleet] selftest_dir`` lists pairs of images in that folder:
``[{"a": "x.jpg", "b": "y.jpg", "match": true}, ...]`` (1-50 pairs). Each pair is run
through the bundle's whole pipeline (detect, landmarks, align, embed, compare with the
bundle's signed ``live`` threshold); the test passes when every pair comes out as listed.
"""

from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from common.errors import LifecertError

CASES: Final = "cases.json"


class SelfTestError(LifecertError, RuntimeError):
    """The self-test could not run or did not pass."""


class Case(BaseModel):
    """One pair and the expected outcome."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    a: str = Field(pattern=r"^[^/\\]+$")
    b: str = Field(pattern=r"^[^/\\]+$")
    match: bool


_Cases = TypeAdapter(list[Case])


def load_cases(folder: Path) -> list[Case]:
    """The listed pairs; ``SelfTestError`` naming the problem."""
    try:
        cases = _Cases.validate_json((folder / CASES).read_bytes())
    except OSError as exc:
        raise SelfTestError(f"[fleet] selftest_dir: cannot read {folder / CASES}: {exc}") from None
    except ValidationError as exc:
        raise SelfTestError(f"{folder / CASES}: not a list of {{a, b, match}}: {exc}") from None
    if not 1 <= len(cases) <= 50:
        raise SelfTestError(f"{folder / CASES}: 1-50 pairs, found {len(cases)}")
    return cases


def run(bundle: Path, public_key: Path, folder: Path) -> str:
    """Run the pairs through the bundle; a one-line summary, or ``SelfTestError``."""
    from PIL import Image  # the models load with the test, not with the service

    from models.errors import BundleError
    from models.pipeline import FacePipeline

    cases = load_cases(folder)
    try:
        pipeline = FacePipeline.open(bundle, public_key, threads=1)
    except (BundleError, OSError, ValueError) as exc:
        raise SelfTestError(f"the bundle does not load: {exc}") from None
    wrong = []
    with pipeline:
        for case in cases:
            faces = []
            for name in (case.a, case.b):
                try:
                    with Image.open(folder / name) as img:
                        faces.append(pipeline.analyse(img.convert("RGB")))
                except OSError as exc:
                    raise SelfTestError(f"self-test image {name}: {exc}") from None
            probe, ref = faces
            if probe is None or ref is None:
                wrong.append(f"{case.a}/{case.b}: no face found")
                continue
            got = pipeline.compare(probe.template, ref.template).matched
            if got != case.match:
                wrong.append(f"{case.a}/{case.b}: {'match' if got else 'no match'}")
    if wrong:
        raise SelfTestError(
            f"{len(wrong)} of {len(cases)} reference pairs wrong: " + "; ".join(wrong[:3])
        )
    return f"{len(cases)} reference pairs as expected"
