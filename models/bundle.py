"""Model bundles: TFLite files plus a signed manifest.

A bundle is a folder::

    manifest.json      the manifest (UTF-8 JSON), for people to read
    manifest.jws       JWS compact ES256 whose payload is exactly manifest.json
    *.tflite           the models the manifest lists, each with its SHA-256

The loader verifies the JWS with the fleet's model-signing public key, checks that
manifest.json is the signed payload, then checks every file's size and SHA-256
before anything is handed to the TFLite runtime. Any mismatch is a ``BundleError``.
"""

import hashlib
import json
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.errors import BundleError
from protocol.errors import SignatureError
from protocol.signing import Signer, Verifier, key_fingerprint, load_private_key, load_public_key

FORMAT: Final = "lifecert-model-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.jws"


Role = Literal["detector", "landmarks", "keypoints", "embedder", "pad"]
Mode = Literal["live", "card_photo"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """One input or output tensor."""

    name: str
    shape: list[int]
    dtype: str = "float32"


class InputSpec(TensorSpec):
    """The model input and how to fill it."""

    layout: str = Field(description="e.g. 'NHWC RGB'")
    normalisation: str = Field(description="how pixel values 0..255 become input values")


class SourceSpec(_Strict):
    """Where the weights come from."""

    package: str
    version: str
    path: str = Field(description="file inside the package the model was taken or built from")
    converted_by: str | None = None


class ModelSpec(_Strict):
    """One model of the bundle."""

    type: str = Field(description="plugin name for this role, see models.plugins")
    file: str
    sha256: str
    size: int
    input: InputSpec
    outputs: list[TensorSpec]
    source: SourceSpec
    licence: str
    use: str = Field(description="what the model may be used for")
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def identity(self) -> str:
        """``file@sha256[:16]``: names these exact weights (templates, PAD thresholds)."""
        return f"{self.file}@{self.sha256[:16]}"


Metric = Literal["euclidean", "euclidean_unit"]
ScoreKind = Literal["pad", "vein"]
Kind = Literal["live", "card_photo", "pad", "vein"]
_DISTANCE_KINDS: Final = ("live", "card_photo")


class Threshold(_Strict):
    """Decision threshold of one face comparison mode: match when distance <= ``distance``."""

    metric: Metric = Field(
        default="euclidean",
        description="euclidean: distance of the templates as they are; euclidean_unit: of the "
        "templates scaled to length 1",
    )
    distance: float = Field(description="match when distance <= this")
    target_fmr: float | None = None
    fnmr_at_target: float | None = Field(
        default=None,
        description="FNMR measured at this threshold on data held out from its calibration "
        "(calibrated_on says which)",
    )
    calibrated_on: str = Field(description="data set and protocol, or 'model default'")


class ScoreThreshold(_Strict):
    """Decision threshold on a score where higher means more alike (vein) or more likely
    live (PAD): accept when score >= ``score``."""

    metric: Literal["miura", "live_probability"] = Field(
        description="miura: models.vein's match score in [0, 0.5]; live_probability: the PAD "
        "model's live class probability in [0, 1]"
    )
    score: float = Field(description="accept when score >= this")
    scorer: str = Field(
        description="what produces the scores (the matcher and its parameters, or the PAD "
        "model's file@sha256[:16]); the threshold holds for it only"
    )
    target_fmr: float | None = None
    fnmr_at_target: float | None = Field(
        default=None, description="FNMR measured at this threshold on held-out data"
    )
    calibrated_on: str = Field(description="data set and protocol, or 'model default'")


class Manifest(_Strict):
    """The signed description of a bundle."""

    format: Literal["lifecert-model-bundle/1"] = FORMAT
    name: str
    version: str
    created: str
    models: dict[Role, ModelSpec]
    thresholds: dict[Kind, Threshold | ScoreThreshold]
    notes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _threshold_kinds(self) -> "Manifest":
        for kind, t in self.thresholds.items():
            if isinstance(t, Threshold) is not (kind in _DISTANCE_KINDS):
                raise ValueError(
                    f"thresholds.{kind}: a {'distance' if kind in _DISTANCE_KINDS else 'score'} "
                    "threshold is expected"
                )
        return self

    def face_threshold(self, mode: Mode) -> Threshold:
        """The distance threshold of face comparison ``mode``."""
        t = self.thresholds.get(mode)
        if not isinstance(t, Threshold):
            raise BundleError(f"bundle {self.name} {self.version} has no {mode} threshold")
        return t

    def score_threshold(self, kind: ScoreKind) -> ScoreThreshold:
        """The signed ``pad`` or ``vein`` threshold; a bundle without one cannot decide."""
        t = self.thresholds.get(kind)
        if not isinstance(t, ScoreThreshold):
            raise BundleError(
                f"bundle {self.name} {self.version} has no {kind} threshold in its signed "
                "manifest (built before thresholds for PAD and vein were signed): rebuild it "
                "with `make models` / `lifecert-models build`"
            )
        return t


def bundle_version(models: dict[Role, ModelSpec]) -> str:
    """Short hash of every model's hash and options: changes whenever the bundle would."""
    doc = json.dumps({r: s.model_dump(mode="json") for r, s in models.items()}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:12]


def face_version(models: dict[Role, ModelSpec]) -> str:
    """The version of the face models alone (no PAD model), which the face thresholds are
    calibrated for: equal to the bundle version of a bundle without a PAD model."""
    return bundle_version({role: spec for role, spec in models.items() if role != "pad"})


def manifest_bytes(manifest: Manifest) -> bytes:
    """Canonical JSON of the manifest (sorted keys, indented, trailing newline)."""
    return (json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()


def write_manifest(directory: Path, manifest: Manifest, signing_key: Path) -> None:
    """Write manifest.json and its JWS signed with the P-256 key at ``signing_key``."""
    key = load_private_key(signing_key)
    payload = manifest_bytes(manifest)
    token = Signer(key, key_fingerprint(key.public_key())).sign(payload)
    (directory / MANIFEST).write_bytes(payload)
    (directory / SIGNATURE).write_text(token + "\n", encoding="ascii")


def read_manifest(directory: Path, public_key: Path) -> Manifest:
    """The verified manifest of the bundle at ``directory`` (files are not checked)."""
    try:
        token = (directory / SIGNATURE).read_text(encoding="ascii").strip()
        shown = (directory / MANIFEST).read_bytes()
    except FileNotFoundError as exc:
        raise BundleError(f"{directory}: not a model bundle ({exc.filename} missing)") from None
    try:
        payload = Verifier(load_public_key(public_key)).verify(token)
    except SignatureError as exc:
        raise BundleError(
            f"{directory}: manifest signature does not verify with {public_key} ({exc}); "
            "rebuild or re-sign the bundle with the fleet's model-signing key"
        ) from None
    if payload != shown:
        raise BundleError(f"{directory / MANIFEST}: differs from the signed manifest (tampered)")
    try:
        return Manifest.model_validate_json(payload)
    except ValidationError as exc:
        raise BundleError(f"{directory}: signed manifest is not a valid {FORMAT}: {exc}") from None


def load_bundle(directory: Path, public_key: Path) -> tuple[Manifest, dict[str, bytes]]:
    """Verify the signature, then read every model and check its SHA-256.

    Returns the manifest and the verified bytes of each model by role; the runtime
    loads these bytes, never the files again, so nothing unverified is ever run.
    """
    manifest = read_manifest(directory, public_key)
    contents: dict[str, bytes] = {}
    for role, spec in manifest.models.items():
        path = directory / spec.file
        if Path(spec.file).name != spec.file:
            raise BundleError(f"manifest {role}: file {spec.file!r} must be a plain file name")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BundleError(f"{path}: {role} model file missing from the bundle") from None
        if len(data) != spec.size or hashlib.sha256(data).hexdigest() != spec.sha256:
            raise BundleError(
                f"{path}: {role} model does not match its SHA-256 in the manifest (tampered or "
                "corrupted); rebuild the bundle"
            )
        contents[role] = data
    return manifest, contents


def resign(source: Path, public_key: Path, out: Path, signing_key: Path) -> Manifest:
    """Verify the bundle at ``source`` and write it to ``out`` signed with ``signing_key``.

    How a fleet ships a bundle built elsewhere: only verified bytes are copied.
    """
    manifest, contents = load_bundle(source, public_key)
    out.mkdir(parents=True, exist_ok=True)
    for role, spec in manifest.models.items():
        (out / spec.file).write_bytes(contents[role])
    write_manifest(out, manifest, signing_key)
    return manifest
