"""Fast, precise star positions: FWHM from the half-maximum area, windowed centroids.

The windowed centroid is SExtractor's XWIN/YWIN: a Gaussian-weighted first moment with a window
matched to the seeing, iterated to convergence. It is as precise as a 2-D Gaussian fit for
well-sampled stars and a hundred times faster.
"""

from __future__ import annotations

import numpy as np

__all__ = ["half_max_fwhm", "windowed_centroids"]


def _stamp(data: np.ndarray, x: float, y: float, half: int):
    ny, nx = data.shape
    x0, y0 = int(round(x)), int(round(y))
    xs, xe = max(x0 - half, 0), min(x0 + half + 1, nx)
    ys, ye = max(y0 - half, 0), min(y0 + half + 1, ny)
    return data[ys:ye, xs:xe], xs, ys


def half_max_fwhm(data: np.ndarray, x: np.ndarray, y: np.ndarray, half: int = 15) -> float:
    """Median FWHM (pixels) of stars from the area above half their peak (background removed).

    Parameters
    ----------
    data : numpy.ndarray
        Background-subtracted image.
    x, y : numpy.ndarray
        Approximate positions of bright, unsaturated, isolated stars.
    half : int
        Half size of the stamps.
    """
    values = []
    for xx, yy in zip(np.asarray(x), np.asarray(y), strict=True):
        stamp, _, _ = _stamp(data, xx, yy, half)
        if stamp.size == 0:
            continue
        peak = np.nanmax(stamp)
        if not np.isfinite(peak) or peak <= 0:
            continue
        area = np.count_nonzero(stamp >= 0.5 * peak)
        values.append(2.0 * np.sqrt(area / np.pi))
    return float(np.median(values)) if values else float("nan")


def windowed_centroids(
    data: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    fwhm: float,
    max_iter: int = 16,
    tolerance: float = 2e-4,
) -> tuple[np.ndarray, np.ndarray]:
    """Iterated Gaussian-windowed centroids (SExtractor XWIN_IMAGE, YWIN_IMAGE).

    Parameters
    ----------
    data : numpy.ndarray
        Background-subtracted image.
    x, y : numpy.ndarray
        Starting positions (0-based pixels).
    fwhm : float
        Seeing FWHM in pixels; the window's sigma is FWHM / 2.355.
    max_iter : int
        Maximum iterations per star.
    tolerance : float
        Convergence in pixels.

    Returns
    -------
    x, y : numpy.ndarray
        Centroids; NaN where the window fell off the image or had no positive flux.
    """
    sigma = fwhm / 2.3548
    half = int(np.ceil(4.0 * sigma))
    out_x = np.full(len(x), np.nan)
    out_y = np.full(len(y), np.nan)
    for k, (xc, yc) in enumerate(zip(np.asarray(x, float), np.asarray(y, float), strict=True)):
        stamp, xs, ys = _stamp(data, xc, yc, half + 2)
        if stamp.shape != (2 * half + 5, 2 * half + 5):
            continue
        gy, gx = np.mgrid[ys : ys + stamp.shape[0], xs : xs + stamp.shape[1]]
        for _ in range(max_iter):
            dx, dy = gx - xc, gy - yc
            w = np.exp(-(dx**2 + dy**2) / (2.0 * sigma**2)) * stamp
            norm = w.sum()
            if not norm > 0:
                xc = np.nan
                break
            step_x = 2.0 * (w * dx).sum() / norm
            step_y = 2.0 * (w * dy).sum() / norm
            xc, yc = xc + step_x, yc + step_y
            if abs(step_x) < tolerance and abs(step_y) < tolerance:
                break
            if abs(xc - x[k]) > half or abs(yc - y[k]) > half:
                xc = np.nan
                break
        if np.isfinite(xc):
            out_x[k], out_y[k] = xc, yc
    return out_x, out_y
