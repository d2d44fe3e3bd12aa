"""Template format, template encryption at rest, and the 1:N index against brute force."""

import uuid
from pathlib import Path

import numpy as np
import pytest

from central.fraud.cipher import TemplateCipher, TemplateStoreError, write_key
from central.fraud.duplicates import FaceIndex
from common.errors import ConfigError
from protocol import templates
from protocol.errors import MessageError


def test_template_round_trip_and_refusals() -> None:
    vec = np.linspace(-1, 1, 128, dtype=np.float32)
    tpl = templates.decode(templates.encode(vec.tolist(), "dlib"))
    assert (tpl.kind, tpl.model, len(tpl.vector)) == ("face", "dlib", 128)
    assert np.array_equal(np.asarray(tpl.vector, dtype=np.float32), vec)
    bad = [
        b"{}",
        b"not json",
        b'{"format":"lifecert-template/1","kind":"face","model":"m","dim":3,"vector":"AAAA"}',
        templates.encode([float("nan")] * 4, "m"),
    ]
    for data in bad:
        with pytest.raises(MessageError):
            templates.decode(data)


def test_cipher_binds_the_result_id(tmp_path: Path) -> None:
    cipher = TemplateCipher.from_file(write_key(tmp_path / "k"))
    vec = np.arange(128, dtype=np.float32)
    rid = uuid.uuid4()
    blob = cipher.encrypt(vec, rid)
    assert np.array_equal(cipher.decrypt(blob, rid), vec)
    with pytest.raises(TemplateStoreError):
        cipher.decrypt(blob, uuid.uuid4())  # moved to another row
    with pytest.raises(FileExistsError):
        write_key(tmp_path / "k")
    (tmp_path / "short").write_text("abcd")
    with pytest.raises(ConfigError, match="32 bytes"):
        TemplateCipher.from_file(tmp_path / "short")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_search_matches_brute_force_and_excludes_the_prober() -> None:
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((3000, 128), dtype=np.float32) / np.float32(np.sqrt(128))
    owners = [f"R{i % 1000}" for i in range(len(rows))]  # 3 templates per retiree
    index = FaceIndex()
    for i, (vec, who) in enumerate(zip(rows, owners, strict=True)):
        index.add("m", vec, who, uuid.UUID(int=i))
    for probe_i in rng.integers(0, len(rows), 20):
        probe = rows[probe_i] + rng.standard_normal(128, dtype=np.float32) * 0.05
        dist = np.linalg.norm(_unit(rows) - _unit(probe), axis=1)  # distance of unit vectors
        for threshold in (0.5, 1.2):
            hits = index.search("m", probe, threshold, exclude=owners[probe_i])
            expected = {}
            for i in np.argsort(dist):
                if dist[i] <= threshold and owners[i] != owners[probe_i]:
                    expected.setdefault(owners[i], float(dist[i]))
            assert [h.retiree_id for h in hits] == list(expected)
            assert np.allclose([h.distance for h in hits], list(expected.values()), atol=1e-4)
    assert index.search("other-model", rows[0], 2.0) == []
    # a template's length does not matter: 3x a stored one is the same face
    (hit, *_) = index.search("m", rows[7] * 3, 0.01, exclude="nobody")
    assert hit.retiree_id == owners[7] and hit.distance < 1e-3
