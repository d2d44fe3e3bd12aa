"""Card photo decoding: JPEG from readers that decode, WLT through a vendor library (ctypes)."""

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hal.card.photo import BMP_BYTES, WltLibrary, decode_photo
from hal.errors import BackendUnavailableError

# A stand-in for a vendor WLT library with the same C ABI: it writes a 102x126 BMP
# whose pixels are the first WLT bytes, so the test can check what went through.
FAKE_VENDOR_C = r"""
#include <string.h>
int unpack(const char *wlt, char *bmp, int flag) {
    if (flag != 602 || (unsigned char)wlt[0] == 0xFF) return -1;
    static const unsigned char head[54] = {'B','M', 0xCE,0x97,0,0, 0,0,0,0, 54,0,0,0, 40,0,0,0,
        102,0,0,0, 126,0,0,0, 1,0, 24,0, 0,0,0,0, 0x98,0x97,0,0, 0,0,0,0, 0,0,0,0, 0,0,0,0,
        0,0,0,0};
    memcpy(bmp, head, 54);
    for (int i = 0; i < 38808; i++) bmp[54 + i] = wlt[i % 1024];
    return 1;
}
"""


@pytest.fixture(scope="module")
def vendor_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler to build the test WLT library")
    folder = tmp_path_factory.mktemp("wlt")
    (folder / "wlt.c").write_text(FAKE_VENDOR_C)
    lib = folder / "libwlt.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(folder / "wlt.c")], check=True)
    return lib


def test_jpeg_block_is_decoded(shared_data: Path) -> None:
    path = shared_data / "faces/lfw/images/Aaron_Eckhart/Aaron_Eckhart_0001.jpg"
    rgb, reason = decode_photo(path.read_bytes(), None)
    assert reason is None and rgb is not None
    assert rgb.shape == (250, 250, 3)
    with Image.open(path) as img:
        assert np.array_equal(rgb, np.asarray(img.convert("RGB")))


def test_wlt_without_decoder_says_why() -> None:
    rgb, reason = decode_photo(bytes(range(256)) * 4, None)
    assert rgb is None
    assert reason is not None and "WLT" in reason and "wlt_library" in reason


def test_empty_photo_block() -> None:
    assert decode_photo(b"", None) == (None, "the reader delivered no photo")


def test_corrupt_jpeg_is_a_reason_not_a_crash() -> None:
    rgb, reason = decode_photo(b"\xff\xd8\xff" + bytes(100), None)
    assert rgb is None and reason is not None and "cannot be decoded" in reason


def test_vendor_library_through_ctypes(vendor_lib: Path) -> None:
    wlt = bytes((i * 7) % 256 for i in range(1024))
    lib = WltLibrary(vendor_lib)
    bmp = lib.to_bmp(wlt)
    assert bmp is not None and len(bmp) == BMP_BYTES
    rgb, reason = decode_photo(wlt, lib)
    assert reason is None and rgb is not None
    assert rgb.shape == (126, 102, 3)
    # the bottom row of a BMP comes first: its first pixel holds WLT bytes 0, 1, 2 as B, G, R
    assert tuple(rgb[-1, 0]) == (wlt[2], wlt[1], wlt[0])


def test_vendor_library_failure_is_a_reason(vendor_lib: Path) -> None:
    rgb, reason = decode_photo(b"\xff\x00" + bytes(1022), WltLibrary(vendor_lib))
    assert rgb is None and reason is not None and "rejected" in reason


def test_missing_vendor_library_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match=r"libnowhere\.so"):
        WltLibrary(tmp_path / "libnowhere.so")


def test_library_without_the_function(vendor_lib: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="wlt_function"):
        WltLibrary(vendor_lib, function="decode_wlt")


def test_bmp_block_is_decoded() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 4), (10, 20, 30)).save(buf, "BMP")
    rgb, _ = decode_photo(buf.getvalue(), None)
    assert rgb is not None and tuple(rgb[0, 0]) == (10, 20, 30)
