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

from aifa_steps.core.formats import SATURATED
from aifa_steps.products.resample import linear_weights

__all__ = [
    "FLAG_SATURATED",
    "FLAG_MASKED",
    "FLAG_EDGE",
    "FLAG_OFF_FRAME",
    "estimate_background",
    "forced_photometry",
    "isolated_sources",
    "aperture_corrections",
    "moffat_growth",
    "frame_seeing",
    "star_fwhm",
    "local_sky",
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

    # Linear interpolation between the box centres (extrapolated to the edges), as separable
    # matrix products. The centre of a box is the middle of its pixels (the last box may be
    # partial); both passes share the boxes, so the weights are computed once.
    n_boxes = [-(-size // b) for b, size in zip(sub_box, sub.shape, strict=True)]
    centres = [
        step * (np.minimum(np.arange(1, n + 1) * b, size) - 1 + np.arange(n) * b) / 2.0
        for n, b, size in zip(n_boxes, sub_box, sub.shape, strict=True)
    ]
    weights_y = linear_weights(np.arange(image.shape[0]), centres[0])
    weights_x = linear_weights(np.arange(image.shape[1]), centres[1])

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
        return (weights_y @ mesh @ weights_x.T).astype(np.float32)

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
    keys = list(keys) if keys is not None else [f"{radius:g}" for radius in radii_arcsec]
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
        table[f"flux_{key}"] = flux
        table[f"flux_err_{key}"] = err
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


def isolated_sources(
    ra: np.ndarray, dec: np.ndarray, flux: np.ndarray, radius_arcsec: float, max_ratio: float = 0.01
) -> np.ndarray:
    """Sources without a neighbour that would add more than a small fraction of their flux.

    Parameters
    ----------
    ra, dec : numpy.ndarray
        Positions (deg) of all detected sources.
    flux : numpy.ndarray
        Their fluxes (any consistent unit).
    radius_arcsec : float
        Neighbours closer than this count (e.g. the largest aperture plus the seeing).
    max_ratio : float
        A neighbour brighter than this fraction of the source's flux spoils it.

    Returns
    -------
    numpy.ndarray
        True for isolated sources.
    """
    from astropy.coordinates import search_around_sky

    coords = SkyCoord(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg)
    flux = np.asarray(flux, dtype=float)
    i, j, _, _ = search_around_sky(coords, coords, radius_arcsec * u.arcsec)
    pair = i != j
    spoiled = np.zeros(len(coords), bool)
    spoiled[i[pair][flux[j[pair]] > max_ratio * flux[i[pair]]]] = True
    return ~spoiled


def moffat_growth(radius: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Fraction of a circular Moffat profile's flux inside ``radius`` (same unit as alpha)."""
    return 1.0 - (1.0 + (np.asarray(radius, float) / alpha) ** 2) ** (1.0 - beta)


def aperture_corrections(
    residual: np.ndarray,
    wcs: WCS,
    ra: np.ndarray,
    dec: np.ndarray,
    radii_arcsec: tuple[float, ...],
    fit_radius_arcsec: float,
) -> tuple[np.ndarray, np.ndarray, Table, tuple[float, float]]:
    """Fraction of a star's total flux inside each aperture, from the curve of growth.

    The curves of growth of bright, isolated, unsaturated stars are measured out to
    ``fit_radius_arcsec`` (about three seeing FWHM, where a Moffat profile with beta = 3 holds
    99.9 % of its flux); stars with a deviating curve are rejected and the rest summed (flux
    weighted) and normalised at the fit radius. That curve is fitted with the curve of growth
    of a Moffat profile plus a uniform excess of light (growing with the area: what the smooth
    background misses around stars in a crowded field). The fit gives the small flux beyond
    the fit radius and removes the excess from the measured curve, which then gives the
    fraction of the total flux in each aperture. Measuring to a
    moderate radius and extrapolating is robust in crowded fields, where the flux inside a
    radius of several seeing FWHM is spoiled by neighbours and by errors of the background.

    Parameters
    ----------
    residual : numpy.ndarray
        Background-subtracted image.
    wcs : astropy.wcs.WCS
        The frame's WCS.
    ra, dec : numpy.ndarray
        Positions of the chosen stars (bright, isolated, unsaturated).
    radii_arcsec : tuple of float
        Photometry apertures.
    fit_radius_arcsec : float
        Outer radius of the measured curve of growth (about three seeing FWHM). Apertures
        beyond it take the fitted Moffat curve: in a crowded field their measured fluxes hold
        light of neighbours that the zero point of that aperture then absorbs.

    Returns
    -------
    fraction, fraction_err : numpy.ndarray
        Enclosed fraction of the total flux for each radius and its uncertainty (NaN without
        stars).
    growth : astropy.table.Table
        The median curve of growth as a fraction of the total flux: ``radius_arcsec``,
        ``fraction``, ``scatter``, ``model`` (fitted Moffat), ``n_stars``.
    moffat : tuple of float
        Fitted Moffat ``alpha`` (arcsec) and ``beta``.
    """
    from astropy.stats import sigma_clipped_stats
    from photutils.aperture import CircularAperture, aperture_photometry
    from scipy.optimize import least_squares

    fit_radius = float(fit_radius_arcsec)
    measured = np.asarray(radii_arcsec, float)
    grid = np.unique(
        np.concatenate([np.linspace(0.5, fit_radius, 24), measured[measured < fit_radius]])
    )
    n_radii = len(radii_arcsec)
    ny, nx = residual.shape
    coords = SkyCoord(np.asarray(ra, float) * u.deg, np.asarray(dec, float) * u.deg)
    curves = np.empty((0, len(grid)))
    if len(coords):
        x, y = wcs.world_to_pixel(coords)
        scale = float(np.mean(proj_plane_pixel_scales(wcs)) * 3600.0)
        margin = fit_radius / scale + 1  # the sky annulus may leave the frame in part
        inside = (x > margin) & (x < nx - 1 - margin) & (y > margin) & (y < ny - 1 - margin)
        coords = coords[inside]
    if len(coords):
        # Pixel apertures at positions converted once, radii through the pixel scale.
        xy = np.column_stack([x[inside], y[inside]])
        apertures = [CircularAperture(xy, r / scale) for r in grid]
        sums = aperture_photometry(residual, apertures)
        curves = np.array([np.asarray(sums[f"aperture_sum_{k}"]) for k in range(len(grid))]).T
        curves = curves[curves[:, -1] > 0]
    n = len(curves)
    if n == 0:
        growth = Table({"radius_arcsec": grid, "fraction": np.full(len(grid), np.nan)})
        growth["scatter"], growth["model"], growth["n_stars"] = np.nan, np.nan, 0
        nan = np.full(n_radii, np.nan)
        return nan, nan, growth, (np.nan, np.nan)
    # Stars whose normalised curve departs from the others (a neighbour, a cosmic ray) are
    # rejected; the curve is then the flux-weighted mean: the brightest stars, whose light the
    # faint unresolved stars and the background's errors spoil least, count most.
    normalised = curves / curves[:, -1:]
    _, centre, spread = sigma_clipped_stats(normalised, sigma=3.0, axis=0, stdfunc="mad_std")
    # Largest departure of each star in units of the scatter (at least 0.5 % of the flux:
    # pixel phase and noise make the cores differ that much).
    deviation = np.max(np.abs(normalised - centre) / np.maximum(spread, 0.005), axis=1)
    keep = deviation < 3.0
    if keep.sum() < min(3, n):
        keep = deviation <= np.sort(deviation)[min(3, n) - 1]
    curves, normalised, n = curves[keep], normalised[keep], int(keep.sum())
    # Flux weights, capped at the third brightest star's flux: the bright stars, whose light
    # faint neighbours and background errors spoil least, count most, and no single one
    # decides.
    total_flux = curves[:, -1]
    weight = np.minimum(total_flux, np.sort(total_flux)[-min(3, n)])
    median = (weight[:, None] * normalised).sum(axis=0) / weight.sum()
    std = normalised.std(axis=0) if n > 1 else np.full(len(grid), 0.01)
    sigma = np.maximum(std, 1e-3)

    # Model: a Moffat curve of growth plus a uniform excess of light (what the smooth
    # background misses around the stars: halos of bright stars, unresolved faint stars),
    # which grows with the aperture's area. ``excess`` is that light inside the fit radius in
    # units of the star's total flux.
    area = (grid / fit_radius) ** 2

    def residuals(p):
        alpha, beta, excess = p
        grow = moffat_growth(grid, alpha, beta)
        model = (grow + excess * area) / (moffat_growth(fit_radius, alpha, beta) + excess)
        # A weak prior keeps the excess near zero unless the curve asks for it (with few
        # stars it would otherwise trade off against beta).
        return np.append((model - median) / sigma, excess / 0.02)

    half = grid[int(np.argmin(np.abs(median - 0.5)))]
    fit = least_squares(
        residuals, x0=[max(half, 0.3), 3.0, 0.0], bounds=([0.05, 1.5, -0.2], [50.0, 10.0, 0.2])
    )
    alpha, beta, excess = (float(v) for v in fit.x)
    total = moffat_growth(fit_radius, alpha, beta) + excess
    # The measured curve in units of the total flux, without the fitted background excess.
    median = median - excess * area / total
    growth = Table(
        {
            "radius_arcsec": grid,
            "fraction": median * total,
            "scatter": std * total,
            "model": moffat_growth(grid, alpha, beta),
            "n_stars": np.full(len(grid), n),
        }
    )
    # Apertures inside the fit radius: the measured curve; outside: the fitted Moffat curve.
    fraction = np.array(
        [
            median[int(np.argmin(np.abs(grid - r)))] * total
            if r < fit_radius
            else moffat_growth(r, alpha, beta)
            for r in measured
        ]
    )
    scatter = np.array(
        [std[int(np.argmin(np.abs(grid - r)))] if r < fit_radius else 0.0 for r in measured]
    )
    # Statistical error of the curve plus a tenth of the extrapolated light (the wings of a
    # real PSF are not exactly Moffat).
    enclosed = moffat_growth(fit_radius, alpha, beta)
    fraction_err = np.hypot(scatter / np.sqrt(n), 0.1 * (1.0 - enclosed) * fraction)
    return fraction, fraction_err, growth, (alpha, beta)


def star_fwhm(
    residual: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    box: int = 15,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """FWHM (pixels) of circular 2-D Gaussian fits to stars (photutils ``fit_fwhm``).

    Parameters
    ----------
    residual : numpy.ndarray
        Background-subtracted image.
    x, y : numpy.ndarray
        Star positions (0-based pixels), away from the edges.
    box : int
        Side of the fitted stamp (odd, pixels).
    mask : numpy.ndarray, optional
        Bad pixels.

    Returns
    -------
    numpy.ndarray
        FWHM of each star (NaN where the fit failed).
    """
    from photutils.psf import fit_fwhm

    if len(x) == 0:
        return np.array([])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            values = fit_fwhm(
                residual, xypos=np.column_stack([x, y]), fit_shape=box | 1, fwhm=box / 4, mask=mask
            )
        except (ValueError, RuntimeError):
            return np.full(len(x), np.nan)
    values = np.asarray(values, dtype=float)
    values[(values <= 0) | (values > box)] = np.nan
    return values


def frame_seeing(
    residual: np.ndarray,
    wcs: WCS,
    x: np.ndarray,
    y: np.ndarray,
    max_stars: int = 50,
) -> tuple[float, int]:
    """Seeing of a frame: median FWHM (arcsec) of bright isolated unsaturated stars.

    The FWHM comes from the area above half the peak (`aifa_steps.core.centroids.half_max_fwhm`):
    model-free, so it is right for Moffat-like profiles where a Gaussian fit overestimates it.

    Parameters
    ----------
    residual : numpy.ndarray
        Background-subtracted image.
    wcs : astropy.wcs.WCS
        The frame's WCS (for the pixel scale).
    x, y : numpy.ndarray
        Positions of bright, isolated, unsaturated stars, brightest first.
    max_stars : int
        Use at most this many stars.

    Returns
    -------
    seeing_arcsec : float
        NaN without stars.
    n_stars : int
        Stars that entered the median.
    """
    from aifa_steps.core.centroids import half_max_fwhm

    scale = float(np.mean(proj_plane_pixel_scales(wcs)) * 3600.0)
    x, y = np.asarray(x)[:max_stars], np.asarray(y)[:max_stars]
    if x.size == 0:
        return float("nan"), 0
    return half_max_fwhm(residual, x, y) * scale, int(x.size)
