"""All-pairs Miura scores for evaluation, batched through the FFT (same scores as ``match``)."""

from collections.abc import Callable, Sequence

import numpy as np

from models.vein.match import CH, CW


def _window_sums(images: np.ndarray, h: int, w: int, ny: int, nx: int) -> np.ndarray:
    """Sum of every ``h`` x ``w`` window at offsets [0, ny) x [0, nx), per image."""
    c = np.zeros((images.shape[0], images.shape[1] + 1, images.shape[2] + 1))
    c[:, 1:, 1:] = images.cumsum(1).cumsum(2)
    return (
        c[:, h : h + ny, w : w + nx]
        - c[:, :ny, w : w + nx]
        - c[:, h : h + ny, :nx]
        + c[:, :ny, :nx]
    )


def score_matrix(
    templates: Sequence[np.ndarray],
    ch: int = CH,
    cw: int = CW,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """``S[i, j]`` = match(templates[i], templates[j]) for i < j (NaN elsewhere)."""
    if len({t.shape for t in templates}) != 1:
        raise ValueError("templates differ in shape: extract them with the same VeinParams")
    imgs = np.stack(templates).astype(np.float32)
    n, height, width = imgs.shape
    ch_, cw_ = height - 2 * ch, width - 2 * cw
    spectra = np.fft.rfft2(imgs)
    sums = _window_sums(imgs, ch_, cw_, 2 * ch + 1, 2 * cw + 1)
    out = np.full((n, n), np.nan)
    for i in range(n - 1):
        crop = np.zeros((height, width), dtype=np.float32)
        crop[:ch_, :cw_] = imgs[i, ch : height - ch, cw : width - cw]
        kernel = np.conj(np.fft.rfft2(crop))
        corr = np.fft.irfft2(spectra[i + 1 :] * kernel, s=(height, width))
        corr = np.rint(corr[:, : 2 * ch + 1, : 2 * cw + 1]).reshape(n - i - 1, -1)
        best = corr.argmax(axis=1)
        nm = corr[np.arange(corr.shape[0]), best]
        total = (
            imgs[i, ch : height - ch, cw : width - cw].sum()
            + sums[i + 1 :].reshape(n - i - 1, -1)[np.arange(corr.shape[0]), best]
        )
        out[i, i + 1 :] = np.where(total > 0, nm / np.maximum(total, 1), 0.0)
        if progress:
            progress(1)
    return out
