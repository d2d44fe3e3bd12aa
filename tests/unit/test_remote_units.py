"""The remote terminal's small parts: the upload camera, address limits, frame decoding,
the request guard and the ``[remote]`` config."""

import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from common.errors import ConfigError
from edge.config import load as load_config
from edge.remote.app import RefusedError, decode_frame
from edge.remote.camera import UploadCamera
from edge.remote.guard import PhoneGuard
from edge.remote.limits import AddressLimits
from hal.errors import CameraError


def _rgb(w: int = 64, h: int = 48, value: int = 0) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def _jpeg(w: int, h: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (w, h), (90, 120, 150)).save(out, "JPEG")
    return out.getvalue()


def test_the_camera_hands_over_the_newest_frames_and_ends_when_the_phone_stops() -> None:
    camera = UploadCamera(idle_s=0.3, keep=2)
    for value in (1, 2, 3):
        camera.feed(_rgb(value=value))
    assert camera.skipped == 1  # the oldest went: a slow session never answers late
    assert [camera.read().rgb[0, 0, 0] for _ in range(2)] == [2, 3]
    started = time.monotonic()
    with pytest.raises(CameraError, match="no frame from the phone"):
        camera.read()
    assert time.monotonic() - started >= 0.25


def test_closing_the_camera_wakes_the_reader_and_drops_the_frames() -> None:
    camera = UploadCamera(idle_s=10)
    errors: list[Exception] = []

    def read() -> None:
        try:
            camera.read()
        except CameraError as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.05)
    camera.close()
    reader.join(2)
    assert errors and "ended" in str(errors[0])
    with pytest.raises(CameraError):
        camera.feed(_rgb())


def test_address_limits_slide_over_the_hour() -> None:
    now = [0.0]
    limits = AddressLimits(2, clock=lambda: now[0])
    assert limits.take("a") and limits.take("a") and not limits.take("a")
    assert limits.take("b")
    now[0] = 3601
    assert limits.take("a")


def test_frames_are_decoded_only_when_small_jpegs() -> None:
    assert decode_frame(_jpeg(64, 48), 1280).shape == (48, 64, 3)
    with pytest.raises(RefusedError, match="at most 1280 px a side"):
        decode_frame(_jpeg(2000, 20), 1280)  # refused from the header, before decoding
    png = io.BytesIO()
    Image.new("RGB", (32, 32)).save(png, "PNG")
    with pytest.raises(RefusedError, match="JPEG"):
        decode_frame(png.getvalue(), 1280)
    with pytest.raises(RefusedError, match="readable JPEG"):
        decode_frame(b"\xff\xd8\xff" + b"\x00" * 50, 1280)


def _guarded() -> TestClient:
    async def ok(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[Route("/api/code", ok, methods=["POST"]), Route("/api/frame", ok, methods=["POST"])]
    )
    return TestClient(
        PhoneGuard(app, hosts=["phone.example"], max_frame=1000), base_url="https://phone.example"
    )


def test_the_guard_refuses_foreign_origins_hosts_types_and_sizes() -> None:
    client = _guarded()
    origin = {"Origin": "https://phone.example"}
    assert client.post("/api/code", json={}, headers=origin).status_code == 200
    assert (
        client.post("/api/code", json={}, headers={"Origin": "https://evil.example"}).status_code
        == 403
    )
    assert (
        client.post("/api/code", json={}, headers={**origin, "Host": "evil.example"}).status_code
        == 400
    )
    wrong_type = client.post("/api/frame", json={}, headers=origin)
    assert wrong_type.status_code == 415 and "image/jpeg" in wrong_type.json()["error"]
    frame = {**origin, "Content-Type": "image/jpeg"}
    assert client.post("/api/frame", content=b"x" * 1000, headers=frame).status_code == 200
    big = client.post("/api/frame", content=b"x" * 1001, headers=frame)
    assert big.status_code == 413 and "1000 bytes" in big.json()["error"]
    cross = client.post("/api/code", json={}, headers={**origin, "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403


def test_a_terminal_is_a_kiosk_or_a_remote_terminal(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem", "sign.pub", "seal.pub"):
        (tmp_path / name).write_text("")
    path = tmp_path / "edge.toml"
    path.write_text(
        'device_id = "remote-01"\n'
        '[mqtt]\nhost = "localhost"\n[mqtt.tls]\nca_file = "ca.pem"\ncert_file = "cert.pem"\n'
        'key_file = "key.pem"\n'
        '[central]\nsign_pub = "sign.pub"\nseal_pub = "seal.pub"\n'
        "[kiosk]\nenabled = true\n[remote]\nenabled = true\n"
    )
    with pytest.raises(ConfigError, match="a kiosk or a remote terminal"):
        load_config(path)
    path.write_text(
        path.read_text().replace("[remote]\nenabled = true\n", "[remote]\ntls_key_file = 'k.pem'\n")
    )
    with pytest.raises(ConfigError, match="tls_cert_file"):
        load_config(path)
