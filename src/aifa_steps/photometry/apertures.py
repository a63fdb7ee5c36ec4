"""Forced aperture photometry of calibrated frames at fixed sky positions.

Forced photometry measures every reference position through circular sky apertures (radii in
arcsec, converted with the frame's WCS) on the background-subtracted image; the error of each
sum follows the CCD equation through the frame's uncertainty plane (shot noise of star and sky,
read noise, dark) plus the uncertainty of the background under the aperture.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from aifa_steps.core.formats import SATURATED, aperture_keys, flux_column, flux_err_column
from aifa_steps.photometry.background import estimate_background

__all__ = [
    "FLAG_SATURATED",
    "FLAG_MASKED",
    "FLAG_EDGE",
    "FLAG_OFF_FRAME",
    "forced_photometry",
    "local_sky",
]

FLAG_SATURATED = 1  # a saturated pixel inside the aperture
FLAG_MASKED = 2  # another bad pixel (hot, dead, cosmic ray) inside the aperture
FLAG_EDGE = 4  # the aperture is partly off the frame
FLAG_OFF_FRAME = 8  # the centre is off the frame: no measurement


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
    keys: list[str] | None = None,
    annulus_arcsec: tuple[float, float] | None = None,
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
    keys : list of str, optional
        Column suffixes of the radii (default: the radius, e.g. ``6``; automatic apertures
        use their multiple of the FWHM, e.g. ``1.5fwhm``).
    annulus_arcsec : tuple of float, optional
        Inner and outer radius of a sky annulus: the sigma-clipped median of the
        background-subtracted frame in it (`local_sky`) is subtracted from every aperture as
        a local correction of the background, and its error added (column ``sky_local``,
        ADU per pixel). None: the background alone.

    Returns
    -------
    astropy.table.Table
        ``id``, ``ra``, ``dec``, ``x``, ``y`` (0-based pixels) and for each radius r (as
        ``<r>`` = e.g. ``6``): ``flux_<r>`` (background-subtracted sum, ADU),
        ``flux_err_<r>``, ``bkg_<r>`` (background summed over the aperture, ADU),
        ``area_<r>`` (pixels on the frame) and ``flag_<r>`` (bits `FLAG_SATURATED`,
        `FLAG_MASKED`, `FLAG_EDGE`, `FLAG_OFF_FRAME`); ``peak`` (highest pixel in the smallest
        aperture, background-subtracted).
    """
    from photutils.aperture import CircularAperture, aperture_photometry

    ny, nx = data.shape
    bad = (flags > 0) if flags is not None else None
    if background is None or background_rms is None:
        background, background_rms = estimate_background(data, bad, background_box)
    box = max(8, min(background_box, min(data.shape) // 3))
    residual = np.subtract(data, background, dtype=np.float32)
    ra = np.atleast_1d(np.asarray(ra, dtype=float))
    dec = np.atleast_1d(np.asarray(dec, dtype=float))
    coords = SkyCoord(ra * u.deg, dec * u.deg)
    x, y = wcs.world_to_pixel(coords)
    table = Table()
    table["id"] = np.arange(1, len(ra) + 1) if ids is None else np.asarray(ids)
    table["ra"], table["dec"], table["x"], table["y"] = ra, dec, x, y
    inside = (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
    scale = float(np.mean(proj_plane_pixel_scales(wcs)) * 3600.0)
    # Distance from each star to its nearest saturated and other flagged pixel (within reach
    # of the largest aperture): a flag for every radius at once.
    reach_px = max(radii_arcsec) / scale + 0.5
    near_saturated = _distance_to_flagged(flags, SATURATED, x, y, reach_px)
    near_bad = _distance_to_flagged(flags, ~np.uint8(SATURATED) & 0xFF, x, y, reach_px)
    # Smooth maps: their value at the centre stands for the aperture.
    xi = np.clip(np.round(np.nan_to_num(x)).astype(int), 0, nx - 1)
    yi = np.clip(np.round(np.nan_to_num(y)).astype(int), 0, ny - 1)
    sky_at = np.asarray(background, float)[yi, xi]
    rms_at = np.asarray(background_rms, float)[yi, xi]
    n = len(ra)
    idx = np.flatnonzero(inside)
    sky_local, sky_local_err = np.zeros(n), np.zeros(n)
    if annulus_arcsec is not None and idx.size:
        level, spread, count = local_sky(
            residual,
            x[idx],
            y[idx],
            annulus_arcsec[0] / scale,
            annulus_arcsec[1] / scale,
            bad,
        )
        sky_local[idx] = np.nan_to_num(level)
        # The median of n pixels: 1.25 sigma / sqrt(n) per pixel, the same over the aperture.
        sky_local_err[idx] = np.where(count > 0, 1.2533 * spread / np.sqrt(np.maximum(count, 1)), 0)
    # Pixel apertures at the converted positions, radii through the frame's pixel scale
    # (photutils' sky apertures would compute the WCS Jacobian again for every radius).
    xy = np.column_stack([x[idx], y[idx]])
    apertures = [CircularAperture(xy, radius / scale) for radius in radii_arcsec]
    if idx.size:
        # One pass over the image for all radii; the peak: the highest pixel whose centre is
        # in the smallest aperture.
        sums = aperture_photometry(residual, apertures, error=uncertainty)
        peak = np.full(n, np.nan)
        peak[idx] = _peak_in_circle(residual, x[idx], y[idx], radii_arcsec[0] / scale)
    keys = list(keys) if keys is not None else aperture_keys(radii_arcsec)
    for k, (radius, key) in enumerate(zip(radii_arcsec, keys, strict=True)):
        flux, err, bkg_sum, area = (np.full(n, np.nan) for _ in range(4))
        flag = np.where(inside, 0, FLAG_OFF_FRAME).astype(np.int16)
        if idx.size:
            r_px = radius / scale
            edge = (
                (x[idx] < r_px)
                | (x[idx] > nx - 1 - r_px)
                | (y[idx] < r_px)
                | (y[idx] > ny - 1 - r_px)
            )
            # The area on the frame: the full circle, except at the edges.
            area[idx] = np.pi * r_px**2
            if edge.any():
                area[idx[edge]] = CircularAperture(xy[edge], r_px).area_overlap(residual)
            flux[idx] = sums[f"aperture_sum_{k}"] - sky_local[idx] * area[idx]
            bkg_sum[idx] = (sky_at[idx] + sky_local[idx]) * area[idx]
            # The background level is a median of ~box^2 pixels: error 1.25 RMS / box per pixel,
            # the same for every pixel of the aperture.
            err[idx] = np.sqrt(
                np.asarray(sums[f"aperture_sum_err_{k}"]) ** 2
                + (1.2533 * rms_at[idx] / box * area[idx]) ** 2
                + (sky_local_err[idx] * area[idx]) ** 2
            )
            # A flagged pixel touches the aperture when its centre is within r + 0.5 px.
            reach = r_px + 0.5
            flag[idx] |= np.where(near_saturated[idx] <= reach, FLAG_SATURATED, 0).astype(np.int16)
            flag[idx] |= np.where(near_bad[idx] <= reach, FLAG_MASKED, 0).astype(np.int16)
            flag[idx] |= np.where(edge, FLAG_EDGE, 0).astype(np.int16)
        table[flux_column(key)] = flux
        table[flux_err_column(key)] = err
        table[f"bkg_{key}"] = bkg_sum
        table[f"area_{key}"] = area
        table[f"flag_{key}"] = flag
    table["peak"] = peak if idx.size else np.full(n, np.nan)
    if annulus_arcsec is not None:
        table["sky_local"] = np.where(inside, sky_local, np.nan)
    return table


def local_sky(
    residual: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    r_in: float,
    r_out: float,
    bad: np.ndarray | None = None,
    sigma: float = 3.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sigma-clipped median, standard deviation and pixel count in an annulus around stars.

    Parameters
    ----------
    residual : numpy.ndarray
        Image (e.g. the frame minus its background).
    x, y : numpy.ndarray
        Centres (0-based pixels, finite).
    r_in, r_out : float
        Annulus radii (pixels).
    bad : numpy.ndarray, optional
        Pixels left out (True = bad).
    sigma : float
        Clipping threshold (neighbouring stars in the annulus are clipped).

    Returns
    -------
    median, std : numpy.ndarray
        ADU per pixel (NaN without pixels).
    count : numpy.ndarray
        Pixels kept.
    """
    from astropy.stats import SigmaClip
    from photutils.aperture import ApertureStats, CircularAnnulus

    if len(x) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, int)
    annulus = CircularAnnulus(np.column_stack([x, y]), r_in, r_out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = ApertureStats(
            residual,
            annulus,
            mask=bad,
            sigma_clip=SigmaClip(sigma=sigma, maxiters=5),
            sum_method="center",
        )
        median = np.atleast_1d(np.asarray(stats.median, float))
        std = np.atleast_1d(np.asarray(stats.std, float))
        count = np.atleast_1d(np.asarray(stats.sum_aper_area.value, float)).round().astype(int)
    return median, std, count


def _boxes_around(
    shape: tuple[int, int], x: np.ndarray, y: np.ndarray, half: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel rows and columns of the (2 half + 1)^2 box around the pixel nearest each (x, y).

    Returns ``rows``, ``cols`` (clipped to the frame) and ``valid`` (the pixel is on the
    frame), each of shape (len(x), (2 half + 1)^2).
    """
    ny, nx = shape
    offsets = np.arange(-half, half + 1)
    dy, dx = (o.ravel() for o in np.meshgrid(offsets, offsets, indexing="ij"))
    rows = np.round(y).astype(int)[:, None] + dy
    cols = np.round(x).astype(int)[:, None] + dx
    valid = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
    return np.clip(rows, 0, ny - 1), np.clip(cols, 0, nx - 1), valid


def _in_chunks(n: int, size: int = 2000):
    """Slices of at most ``size`` items over ``n`` (bounds the memory of per-star boxes)."""
    return (slice(start, min(start + size, n)) for start in range(0, n, size))


def _peak_in_circle(image: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Highest value among the pixels whose centres lie within ``radius`` of each (x, y).

    Positions must be finite; NaN where no such pixel is on the frame.
    """
    peak = np.full(len(x), np.nan)
    half = int(np.ceil(radius)) + 1
    for part in _in_chunks(len(x)):
        rows, cols, valid = _boxes_around(image.shape, x[part], y[part], half)
        near = (cols - x[part, None]) ** 2 + (rows - y[part, None]) ** 2 <= radius**2
        values = np.where(valid & near, image[rows, cols], -np.inf)
        values = np.where(np.isnan(values), -np.inf, values)
        best = values.max(axis=1)
        peak[part] = np.where(np.isfinite(best), best, np.nan)
    return peak


def _distance_to_flagged(
    flags: np.ndarray | None, bits: int, x: np.ndarray, y: np.ndarray, reach: float
) -> np.ndarray:
    """Distance (pixels) from each position to the nearest pixel with any of ``bits`` set.

    Only pixels within ``reach`` are searched: farther (and for non-finite positions) the
    distance is infinite.
    """
    far = np.full(len(x), np.inf)
    if flags is None:
        return far
    flags = np.asarray(flags)
    finite = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    half = int(np.ceil(reach)) + 1
    for part in _in_chunks(len(finite)):
        which = finite[part]
        rows, cols, valid = _boxes_around(flags.shape, x[which], y[which], half)
        flagged = valid & ((flags[rows, cols] & np.uint8(bits)) != 0)
        squared = (cols - x[which, None]) ** 2 + (rows - y[which, None]) ** 2
        nearest = np.sqrt(np.where(flagged, squared, np.inf).min(axis=1))
        far[which] = np.where(nearest <= reach, nearest, np.inf)
    return far
