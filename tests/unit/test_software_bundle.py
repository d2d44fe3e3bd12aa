"""Signed software bundles (protocol.software) and the release launcher's trial count."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edge.fleet import launcher
from protocol import signing, software


def _keys(tmp_path: Path, name: str) -> tuple[signing.Signer, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / f"{name}.pub.pem"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return signing.Signer(key, signing.key_fingerprint(key.public_key())), pub


@pytest.fixture
def wheel(tmp_path: Path) -> Path:
    path = tmp_path / "lifecert-0.2.0-py3-none-any.whl"
    path.write_bytes(b"PK\x03\x04 not really a zip, but hashed all the same" * 10)
    return path


def test_a_bundle_verifies_and_names_its_version(tmp_path: Path, wheel: Path) -> None:
    signer, pub = _keys(tmp_path, "release")
    made = software.write_bundle(wheel, tmp_path / "b", signer)
    assert made.version == "0.2.0" and made.wheel == wheel.name
    assert software.verify_bundle(tmp_path / "b", pub) == made
    assert software.is_software_bundle(tmp_path / "b")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("wheel", "does not match its SHA-256"),
        ("manifest", "differs from the signed manifest"),
        ("extra", "files the manifest does not list"),
        ("key", "not signed by the fleet's release key"),
    ],
)
def test_a_tampered_bundle_is_refused(
    tmp_path: Path, wheel: Path, change: str, message: str
) -> None:
    signer, pub = _keys(tmp_path, "release")
    folder = tmp_path / "b"
    software.write_bundle(wheel, folder, signer)
    if change == "wheel":
        data = bytearray((folder / wheel.name).read_bytes())
        data[5] ^= 0xFF
        (folder / wheel.name).write_bytes(bytes(data))
    elif change == "manifest":
        doc = json.loads((folder / software.MANIFEST).read_text())
        doc["version"] = "9.9.9"
        (folder / software.MANIFEST).write_text(json.dumps(doc))
    elif change == "extra":
        (folder / "evil.pth").write_text("import os")
    else:
        _, pub = _keys(tmp_path, "other")
    with pytest.raises(software.SoftwareBundleError, match=message):
        software.verify_bundle(folder, pub)


def test_only_a_lifecert_wheel_with_a_plain_version_is_signed(tmp_path: Path) -> None:
    signer, _ = _keys(tmp_path, "release")
    for name in ("other-1.0-py3-none-any.whl", "lifecert-1.0+local-py3-none-any.whl"):
        (tmp_path / name).write_bytes(b"x")
        with pytest.raises(software.SoftwareBundleError, match="not a lifecert wheel"):
            software.write_bundle(tmp_path / name, tmp_path / "out", signer)


def _release(root: Path, name: str) -> Path:
    release = root / "releases" / name
    (release / "bin").mkdir(parents=True)
    (release / "lib" / "edge").mkdir(parents=True)
    # a stand-in `edge` package that prints the release it was imported from
    (release / "lib" / "edge" / "__main__.py").write_text(
        "import edge, sys; print('ran', edge.__file__.split('/')[-4], sys.argv[1:])\n"
    )
    (release / "lib" / "edge" / "__init__.py").write_text("")
    script = release / "bin" / "lifecert-edge"
    script.write_text(f"#!{sys.executable}\n" + Path(launcher.__file__).read_text())
    script.chmod(0o755)
    return release


def test_the_launcher_runs_its_release_and_rolls_back_a_release_that_keeps_starting(
    tmp_path: Path,
) -> None:
    root = tmp_path / "software"
    _release(root, "1.0")
    _release(root, "2.0")
    (root / "current").symlink_to(root / "releases" / "2.0")
    journal = {"command_id": "c1", "release": "2.0", "previous": "1.0", "step": "switched"}
    (root / "update.json").write_text(json.dumps(journal))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def start(*args: str) -> str:
        argv = [str(root / "current" / "bin" / "lifecert-edge"), *args]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
        return done.stdout

    assert start("--validate-config") == "ran 2.0 ['--validate-config']\n"  # not counted
    for n in range(1, launcher.MAX_LAUNCHES + 1):
        assert start("run") == "ran 2.0 ['run']\n"
        assert json.loads((root / "launches.json").read_text())["launches"] == n
    assert start("run") == "ran 1.0 ['run']\n"  # the fourth start: back to 1.0
    assert (root / "current").resolve().name == "1.0"
    doc = json.loads((root / "update.json").read_text())
    assert doc["step"] == "rolled-back" and "started 4 times" in doc["detail"]
    assert start("run") == "ran 1.0 ['run']\n"
