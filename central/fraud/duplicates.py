"""Biometric duplicate detection: one face certified under two identities (1:N search).

Each new face template that arrives sealed in a result (``results.template_sealed``)
is opened with central's sealing key, searched against every stored template of
the same model (a float32 matrix in memory, Euclidean distance), then stored
encrypted at rest (``central.fraud.cipher``). A hit within ``distance`` of another
retiree's template raises a ``duplicate_face`` fraud flag and a ``fraud_flag`` event on
both retirees.
"""

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import Connection, Engine

from central.fraud.cipher import TemplateCipher
from central.store import schema
from protocol import sealing, templates
from protocol.errors import MessageError, SealError

log = logging.getLogger(__name__)

_t, _res, _flags = schema.face_templates, schema.results, schema.fraud_flags
_BATCH = 500


class _Matrix:
    """Growable float32 rows with their owners (retiree index) and result ids."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.size = 0
        self.rows = np.empty((1024, dim), dtype=np.float32)
        self.half_sq = np.empty(1024, dtype=np.float32)
        self.owners = np.empty(1024, dtype=np.int64)
        self.results: list[uuid.UUID] = []

    def add(self, vector: np.ndarray, owner: int, result_id: uuid.UUID) -> None:
        if self.size == len(self.rows):
            grow = len(self.rows)
            self.rows = np.concatenate([self.rows, np.empty((grow, self.dim), np.float32)])
            self.half_sq = np.concatenate([self.half_sq, np.empty(grow, np.float32)])
            self.owners = np.concatenate([self.owners, np.empty(grow, np.int64)])
        self.rows[self.size] = vector
        self.half_sq[self.size] = float(vector @ vector) / 2
        self.owners[self.size] = owner
        self.results.append(result_id)
        self.size += 1


def _unit(vector: np.ndarray) -> np.ndarray:
    """float32 ``vector`` scaled to length 1 (templates compare by the distance of unit
    vectors, whatever length the terminal's bundle gave them)."""
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


@dataclass(frozen=True)
class Hit:
    """Another retiree's template close to the probe."""

    retiree_id: str
    result_id: uuid.UUID
    distance: float


@dataclass
class FaceIndex:
    """Every stored face template per model, searchable 1:N."""

    models: dict[tuple[str, int], _Matrix] = field(default_factory=dict)
    retirees: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)

    def add(self, model: str, vector: np.ndarray, retiree_id: str, result_id: uuid.UUID) -> None:
        key = (model, len(vector))
        if key not in self.models:
            self.models[key] = _Matrix(len(vector))
        code = self.codes.setdefault(retiree_id, len(self.retirees))
        if code == len(self.retirees):
            self.retirees.append(retiree_id)
        self.models[key].add(_unit(vector), code, result_id)

    def __len__(self) -> int:
        return sum(m.size for m in self.models.values())

    def search(
        self, model: str, vector: np.ndarray, distance: float, exclude: str | None = None
    ) -> list[Hit]:
        """Templates of other retirees within ``distance``, nearest first (one per retiree)."""
        matrix = self.models.get((model, len(vector)))
        if matrix is None or matrix.size == 0:
            return []
        q = _unit(vector)
        qq = float(q @ q)
        # |r - q|^2 <= t^2  <=>  r.q - |r|^2 / 2 >= (|q|^2 - t^2) / 2: one pass, one temporary
        score = matrix.rows[: matrix.size] @ q
        score -= matrix.half_sq[: matrix.size]
        close = np.flatnonzero(score >= (qq - distance * distance) / 2)
        d2 = np.maximum(qq - 2.0 * score[close], 0.0)
        skip = self.codes.get(exclude, -1) if exclude else -1
        best: dict[int, Hit] = {}
        for j in np.argsort(d2):
            i = int(close[j])
            owner = int(matrix.owners[i])
            if owner != skip and owner not in best:
                best[owner] = Hit(self.retirees[owner], matrix.results[i], float(np.sqrt(d2[j])))
        return list(best.values())

    @classmethod
    def load(cls, engine: Engine, cipher: TemplateCipher) -> "FaceIndex":
        """Decrypt every stored template into memory."""
        index = cls()
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(_t.c.result_id, _t.c.retiree_id, _t.c.model, _t.c.vector).where(
                    _t.c.vector.is_not(None)
                ),
                execution_options={"yield_per": 20_000},
            )
            for result_id, retiree_id, model, blob in rows:
                index.add(model, cipher.decrypt(blob, result_id), retiree_id, result_id)
        return index


