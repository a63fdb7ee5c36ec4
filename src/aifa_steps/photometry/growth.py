"""Curves of growth (aperture corrections), seeing and stellar FWHM of a frame."""

from __future__ import annotations

import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

__all__ = ["moffat_growth", "aperture_corrections", "star_fwhm", "frame_seeing"]


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
