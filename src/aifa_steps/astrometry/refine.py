"""Refinement of a WCS with windowed centroids of every isolated reference star in the frame.

The starting WCS (``solve-field``'s or one handed on along the time series) predicts where the
reference stars are; their windowed centroids are measured on the background-subtracted image
and a TAN-SIP solution of the order the stars support is fitted to them, weighted by their
centroid errors, with one round of outlier rejection.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.stats import mad_std
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from aifa_steps.astrometry.tan_sip import fit_best_order
from aifa_steps.core.centroids import half_max_fwhm, windowed_centroids
from aifa_steps.core.images import coarse_background
from aifa_steps.photometry.refcat import select_around

__all__ = ["refine_wcs"]


def _nearest_neighbour_distance(x: np.ndarray, y: np.ndarray, within: float) -> np.ndarray:
    """Distance from each point to its nearest other point; infinite beyond ``within``.

    A sweep along x: after sorting, the k-th following point is compared for k = 1, 2, ...
    until no pair is closer than ``within`` in x. Cost grows with the number of points per
    strip of width ``within``, not with the square of the number of points.
    """
    n = len(x)
    order = np.argsort(x)
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    best = np.full(n, np.inf)
    for k in range(1, n):
        dx = xs[k:] - xs[:-k]
        close = dx <= within
        if not close.any():
            break
        d = np.where(close, np.hypot(dx, ys[k:] - ys[:-k]), np.inf)
        np.minimum(best[:-k], d, out=best[:-k])
        np.minimum(best[k:], d, out=best[k:])
    best[best > within] = np.inf
    distance = np.empty(n)
    distance[order] = best
    return distance


def refine_wcs(
    data: np.ndarray,
    wcs: WCS,
    catalogue: Table,
    mask: np.ndarray | None = None,
    mag_column: str = "rmag",
    mag_range: tuple[float, float] = (8.0, 18.0),
    box_size: int = 15,
    isolation_px: float = 12.0,
    sip_degree: int = 3,
) -> tuple[WCS, Table]:
    """Refine a WCS with centroids of every isolated, unmasked reference star in the frame.

    Parameters
    ----------
    data : numpy.ndarray
        Calibrated image.
    wcs : astropy.wcs.WCS
        Starting solution (``solve-field``'s).
    catalogue : astropy.table.Table
        Reference stars (``RA_ICRS``, ``DE_ICRS`` and ``mag_column``).
    mask : numpy.ndarray, optional
        Pixels not to use (saturated, hot).
    mag_column : str
        Magnitude used to select stars within ``mag_range``.
    mag_range : tuple of float
        Brightest and faintest magnitude used (saturated stars are masked anyway).
    box_size : int
        Search box (pixels): windowed centroids (SExtractor's XWIN) that wander further than a
        third of it from the predicted position are discarded.
    isolation_px : float
        Reference stars closer than this to another are skipped.
    sip_degree : int
        Highest order of the SIP distortion; a lower one (or none) is used when the stars do not
        support it (Bayesian information criterion).

    Returns
    -------
    wcs : astropy.wcs.WCS
        Refined TAN-SIP solution, reference pixel at the image centre.
    matched : astropy.table.Table
        ``x``, ``y`` (measured, 0-based), ``ra``, ``dec`` (catalogue), ``dx``, ``dy`` (fit
        residuals in pixels), ``residual_arcsec``.
    """
    ny, nx = data.shape
    centre = wcs.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
    radius = 0.6 * np.hypot(nx, ny) * np.mean(proj_plane_pixel_scales(wcs))
    stars = select_around(catalogue, centre.ra.deg, centre.dec.deg, radius)
    mags = np.asarray(stars[mag_column], dtype=float)
    stars = stars[(mags > mag_range[0]) & (mags < mag_range[1])]
    x, y = wcs.all_world2pix(
        np.asarray(stars["RA_ICRS"]), np.asarray(stars["DE_ICRS"]), 0, quiet=True
    )
    edge = box_size
    inside = (x > edge) & (x < nx - 1 - edge) & (y > edge) & (y < ny - 1 - edge)
    stars, x, y = stars[inside], x[inside], y[inside]
    if len(stars) < 6:
        raise ValueError(f"only {len(stars)} reference stars in the frame")
    iso = _nearest_neighbour_distance(x, y, isolation_px) > isolation_px
    stars, x, y = stars[iso], x[iso], y[iso]
    if mask is not None:
        half = box_size // 2
        clean = np.array(
            [
                not mask[
                    int(round(yy)) - half : int(round(yy)) + half + 1,
                    int(round(xx)) - half : int(round(xx)) + half + 1,
                ].any()
                for xx, yy in zip(x, y, strict=True)
            ],
            dtype=bool,
        )
        stars, x, y = stars[clean], x[clean], y[clean]
    # A coarse background (block medians of every 4th pixel) is enough for centroids.
    step = 4
    box = max(32, min(nx, ny) // 8) // step
    sample = np.asarray(data[::step, ::step], dtype=np.float32)
    if mask is not None:
        sample = np.where(mask[::step, ::step], np.float32(np.nan), sample)
    sample = np.nan_to_num(sample, nan=float(np.nanmedian(sample)))
    coarse = coarse_background(sample, box)
    residual = data - np.repeat(np.repeat(coarse, step, axis=0), step, axis=1)[:ny, :nx]
    sky_rms = float(mad_std(residual[::step, ::step], ignore_nan=True))
    brightest = np.argsort(np.asarray(stars[mag_column], dtype=float))[:30]
    fwhm = half_max_fwhm(residual, x[brightest], y[brightest])
    if not np.isfinite(fwhm):
        raise ValueError("no star to measure the FWHM on")
    cx, cy = windowed_centroids(residual, x, y, fwhm)
    good = np.isfinite(cx) & np.isfinite(cy) & (np.hypot(cx - x, cy - y) < box_size / 3)
    if good.sum() < 3 * (sip_degree + 1):
        raise ValueError(f"only {good.sum()} reference stars could be centroided")
    sky = SkyCoord(
        np.asarray(stars["RA_ICRS"][good]) * u.deg, np.asarray(stars["DE_ICRS"][good]) * u.deg
    )
    xy = (cx[good], cy[good])
    # Centroid error ~ (FWHM / 2.355) / (signal-to-noise), sky-limited, with a floor.
    flux = np.array(
        [
            residual[
                int(round(yy)) - 2 : int(round(yy)) + 3, int(round(xx)) - 2 : int(round(xx)) + 3
            ].sum()
            for xx, yy in zip(*xy, strict=True)
        ]
    ) * (np.pi * fwhm**2 / 25.0)
    noise = sky_rms * np.sqrt(np.pi) * fwhm
    snr = np.clip(flux / noise, 1.0, None)
    weights = 1.0 / ((fwhm / 2.355 / snr) ** 2 + 0.005**2)
    refined = fit_best_order(xy, sky, sip_degree, (ny, nx), weights)
    # One round of 3-sigma outlier rejection (blends, cosmic rays, proper motion).
    px, py = refined.world_to_pixel(sky)
    res = np.hypot(px - xy[0], py - xy[1])
    keep = res < max(3.0 * np.sqrt(np.mean(res**2)), 0.05)
    if (~keep).any() and keep.sum() >= 12:
        sky, xy, weights = sky[keep], (xy[0][keep], xy[1][keep]), weights[keep]
        refined = fit_best_order(xy, sky, sip_degree, (ny, nx), weights)
    refined.pixel_shape = (nx, ny)
    px, py = refined.world_to_pixel(sky)
    scale = np.mean(proj_plane_pixel_scales(refined)) * 3600.0
    matched = Table(
        {
            "x": xy[0],
            "y": xy[1],
            "ra": sky.ra.deg,
            "dec": sky.dec.deg,
            "dx": xy[0] - px,
            "dy": xy[1] - py,
        }
    )
    matched["residual_arcsec"] = np.hypot(matched["dx"], matched["dy"]) * scale
    matched.meta["FWHM_ARCSEC"] = float(fwhm * scale)
    return refined, matched
