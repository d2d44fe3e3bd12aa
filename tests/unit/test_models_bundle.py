"""Bundle manifest: signing, verification, tampering refused."""

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from models import plugins
from models.bundle import (
    MANIFEST,
    SIGNATURE,
    InputSpec,
    Manifest,
    ModelSpec,
    ScoreThreshold,
    SourceSpec,
    TensorSpec,
    Threshold,
    load_bundle,
    read_manifest,
    write_manifest,
)
from models.cli import main
from models.errors import BundleError

VEIN = ScoreThreshold(metric="miura", score=0.19, scorer="models.vein r1", calibrated_on="tests")


def _keypair(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = folder / f"{name}.key", folder / f"{name}.pub.pem"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv, pub


def _spec(path: Path, type_name: str) -> ModelSpec:
    return ModelSpec(
        type=type_name,
        file=path.name,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        size=path.stat().st_size,
        input=InputSpec(name="in", shape=[1, 4], layout="N C", normalisation="none"),
        outputs=[TensorSpec(name="out", shape=[1, 2])],
        source=SourceSpec(package="example", version="1", path=path.name),
        licence="Apache-2.0",
        use="tests",
    )


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, Path, Path]:
    folder = tmp_path / "bundle"
    folder.mkdir()
    priv, pub = _keypair(tmp_path, "sign")
    specs = {}
    for role, name in (("detector", "det"), ("landmarks", "lm"), ("embedder", "emb")):
        path = folder / f"{name}.tflite"
        path.write_bytes(name.encode() * 1000)
        specs[role] = _spec(path, f"{name}_type")
    manifest = Manifest(
        name="test",
        version="1",
        created="2026-01-01T00:00:00+00:00",
        models=specs,
        thresholds={"live": Threshold(distance=0.5, calibrated_on="tests")},
    )
    write_manifest(folder, manifest, priv)
    return folder, priv, pub


def test_a_signed_bundle_loads_with_its_verified_bytes(bundle: tuple[Path, Path, Path]) -> None:
    folder, _, pub = bundle
    manifest, contents = load_bundle(folder, pub)
    assert manifest.thresholds["live"].distance == 0.5
    assert contents["detector"] == b"det" * 1000
    assert set(contents) == {"detector", "landmarks", "embedder"}


def test_a_tampered_model_file_is_refused(bundle: tuple[Path, Path, Path]) -> None:
    folder, _, pub = bundle
    data = bytearray((folder / "emb.tflite").read_bytes())
    data[10] ^= 1
    (folder / "emb.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="embedder model does not match its SHA-256"):
        load_bundle(folder, pub)


def test_a_missing_model_file_is_refused(bundle: tuple[Path, Path, Path]) -> None:
    folder, _, pub = bundle
    (folder / "lm.tflite").unlink()
    with pytest.raises(BundleError, match="landmarks model file missing"):
        load_bundle(folder, pub)


def test_an_edited_manifest_is_refused(bundle: tuple[Path, Path, Path]) -> None:
    folder, _, pub = bundle
    doc = json.loads((folder / MANIFEST).read_text())
    doc["thresholds"]["live"]["distance"] = 0.9  # loosen the threshold
    (folder / MANIFEST).write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="differs from the signed manifest"):
        load_bundle(folder, pub)


