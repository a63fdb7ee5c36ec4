"""The sky background of a calibrated frame and its RMS.

The background is photutils' `~photutils.background.Background2D` (median in boxes, median
filter), estimated on a sub-sample of the pixels, with the stars of a first pass masked in a
second, and interpolated linearly between the box centres.
"""

from __future__ import annotations

import warnings

import numpy as np

from aifa_steps.products.resample import expand_grid

__all__ = ["estimate_background"]


def estimate_background(
    data: np.ndarray,
    mask: np.ndarray | None = None,
    box_size: int = 300,
    filter_size: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth sky background and its RMS (photutils Background2D, median estimator).

    The box statistics are computed on every ``box_size // 100``-th pixel in each direction
    (boxes of 300 pixels keep 10^4 samples), stars found in a first pass are masked in a second,
    and the box values are interpolated linearly to every pixel.

    Parameters
    ----------
    data : numpy.ndarray
        Calibrated image.
    mask : numpy.ndarray, optional
        Pixels to ignore (True = bad).
    box_size : int
        Box size in pixels (the tutorial uses 300 for full frames); reduced to a third of the
        shorter image side for small frames.
    filter_size : int
        Median filter over boxes.

    Returns
    -------
    background, rms : numpy.ndarray
        float32 images.
    """
    from photutils.background import (
        Background2D,
        BkgZoomInterpolator,
        MedianBackground,
        StdBackgroundRMS,
    )
    from scipy.ndimage import median_filter

    box = int(max(8, min(box_size, min(data.shape) // 3)))
    image = np.asarray(data, dtype=np.float32)
    base = np.zeros(image.shape, bool) if mask is None else np.asarray(mask, bool)
    # The box statistics use every `step`-th pixel in each direction: a 300-pixel box still
    # holds 10^4 of them (its median good to ~1 % of the noise), at a ninth of the cost.
    step = max(1, box // 100)
    sub = image[::step, ::step]
    sub_bad = base[::step, ::step]
    # Boxes of about the requested size that tile each axis with a last box at least 90 %
    # full: photutils leaves out smaller edge boxes and fills them in poorly.
    sub_box = tuple(_tiling_box(n, max(8, box // step)) for n in sub.shape)

    def estimate(bad, exclude=10.0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Background2D(
                sub,
                sub_box,
                mask=bad,
                filter_size=1,  # the mesh is median-filtered in `expand`
                bkg_estimator=MedianBackground(),
                bkg_rms_estimator=StdBackgroundRMS(),
                exclude_percentile=exclude,
                interpolator=BkgZoomInterpolator(order=1),
            )

    # Linear interpolation between the box centres (extrapolated to the edges), separable and
    # element by element (the same pixels whatever the BLAS and its threads). The centre of a
    # box is the middle of its pixels (the last box may be partial).
    n_boxes = [-(-size // b) for b, size in zip(sub_box, sub.shape, strict=True)]
    centres = [
        step * (np.minimum(np.arange(1, n + 1) * b, size) - 1 + np.arange(n) * b) / 2.0
        for n, b, size in zip(n_boxes, sub_box, sub.shape, strict=True)
    ]

    def expand(mesh):
        mesh = np.asarray(mesh, np.float32)
        if not np.all(np.isfinite(mesh)):
            mesh = np.where(np.isfinite(mesh), mesh, np.nanmedian(mesh))
        # Median filter over boxes, the mesh continued linearly beyond its borders (an odd
        # reflection), so the outer boxes of a tilted sky keep their level.
        if filter_size > 1:
            pad = filter_size // 2
            padded = np.pad(mesh, pad, mode="reflect", reflect_type="odd")
            mesh = median_filter(padded, size=filter_size)[pad:-pad, pad:-pad]
        return expand_grid(mesh, centres[0], centres[1], image.shape)

    try:
        bkg = estimate(sub_bad)
    except ValueError:
        # No box has enough good pixels (a frame mostly masked or without noise): one
        # sigma-clipped level for the whole frame.
        from astropy.stats import sigma_clipped_stats

        good = image[~base]
        if good.size == 0:
            raise ValueError("no unmasked pixel to estimate the background from") from None
        _, level, noise = sigma_clipped_stats(good[:: max(1, good.size // 1_000_000)])
        return (
            np.full(image.shape, level, np.float32),
            np.full(image.shape, noise, np.float32),
        )
    # Mask the stars and estimate again: their wings would otherwise raise the background.
    # A star pixel: the 3 x 3 mean around it is 3 of its own sigmas (rms / 3) above the first
    # estimate, so faint stars count but noise alone marks 0.1 % of the pixels (a threshold
    # on single pixels at 2 rms marks 2 %, and grown by 4 pixels that masks most of the sky).
    # The mask is made at full resolution and grown by 4 pixels.
    above = _mean3x3(image - expand(bkg.background_mesh)) > expand(bkg.background_rms_mesh)
    sources = _dilated_samples(above, 4, step)
    if (~(sources | sub_bad)).mean() > 0.3:
        try:
            bkg = estimate(sub_bad | sources, exclude=60.0)
        except ValueError:  # stars everywhere: keep the first estimate
            pass
    return expand(bkg.background_mesh), expand(bkg.background_rms_mesh)


def _mean3x3(image: np.ndarray) -> np.ndarray:
    """Mean of the 3 x 3 pixels around each pixel (float32; the outermost pixels get 0)."""
    rows = image[:, :-2] + image[:, 1:-1]
    rows += image[:, 2:]
    mean = np.zeros(image.shape, np.float32)
    inner = mean[1:-1, 1:-1]
    np.add(rows[:-2], rows[1:-1], out=inner)
    inner += rows[2:]
    inner *= np.float32(1.0 / 9.0)
    return mean


def _dilated_samples(mask: np.ndarray, radius: int, step: int) -> np.ndarray:
    """``binary_dilation(mask, iterations=radius)[::step, ::step]``, computed at the samples only.

    The dilation by the cross-shaped element ``radius`` times reaches every pixel within a
    city-block distance of ``radius``; only every ``step``-th pixel of it is needed.
    """
    ny, nx = mask.shape
    padded = np.zeros((ny + 2 * radius, nx + 2 * radius), bool)
    padded[radius:-radius, radius:-radius] = mask
    out = np.zeros(mask[::step, ::step].shape, bool)
    for dy in range(-radius, radius + 1):
        reach = radius - abs(dy)
        for dx in range(-reach, reach + 1):
            y0, x0 = radius + dy, radius + dx
            out |= padded[y0 : y0 + ny : step, x0 : x0 + nx : step]
    return out


def _tiling_box(n: int, size: int) -> int:
    """A box size near ``size`` whose last box along an axis of ``n`` pixels is >= 90 % full."""
    best, best_fill = size, 0.0
    approx = max(1, round(n / size))
    for count in range(max(1, approx - 3), approx + 4):
        box = -(-n // count)
        fill = (n - (count - 1) * box) / box
        good = fill >= 0.9 and (best_fill < 0.9 or abs(box - size) < abs(best - size))
        if good or (best_fill < 0.9 and fill > best_fill):
            best, best_fill = box, fill
    return int(best)
