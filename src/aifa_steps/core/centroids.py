"""Fast, precise star positions: FWHM from the half-maximum area, windowed centroids.

The windowed centroid is SExtractor's XWIN/YWIN: a Gaussian-weighted first moment with a window
matched to the seeing, iterated to convergence. It is as precise as a 2-D Gaussian fit for
well-sampled stars and a hundred times faster.
"""

from __future__ import annotations

import numpy as np

__all__ = ["half_light_radii", "half_max_fwhm", "windowed_centroids"]


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
    segments: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Iterated Gaussian-windowed centroids (SExtractor XWIN_IMAGE, YWIN_IMAGE).

    Pixels within 4 sigma of the current centre count, weighted by a Gaussian of ``sigma``
    = ``fwhm`` / 2.355. With a segmentation image, pixels of other sources are replaced by
    their mirror image through the star's starting pixel (zero where that is another source
    too), as photutils' ``centroid_win`` and SExtractor do.

    Parameters
    ----------
    data : numpy.ndarray
        Background-subtracted image.
    x, y : numpy.ndarray
        Starting positions (0-based pixels).
    fwhm : float or numpy.ndarray
        Seeing FWHM in pixels (or one per star; NaN: no centroid); the window's sigma is
        FWHM / 2.355.
    max_iter : int
        Maximum iterations per star.
    tolerance : float
        Convergence in pixels.
    segments : numpy.ndarray, optional
        Segmentation image (0 = sky) of ``data``.
    labels : numpy.ndarray, optional
        Each star's own label in ``segments``.

    Returns
    -------
    x, y : numpy.ndarray
        Centroids; NaN where the start is not finite, the stamp leaves the image, the window
        wanders more than its half size or holds no positive flux.
    """
    x0 = np.asarray(x, float)
    y0 = np.asarray(y, float)
    sigmas = np.broadcast_to(np.asarray(fwhm, float) / 2.3548, x0.shape)
    usable = np.isfinite(sigmas) & (sigmas > 0)
    out_x = np.full(len(x0), np.nan)
    out_y = np.full(len(y0), np.nan)
    # Stars are grouped by window size (half sizes rounded up to a multiple of 4 pixels), so
    # that one wide source does not enlarge every stamp.
    sizes = 4 * np.ceil(np.ceil(4.0 * np.where(usable, sigmas, 0.0)) / 4).astype(int)
    for half in np.unique(sizes[usable]):
        group = usable & (sizes == half)
        _windowed_group(
            data,
            np.where(group, x0, np.nan),
            y0,
            sigmas,
            int(half),
            max_iter,
            tolerance,
            segments,
            labels,
            out_x,
            out_y,
        )
    return out_x, out_y


def _windowed_group(
    data, x0, y0, sigmas, half, max_iter, tolerance, segments, labels, out_x, out_y
) -> None:
    """`windowed_centroids` of the stars with finite ``x0``, stamps of ``half`` + 2."""
    # Each star's stamp is cut once around its starting pixel; the window moves inside it.
    # All stars iterate together (vectorised), each until it converges or fails.
    for index, gx, gy, stamps in _stamp_batches(data, x0, y0, half + 2, segments, labels):
        xc, yc = x0[index].copy(), y0[index].copy()
        active = np.ones(index.size, bool)
        failed = np.zeros(index.size, bool)
        for _ in range(max_iter):
            if not active.any():
                break
            k = np.flatnonzero(active)
            dx = gx[k] - xc[k, None, None]
            dy = gy[k] - yc[k, None, None]
            r2 = dx**2 + dy**2
            sigma = sigmas[index[k], None, None]
            w = np.where(r2 <= (4.0 * sigma) ** 2, np.exp(-r2 / (2.0 * sigma**2)), 0.0) * stamps[k]
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


def half_light_radii(
    data: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    total_flux: np.ndarray,
    max_radius: float = 15.0,
    segments: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Radius enclosing half of ``total_flux`` around each position (pixels), vectorised.

    Each pixel's flux is spread evenly over radii from its centre's distance - 0.5 to + 0.5
    (a smooth stand-in for exact circular apertures), and the half-flux radius is found by
    bisection for all sources at once. With a segmentation image, other sources' pixels are
    mirrored as in `windowed_centroids`. This is photutils' ``flux_radius(0.5)`` (with the
    Kron flux as ``total_flux``) without its per-source root-finding.

    Parameters
    ----------
    data : numpy.ndarray
        Background-subtracted image.
    x, y : numpy.ndarray
        Centres (0-based pixels).
    total_flux : numpy.ndarray
        Each source's total flux (e.g. its Kron flux).
    max_radius : float
        Largest radius searched.
    segments, labels : numpy.ndarray, optional
        Segmentation image and each source's label.

    Returns
    -------
    numpy.ndarray
        Half-light radii; NaN where the total flux is not positive, the stamp leaves the
        image, or half the flux is not reached within ``max_radius``.
    """
    x0 = np.asarray(x, float)
    y0 = np.asarray(y, float)
    total = np.asarray(total_flux, float)
    radii = np.full(len(x0), np.nan)
    half = int(np.ceil(max_radius)) + 1
    for index, gx, gy, stamps in _stamp_batches(data, x0, y0, half, segments, labels):
        m = index.size
        r = np.hypot(gx - x0[index, None, None], gy - y0[index, None, None]).reshape(m, -1)
        flux = stamps.reshape(m, -1)
        target = 0.5 * total[index]

        low, high = np.zeros(m), np.full(m, float(max_radius))
        for _ in range(24):  # to 1e-6 of max_radius
            mid = 0.5 * (low + high)
            below = _enclosed(flux, r, mid) < target
            low, high = np.where(below, mid, low), np.where(below, high, mid)
        radius = 0.5 * (low + high)
        found = (target > 0) & (_enclosed(flux, r, np.full(m, float(max_radius))) >= target)
        radii[index[found]] = radius[found]
    return radii


