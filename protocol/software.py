"""Signed terminal-software bundles: the project's wheel, a manifest naming its version and
SHA-256, and the manifest's JWS (ES256) made with the fleet's release (model-signing) key.

A bundle is a folder::

    manifest.json   {"format": "lifecert-software/1", "name": "lifecert", "version": ...,
                     "files": {"lifecert-<version>-py3-none-any.whl": {"size", "sha256"}}}
    manifest.jws    JWS compact whose payload is exactly manifest.json
    lifecert-<version>-py3-none-any.whl

:func:`write_bundle` makes one (``lifecert fleet software-bundle``); :func:`verify_bundle`
checks one (central before a rollout, the terminal before it installs it).
"""

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import Field, ValidationError

from common.errors import LifecertError
from protocol import signing
from protocol.errors import SignatureError
from protocol.messages import _Strict

MANIFEST: Final = "manifest.json"
SIGNATURE: Final = "manifest.jws"
FORMAT: Final = "lifecert-software/1"
PACKAGE: Final = "lifecert"
MAX_MANIFEST_BYTES: Final = 16 * 1024
_WHEEL = re.compile(r"^lifecert-([0-9a-z][0-9a-z._-]{0,39})-py3-none-any\.whl$")


class SoftwareBundleError(LifecertError, ValueError):
    """A software bundle is malformed, unsigned, tampered or not the project's wheel."""


class FileSpec(_Strict):
    """One file of a bundle: its size and SHA-256."""

    size: int = Field(ge=1, le=512 * 1024 * 1024)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SoftwareManifest(_Strict):
    """What a software bundle holds (the signed payload)."""

    format: Literal["lifecert-software/1"] = FORMAT
    name: Literal["lifecert"] = PACKAGE
    version: Annotated[str, Field(pattern=r"^[0-9a-z][0-9a-z._-]{0,39}$")]
    files: dict[str, FileSpec] = Field(min_length=1, max_length=1)

    @property
    def wheel(self) -> str:
        """The wheel's file name."""
        return next(iter(self.files))


def is_software_bundle(folder: Path) -> bool:
    """True when ``folder``'s manifest says it is a software bundle (not yet verified)."""
    try:
        doc = json.loads((folder / MANIFEST).read_bytes()[:MAX_MANIFEST_BYTES])
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_bundle(wheel: Path, out: Path, signer: signing.Signer) -> SoftwareManifest:
    """Copy ``wheel`` into ``out`` with a signed manifest; the manifest."""
    found = _WHEEL.match(wheel.name)
    if not found:
        raise SoftwareBundleError(
            f"{wheel.name}: not a lifecert wheel (lifecert-<version>-py3-none-any.whl, "
            "built with `pip wheel --no-deps .`; the version in lower case, no '+')"
        )
    if out.exists() and any(out.iterdir()):
        raise SoftwareBundleError(f"{out}: not empty; name a new folder")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wheel, out / wheel.name)
    copy = out / wheel.name
    manifest = SoftwareManifest(
        version=found.group(1),
        files={wheel.name: FileSpec(size=copy.stat().st_size, sha256=_sha256(copy))},
    )
    payload = json.dumps(manifest.model_dump(), sort_keys=True, indent=1).encode()
    (out / MANIFEST).write_bytes(payload)
    (out / SIGNATURE).write_text(signer.sign(payload) + "\n", encoding="ascii")
    return manifest


def verify_bundle(folder: Path, public_key: Path, installed: bool = False) -> SoftwareManifest:
    """Check a software bundle: signature, manifest, the wheel's size and SHA-256, no
    other file (but ``lib`` and ``bin`` in an ``installed`` release); its manifest."""
    try:
        token = (folder / SIGNATURE).read_text(encoding="ascii").strip()
        shown = (folder / MANIFEST).read_bytes()
        key = signing.load_public_key(public_key)
    except (OSError, UnicodeDecodeError) as exc:
        raise SoftwareBundleError(f"{folder}: not a software bundle ({exc})") from None
    try:
        payload = signing.Verifier(key).verify(token)
    except SignatureError as exc:
        raise SoftwareBundleError(
            f"{folder}: the manifest is not signed by the fleet's release key {public_key}: {exc}"
        ) from None
    if payload != shown:
        raise SoftwareBundleError(f"{folder / MANIFEST}: differs from the signed manifest")
    try:
        manifest = SoftwareManifest.model_validate_json(payload)
    except ValidationError as exc:
        raise SoftwareBundleError(f"{folder / MANIFEST}: not a software manifest: {exc}") from None
    found = _WHEEL.match(manifest.wheel)
    if not found or found.group(1) != manifest.version:
        raise SoftwareBundleError(f"{manifest.wheel}: not the lifecert {manifest.version} wheel")
    present = {p.name for p in folder.iterdir()}
    allowed = {MANIFEST, SIGNATURE, manifest.wheel} | ({"lib", "bin"} if installed else set())
    if extra := present - allowed:
        raise SoftwareBundleError(f"{folder}: files the manifest does not list: {sorted(extra)}")
    wheel, spec = folder / manifest.wheel, manifest.files[manifest.wheel]
    if not wheel.is_file() or wheel.is_symlink():
        raise SoftwareBundleError(f"{wheel}: missing or not a plain file")
    if wheel.stat().st_size != spec.size or _sha256(wheel) != spec.sha256:
        raise SoftwareBundleError(f"{wheel}: does not match its SHA-256 in the signed manifest")
    return manifest