def test_a_manifest_signed_by_another_key_is_refused(
    bundle: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    folder, _, pub = bundle
    other_priv, _ = _keypair(tmp_path, "other")
    manifest, _ = load_bundle(folder, pub)
    write_manifest(folder, manifest, other_priv)
    with pytest.raises(BundleError, match="signature does not verify"):
        load_bundle(folder, pub)


def test_a_forged_signature_is_refused(bundle: tuple[Path, Path, Path]) -> None:
    folder, _, pub = bundle
    head, payload, sig = (folder / SIGNATURE).read_text().strip().split(".")
    (folder / SIGNATURE).write_text(f"{head}.{payload}.{sig[:-4]}AAAA")
    with pytest.raises(BundleError, match="signature does not verify"):
        load_bundle(folder, pub)


def test_model_files_must_stay_inside_the_bundle(bundle: tuple[Path, Path, Path]) -> None:
    folder, priv, pub = bundle
    manifest, _ = load_bundle(folder, pub)
    spec = manifest.models["detector"].model_copy(update={"file": "../det.tflite"})
    write_manifest(
        folder, manifest.model_copy(update={"models": {**manifest.models, "detector": spec}}), priv
    )
    with pytest.raises(BundleError, match="plain file name"):
        load_bundle(folder, pub)


def test_unknown_plugin_type_is_a_clear_error(bundle: tuple[Path, Path, Path]) -> None:
    folder, _, pub = bundle
    manifest, contents = load_bundle(folder, pub)
    with pytest.raises(BundleError, match=r"detector type 'det_type' is not known here"):
        plugins.create("detector", contents["detector"], manifest.models["detector"], 1)


def test_cli_verify_reports_ok_and_refuses_tampering(bundle: tuple[Path, Path, Path]) -> None:
    folder, _, pub = bundle
    runner = CliRunner()
    ok = runner.invoke(main, ["verify", str(folder), "--public-key", str(pub)])
    assert ok.exit_code == 0, ok.output
    assert "ok: test 1" in ok.output
    (folder / "det.tflite").write_bytes(b"evil")
    bad = runner.invoke(main, ["verify", str(folder), "--public-key", str(pub)])
    assert bad.exit_code == 1
    assert "error:" in bad.output and "detector model does not match" in bad.output
    assert "Traceback" not in bad.output


def test_every_cli_command_has_an_example() -> None:
    for name, command in main.commands.items():
        assert "Example: lifecert-models " in (command.help or ""), name


def test_pad_and_vein_thresholds_are_signed_with_the_face_ones(
    bundle: tuple[Path, Path, Path],
) -> None:
    folder, priv, pub = bundle
    manifest = read_manifest(folder, pub)
    signed = {**manifest.thresholds, "vein": VEIN}
    write_manifest(folder, manifest.model_copy(update={"thresholds": signed}), priv)
    again = read_manifest(folder, pub)
    assert again.score_threshold("vein") == VEIN
    assert again.face_threshold("live").distance == 0.5
    ok = CliRunner().invoke(main, ["verify", str(folder), "--public-key", str(pub)])
    assert "threshold vein: score >= 0.1900" in ok.output
    assert "threshold live: distance <= 0.5000" in ok.output
    doc = json.loads((folder / MANIFEST).read_text())
    doc["thresholds"]["vein"]["score"] = 0.01  # let every finger match
    (folder / MANIFEST).write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="differs from the signed manifest"):
        read_manifest(folder, pub)


def test_a_missing_score_threshold_names_the_fix(bundle: tuple[Path, Path, Path]) -> None:
    folder, _, pub = bundle
    manifest = read_manifest(folder, pub)
    with pytest.raises(BundleError, match=r"no vein threshold .* rebuild it with `make models`"):
        manifest.score_threshold("vein")
    with pytest.raises(BundleError, match="no card_photo threshold"):
        manifest.face_threshold("card_photo")


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("vein", {"distance": 0.5, "calibrated_on": "x"}),
        ("live", VEIN.model_dump()),
        ("pad", {"metric": "euclidean", "score": 0.5, "scorer": "x", "calibrated_on": "x"}),
    ],
)
def test_a_threshold_of_the_wrong_kind_is_refused(
    bundle: tuple[Path, Path, Path], kind: str, value: dict[str, object]
) -> None:
    folder, _, _ = bundle
    doc = json.loads((folder / MANIFEST).read_text())
    doc["thresholds"][kind] = value
    with pytest.raises(ValueError, match="thresholds"):
        Manifest.model_validate(doc)