@dataclass
class ScanReport:
    """What a scan did."""

    indexed: int = 0
    problems: int = 0
    flags: list[dict[str, object]] = field(default_factory=list)


def _pending(conn: Connection) -> list[tuple[uuid.UUID, str, str]]:
    done = sa.exists().where(_t.c.result_id == _res.c.result_id)
    query = (
        sa.select(_res.c.result_id, _res.c.retiree_id, _res.c.template_sealed)
        .where(_res.c.template_sealed.is_not(None), ~done)
        .order_by(_res.c.received_at, _res.c.result_id)
        .limit(_BATCH)
    )
    return [(row[0], row[1], row[2]) for row in conn.execute(query)]


def _open(token: str, seal_key: ec.EllipticCurvePrivateKey) -> templates.Template:
    return templates.decode(sealing.unseal(token, seal_key))


def scan(
    engine: Engine,
    index: FaceIndex,
    cipher: TemplateCipher,
    seal_key: ec.EllipticCurvePrivateKey,
    distance: float,
    now: dt.datetime | None = None,
) -> ScanReport:
    """Index every not-yet-indexed sealed template, flagging duplicates; batch per commit."""
    report = ScanReport()
    while True:
        at = now or dt.datetime.now(dt.UTC)
        with engine.begin() as conn:
            pending = _pending(conn)
            for result_id, retiree_id, token in pending:
                try:
                    tpl = _open(token, seal_key)
                    if tpl.kind != "face":
                        raise MessageError(f"a {tpl.kind} template: only faces are searched")
                except (SealError, MessageError) as exc:
                    conn.execute(
                        _t.insert().values(
                            result_id=result_id,
                            retiree_id=retiree_id,
                            problem=str(exc)[:200],
                            indexed_at=at,
                        )
                    )
                    report.problems += 1
                    continue
                vector = np.asarray(tpl.vector, dtype=np.float32)
                for hit in index.search(tpl.model, vector, distance, exclude=retiree_id):
                    report.flags.append(
                        _flag(conn, retiree_id, result_id, hit, tpl.model, distance, at)
                    )
                index.add(tpl.model, vector, retiree_id, result_id)
                conn.execute(
                    _t.insert().values(
                        result_id=result_id,
                        retiree_id=retiree_id,
                        model=tpl.model[:64],
                        vector=cipher.encrypt(vector, result_id),
                        indexed_at=at,
                    )
                )
                report.indexed += 1
        if len(pending) < _BATCH:
            return report


def _flag(
    conn: Connection,
    retiree_id: str,
    result_id: uuid.UUID,
    hit: Hit,
    model: str,
    threshold: float,
    at: dt.datetime,
) -> dict[str, object]:
    detail = {"distance": round(hit.distance, 4), "threshold": threshold, "model": model}
    row = {
        "kind": "duplicate_face",
        "retiree_id": retiree_id,
        "other_retiree_id": hit.retiree_id,
        "result_id": result_id,
        "other_result_id": hit.result_id,
        "score": hit.distance,
        "detail": detail,
        "created_at": at,
        "status": "open",
    }
    conn.execute(_flags.insert().values(**row))
    conn.execute(
        schema.events.insert(),
        [
            {
                "at": at,
                "kind": "fraud_flag",
                "retiree_id": who,
                "result_id": result_id,
                "actor": "duplicate-search",
                "detail": {"kind": "duplicate_face", "with": other} | detail,
            }
            for who, other in ((retiree_id, hit.retiree_id), (hit.retiree_id, retiree_id))
        ],
    )
    log.warning(
        "duplicate face: %s and %s (distance %.3f)", retiree_id, hit.retiree_id, hit.distance
    )
    return row