def _enclosed(flux: np.ndarray, r: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Flux within ``radius`` of each row, a pixel's flux spread over r - 0.5 ... r + 0.5."""
    return (flux * np.clip(radius[:, None] - r + 0.5, 0.0, 1.0)).sum(axis=1)


def _stamp_batches(
    data: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    half: int,
    segments: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    batch: int = 2000,
):
    """Stamps of (2 half + 1)^2 pixels centred on the pixel nearest each position.

    Yields ``(index, gx, gy, stamps)`` per batch of positions whose stamp lies on the image:
    their indices, the pixel coordinates (broadcastable to the stamps) and the float stamps.
    With a segmentation image, pixels of sources other than ``labels[index]`` are replaced by
    their mirror image through the stamp's centre (zero where that is another source too).
    """
    ny, nx = data.shape
    size = 2 * half + 1
    left = np.round(np.nan_to_num(x, nan=-1e6)).astype(int) - half
    bottom = np.round(np.nan_to_num(y, nan=-1e6)).astype(int) - half
    whole = (left >= 0) & (bottom >= 0) & (left + size <= nx) & (bottom + size <= ny)
    whole &= np.isfinite(x) & np.isfinite(y)
    offsets = np.arange(size)
    for start in range(0, len(x), batch):
        index = np.flatnonzero(whole[start : start + batch]) + start
        if index.size == 0:
            continue
        gx = left[index, None, None] + offsets[None, None, :]
        gy = bottom[index, None, None] + offsets[None, :, None]
        stamps = data[gy, gx].astype(float)
        if segments is not None and labels is not None:
            found = segments[gy, gx]
            other = (found != np.asarray(labels)[index, None, None]) & (found != 0)
            mirrored = np.where(other[:, ::-1, ::-1], 0.0, stamps[:, ::-1, ::-1])
            stamps = np.where(other, mirrored, stamps)
        yield index, gx, gy, stamps
