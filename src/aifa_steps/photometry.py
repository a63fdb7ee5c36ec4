"""Background and forced aperture photometry of calibrated frames.

The background is photutils' `~photutils.background.Background2D` (median in boxes, median
filter). Forced photometry measures every reference position through circular sky apertures
(radii in arcsec, converted with the frame's WCS) on the background-subtracted image; the error
of each sum follows the CCD equation through the frame's uncertainty plane (shot noise of star
and sky, read noise, dark) plus the uncertainty of the background under the aperture.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from .badpixels import SATURATED

__all__ = [
    "FLAG_SATURATED",
    "FLAG_MASKED",
    "FLAG_EDGE",
    "FLAG_OFF_FRAME",
    "estimate_background",
    "forced_photometry",
]

FLAG_SATURATED = 1  # a saturated pixel inside the aperture
FLAG_MASKED = 2  # another bad pixel (hot, dead, cosmic ray) inside the aperture
FLAG_EDGE = 4  # the aperture is partly off the frame
FLAG_OFF_FRAME = 8  # the centre is off the frame: no measurement


def estimate_background(
    data: np.ndarray,
    mask: np.ndarray | None = None,
    box_size: int = 300,
    filter_size: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth sky background and its RMS (photutils Background2D, median estimator).

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
    from photutils.background import Background2D, MedianBackground, StdBackgroundRMS
    from scipy.ndimage import binary_dilation

    box = int(max(8, min(box_size, min(data.shape) // 3)))
    image = np.asarray(data, dtype=np.float32)
    base = np.zeros(image.shape, bool) if mask is None else np.asarray(mask, bool)

    def estimate(bad, exclude=10.0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Background2D(
                image,
                box,
                mask=bad,
                filter_size=(filter_size, filter_size),
                bkg_estimator=MedianBackground(),
                bkg_rms_estimator=StdBackgroundRMS(),
                exclude_percentile=exclude,
            )

    bkg = estimate(base)
    # Mask the stars (2 sigma above the first estimate, grown by 4 pixels) and estimate again:
    # their wings would otherwise raise the background.
    sources = binary_dilation(image > bkg.background + 2.0 * bkg.background_rms, iterations=4)
    if (~(sources | base)).mean() > 0.3:
        bkg = estimate(base | sources, exclude=60.0)
    return bkg.background.astype(np.float32), bkg.background_rms.astype(np.float32)


def forced_photometry(
    data: np.ndarray,
    uncertainty: np.ndarray,
    wcs: WCS,
    ra: np.ndarray,
    dec: np.ndarray,
    radii_arcsec: tuple[float, ...] = (4.0, 6.0, 8.0, 10.0),
    background: np.ndarray | None = None,
    background_rms: np.ndarray | None = None,
    flags: np.ndarray | None = None,
    ids: np.ndarray | None = None,
    background_box: int = 300,
) -> Table:
    """Aperture photometry at fixed sky positions, one set of columns per radius.

    Parameters
    ----------
    data : numpy.ndarray
        Calibrated image (ADU).
    uncertainty : numpy.ndarray
        Per-pixel standard deviation from the CCD equation (the frame's ``UNCERT``).
    wcs : astropy.wcs.WCS
        The frame's solved WCS.
    ra, dec : numpy.ndarray
        Positions (deg).
    radii_arcsec : tuple of float
        Aperture radii.
    background, background_rms : numpy.ndarray, optional
        Sky background and its RMS; estimated with `estimate_background` when not given.
    flags : numpy.ndarray, optional
        Bit flags of the frame (``FLAGS``): saturated and other bad pixels flag a measurement.
    ids : numpy.ndarray, optional
        Identifiers carried into the table.
    background_box : int
        Box size of the background estimate: its level is known to ~1.25 RMS / box per pixel,
        an error added (fully correlated) over the aperture.

    Returns
    -------
    astropy.table.Table
        ``id``, ``ra``, ``dec``, ``x``, ``y`` (0-based pixels) and for each radius r (as
        ``<r>`` = e.g. ``6``): ``flux_<r>`` (background-subtracted sum, ADU),
        ``flux_err_<r>``, ``peak_<r>`` (highest pixel, background-subtracted),
        ``bkg_<r>`` (background summed over the aperture, ADU), ``area_<r>`` (pixels) and
        ``flag_<r>`` (bits `FLAG_SATURATED`, `FLAG_MASKED`, `FLAG_EDGE`, `FLAG_OFF_FRAME`).
    """
    from photutils.aperture import ApertureStats, SkyCircularAperture

    ny, nx = data.shape
    bad = (flags > 0) if flags is not None else None
    if background is None or background_rms is None:
        background, background_rms = estimate_background(data, bad, background_box)
    box = max(8, min(background_box, min(data.shape) // 3))
    residual = np.asarray(data, dtype=np.float64) - background
    ra = np.atleast_1d(np.asarray(ra, dtype=float))
    dec = np.atleast_1d(np.asarray(dec, dtype=float))
    coords = SkyCoord(ra * u.deg, dec * u.deg)
    x, y = wcs.world_to_pixel(coords)
    table = Table()
    table["id"] = np.arange(1, len(ra) + 1) if ids is None else np.asarray(ids)
    table["ra"], table["dec"], table["x"], table["y"] = ra, dec, x, y
    inside = (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
    scale = float(np.mean(proj_plane_pixel_scales(wcs)) * 3600.0)
    saturated = (flags & SATURATED) > 0 if flags is not None else np.zeros(data.shape, bool)
    other_bad = (flags & ~np.uint8(SATURATED)) > 0 if flags is not None else saturated
    for radius in radii_arcsec:
        key = f"{radius:g}"
        n = len(ra)
        flux, err, peak, bkg_sum, area = (np.full(n, np.nan) for _ in range(5))
        flag = np.where(inside, 0, FLAG_OFF_FRAME).astype(np.int16)
        idx = np.flatnonzero(inside)
        if idx.size:
            aperture = SkyCircularAperture(coords[idx], radius * u.arcsec).to_pixel(wcs)
            stats = ApertureStats(residual, aperture, error=uncertainty)
            bstats = ApertureStats(background, aperture)
            rstats = ApertureStats(background_rms, aperture)
            flux[idx] = stats.sum
            peak[idx] = stats.max
            bkg_sum[idx] = bstats.sum
            area[idx] = stats.sum_aper_area.value
            # The background level is a median of ~box^2 pixels: error 1.25 RMS / box per pixel,
            # the same for every pixel of the aperture.
            err[idx] = np.hypot(stats.sum_err, 1.2533 * rstats.mean / box * area[idx])
            sat = ApertureStats(saturated.astype(float), aperture).max
            bad_px = ApertureStats(other_bad.astype(float), aperture).max
            r_px = radius / scale
            edge = (
                (x[idx] < r_px)
                | (x[idx] > nx - 1 - r_px)
                | (y[idx] < r_px)
                | (y[idx] > ny - 1 - r_px)
            )
            flag[idx] |= np.where(sat > 0, FLAG_SATURATED, 0).astype(np.int16)
            flag[idx] |= np.where(bad_px > 0, FLAG_MASKED, 0).astype(np.int16)
            flag[idx] |= np.where(edge, FLAG_EDGE, 0).astype(np.int16)
        table[f"flux_{key}"] = flux
        table[f"flux_err_{key}"] = err
        table[f"peak_{key}"] = peak
        table[f"bkg_{key}"] = bkg_sum
        table[f"area_{key}"] = area
        table[f"flag_{key}"] = flag
    return table
