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
        Centroids; NaN where the start is not finite, the stamp leaves the image, the window
        wanders more than its half size or holds no positive flux.
    """
    sigma = fwhm / 2.3548
    half = int(np.ceil(4.0 * sigma))
    x0 = np.asarray(x, float)
    y0 = np.asarray(y, float)
    out_x = np.full(len(x0), np.nan)
    out_y = np.full(len(y0), np.nan)
    # Each star's stamp is cut once around its starting pixel; the window moves inside it.
    # All stars iterate together (vectorised), each until it converges or fails.
    ny, nx = data.shape
    size = 2 * half + 5
    left = np.round(np.nan_to_num(x0, nan=-1e6)).astype(int) - (half + 2)
    bottom = np.round(np.nan_to_num(y0, nan=-1e6)).astype(int) - (half + 2)
    whole = (left >= 0) & (bottom >= 0) & (left + size <= nx) & (bottom + size <= ny)
    whole &= np.isfinite(x0) & np.isfinite(y0)
    offsets = np.arange(size)
    for part in (slice(s, s + 2000) for s in range(0, len(x0), 2000)):
        index = np.flatnonzero(whole[part]) + (part.start or 0)
        if index.size == 0:
            continue
        gx = left[index, None, None] + offsets[None, None, :]
        gy = bottom[index, None, None] + offsets[None, :, None]
        stamps = data[gy, gx].astype(float)
        xc, yc = x0[index].copy(), y0[index].copy()
        active = np.ones(index.size, bool)
        failed = np.zeros(index.size, bool)
        for _ in range(max_iter):
            if not active.any():
                break
            k = np.flatnonzero(active)
            dx = gx[k] - xc[k, None, None]
            dy = gy[k] - yc[k, None, None]
            w = np.exp(-(dx**2 + dy**2) / (2.0 * sigma**2)) * stamps[k]
            norm = w.sum(axis=(1, 2))
            positive = norm > 0
            with np.errstate(invalid="ignore", divide="ignore"):
                step_x = 2.0 * (w * dx).sum(axis=(1, 2)) / norm
                step_y = 2.0 * (w * dy).sum(axis=(1, 2)) / norm
            failed[k[~positive]] = True
            active[k[~positive]] = False
            k, step_x, step_y = k[positive], step_x[positive], step_y[positive]
            xc[k] += step_x
            yc[k] += step_y
            done = (np.abs(step_x) < tolerance) & (np.abs(step_y) < tolerance)
            wandered = (np.abs(xc[k] - x0[index[k]]) > half) | (np.abs(yc[k] - y0[index[k]]) > half)
            wandered &= ~done
            failed[k[wandered]] = True
            active[k[done | wandered]] = False
        good = ~failed
        out_x[index[good]], out_y[index[good]] = xc[good], yc[good]
    return out_x, out_y
