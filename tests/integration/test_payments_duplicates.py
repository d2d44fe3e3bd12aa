"""1:N duplicate search on real faces (LFW, the built model bundle), SQLite and PostgreSQL."""

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image

from central.certification.devices import DeviceTrust
from central.certification.ingest import Inbound, Ingestor
from central.certification.settings import Policy
from central.fraud import duplicates
from central.fraud.cipher import TemplateCipher, TemplateStoreError, write_key
from central.fraud.flags import list_flags
from central.people import roster
from central.store import schema
from common import idnumber
from protocol import sealing, templates
from tests.fixtures.database import known_staff

pytestmark = pytest.mark.integration
MODEL = "dlib_face_recognition_resnet_v1"


@pytest.fixture(scope="module")
def embeddings(shared_data: Path) -> dict[str, np.ndarray]:
    """Templates of two images each of persons A and B, and one of C (real LFW faces), and
    ``distance``: the bundle's live threshold (the embedder's own scale)."""
    from models.pipeline import FacePipeline
    from models.tools import lfw
    from tests.integration.test_models_pipeline import bundle_and_key

    bundle, key = bundle_and_key()
    faces = lfw.load(shared_data / "faces" / "lfw")
    genuine = [p for p in lfw.read_pairs(faces) if p.fold == 0 and p.same][:12]
    with FacePipeline.open(bundle, key, threads=1) as pipe:

        def embed(index: int) -> np.ndarray:
            face = pipe.analyse(Image.open(faces.paths[index]))
            assert face is not None
            return np.asarray(face.template, dtype=np.float32)

        pairs = [(p, embed(p.a), embed(p.b)) for p in genuine]
        distance = np.array(pipe.manifest.thresholds["live"].distance)
    # A: the pair closest together (a re-capture at a kiosk is closer than LFW's press photos)
    pairs.sort(key=lambda t: float(np.linalg.norm(t[1] - t[2])))
    (a, a1, a2), *others = pairs
    rest = [t for t in others if _who(faces, t[0].a) != _who(faces, a.a)]
    b, b1, b2 = rest[0]
    c1 = next(t[1] for t in rest[1:] if _who(faces, t[0].a) != _who(faces, b.a))
    out = {"A1": a1, "A2": a2, "B1": b1, "B2": b2, "C1": c1, "distance": distance}
    return out


def _who(faces: Any, index: int) -> str:
    return Path(faces.paths[index]).parent.name


def test_same_face_under_two_identities_is_flagged(
    central_engine: Any, central_pki: Any, embeddings: dict[str, np.ndarray], tmp_path: Path
) -> None:
    seal_key = ec.generate_private_key(ec.SECP256R1())
    people = [idnumber.make("110105", dt.date(1950, 3, 7), s) for s in (11, 13, 15, 17)]
    roster.upsert(
        central_engine,
        [
            {
                "id_number": n,
                "name": f"R{i}",
                "sex": idnumber.sex(n),
                "birth_date": dt.date(1950, 3, 7),
            }
            for i, n in enumerate(people)
        ],
        "test",
        dt.datetime.now(dt.UTC),
    )
    term = central_pki.terminal("term-0001")
    known_staff(central_engine, "staff-7")
    ingestor = Ingestor(
        central_engine,
        DeviceTrust(central_pki.ca_file, central_pki.crl_file, central_pki.devices_dir),
        Policy(),
    )
    r1, r2, r3, r4 = people
    sent = [(r1, "A1"), (r2, "B1"), (r2, "B2"), (r4, "C1"), (r3, "A2")]
    for retiree, label in sent:
        sealed = sealing.seal(
            templates.encode(embeddings[label].tolist(), MODEL), seal_key.public_key()
        )
        msg = term.sign(term.result(retiree, template=sealed))
        assert (
            ingestor.apply(Inbound(term.topic(), msg, dt.datetime.now(dt.UTC))).status.value
            == "applied"
        )
    garbage = sealing.seal(b"not a template", seal_key.public_key())
    ingestor.apply(
        Inbound(term.topic(), term.sign(term.result(r4, template=garbage)), dt.datetime.now(dt.UTC))
    )

    cipher = TemplateCipher.from_file(write_key(tmp_path / "templates.key"))
    index = duplicates.FaceIndex.load(central_engine, cipher)
    limit = float(embeddings["distance"])
    report = duplicates.scan(central_engine, index, cipher, seal_key, distance=limit)
    assert (report.indexed, report.problems) == (5, 1)
    flags = list_flags(central_engine)
    assert [(f["kind"], f["retiree_id"], f["other_retiree_id"]) for f in flags] == [
        ("duplicate_face", r3, r1)
    ]
    assert 0 < flags[0]["score"] <= limit
    again = duplicates.scan(central_engine, index, cipher, seal_key, distance=limit)
    assert (again.indexed, again.flags) == (0, [])  # each result is searched once

    reloaded = duplicates.FaceIndex.load(central_engine, cipher)
    assert len(reloaded) == 5
    near = reloaded.search(MODEL, embeddings["A2"], limit, exclude=r3)
    assert [h.retiree_id for h in near] == [r1]
    with central_engine.connect() as conn:
        blobs = conn.execute(sa.select(schema.face_templates.c.vector)).scalars().all()
        events = (
            conn.execute(
                sa.select(schema.events.c.retiree_id).where(schema.events.c.kind == "fraud_flag")
            )
            .scalars()
            .all()
        )
    raw = embeddings["A1"].astype("<f4").tobytes()
    assert all(raw[:16] not in (b or b"") for b in blobs)  # encrypted at rest
    assert sorted(events) == sorted([r1, r3])
    other = TemplateCipher(b"\x01" * 32)
    with pytest.raises(TemplateStoreError, match="wrong key or tampered"):
        duplicates.FaceIndex.load(central_engine, other)
