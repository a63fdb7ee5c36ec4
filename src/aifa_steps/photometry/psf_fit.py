"""PSF fitting of many stars at once, neighbours fitted together (DAOPHOT's way).

`fit_psf` fits a frame's PSF model (`aifa_steps.photometry.psf_model`) to every star with
photutils' `~photutils.psf.PSFPhotometry`: stars closer than a few FWHM form a group whose
members are fitted simultaneously, each with its own position (within a bound around the
reference position) and flux. Sources that the reference list lacks, typically a faint
companion that the detection did not split off, show up as peaks in the residual image; with
``residual_sources`` they are added and everything is fitted again, so that their light no
longer goes into their neighbour's flux.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from aifa_steps.photometry.psf_groups import (
    fit_box_size,
    refit_groups,
    run_photometry,
)
from aifa_steps.photometry.psf_model import FramePsf
from aifa_steps.photometry.settings import PsfParameters

__all__ = [
    "PsfFit",
    "fit_psf",
    "fit_box_size",
    "model_error",
    "residual_sources",
    "MODEL_ERROR",
]

log = logging.getLogger(__name__)

#: Smallest relative error of a PSF model counted as noise when looking for residual sources
#: (the residual of a bright star's core is not a new star); a frame whose fitted cores
#: differ more from the model (`model_error`) uses its own.
MODEL_ERROR = 0.05

#: At most this many sources per fitted star are added from the residual image (crowded
#: simulated clusters need 0.3).
MAX_ADDED_FRACTION = 0.5


@dataclass
class PsfFit:
    """PSF fits of a list of stars.

    Parameters
    ----------
    table : astropy.table.Table
        One row per input star, in input order: ``x_fit``, ``y_fit``, ``flux_fit``,
        ``flux_err``, ``qfit``, ``cfit``, ``reduced_chi2``, ``group_size``, ``flags``
        (photutils' bits), ``noise_q`` (``qfit`` that pure noise would give).
    n_added : int
        Sources found in the residual image and fitted with their neighbours.
    model_error : float
        `model_error` of the first fit: how far the PSF is from the stars' cores.
    """

    table: Table
    n_added: int
    model_error: float = np.nan


def fit_psf(
    image: np.ndarray,
    error: np.ndarray,
    bad: np.ndarray | None,
    psf: FramePsf,
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    params: PsfParameters | None = None,
) -> PsfFit:
    """Fit the PSF to stars at known positions, groups of neighbours together.

    Parameters
    ----------
    image : numpy.ndarray
        Background-subtracted frame (ADU).
    error : numpy.ndarray
        1-sigma uncertainty of each pixel (ADU).
    bad : numpy.ndarray of bool, optional
        Pixels left out of the fits (saturated, hot, cosmic rays, no data).
    psf : FramePsf
        The frame's PSF.
    x, y : numpy.ndarray
        Starting positions (pixels); a fitted position stays within ``max_shift_pixels``.
    flux : numpy.ndarray
        Starting fluxes (ADU; non-positive or NaN ones are replaced by an aperture sum).
    params : PsfParameters, optional
        Settings (default: the schema's).

    Returns
    -------
    PsfFit
        The fits in input order, the number of sources added from the residual image and
        the PSF's mismatch with the cores.
    """
    params = params or PsfParameters()
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    flux = np.asarray(flux, float)
    image = np.asarray(image, float)
    error = np.asarray(error, float)
    bad = np.zeros(image.shape, bool) if bad is None else np.asarray(bad, bool)
    fwhm = psf.fwhm_pixels
    flux = _start_flux(image, bad, x, y, flux, fwhm)

    table, photometry = run_photometry(
        image, error, bad, psf, Table({"x": x, "y": y, "flux": flux}), params
    )
    residual = photometry.make_residual_image(image)
    mismatch = model_error(residual, image - residual, error, bad)
    added_x = added_y = np.array([])
    if params.residual_sources and len(x):
        added_x, added_y = residual_sources(
            residual,
            error,
            bad,
            image - residual,
            np.asarray(table["x_fit"]),
            np.asarray(table["y_fit"]),
            fwhm,
            params,
            max(MODEL_ERROR, mismatch) if np.isfinite(mismatch) else MODEL_ERROR,
        )
        # What shows next to a star with a masked (saturated) core is its own unmodelled
        # light more often than a companion: no sources are added within its group.
        cores = _masked_core(bad, x, y, fwhm)
        if len(added_x) and cores.any():
            from scipy.spatial import cKDTree

            distance, _ = cKDTree(np.column_stack([x[cores], y[cores]])).query(
                np.column_stack([added_x, added_y])
            )
            keep = distance > params.group_radius_fwhm * fwhm
            added_x, added_y = added_x[keep], added_y[keep]
        if len(added_x):
            log.info("%d sources added from the residual image", len(added_x))
    added_flux = _start_flux(residual, bad, added_x, added_y, np.full(len(added_x), np.nan), fwhm)
    n = len(x)
    fits = Table(
        {
            "x": np.concatenate([x, added_x]),
            "y": np.concatenate([y, added_y]),
            "x_fit": np.concatenate([table["x_fit"], added_x]),
            "y_fit": np.concatenate([table["y_fit"], added_y]),
            "flux_fit": np.concatenate([table["flux_fit"], np.maximum(0.5 * added_flux, 1.0)]),
        }
    )
    refitted = refit_groups(image, error, bad, psf, fits, table, n, params)
    log.info("%d groups fitted again with their neighbours subtracted", refitted)
    table["noise_q"] = _noise_q(error, bad, table, fwhm, params)
    return PsfFit(table, len(added_x), mismatch)


def _masked_core(bad: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Stars with a bad pixel within ``radius`` pixels (in a box) of their position."""
    out = np.zeros(len(x), bool)
    half = max(int(round(radius)), 1)
    ny, nx = bad.shape
    for k, (xc, yc) in enumerate(zip(x, y, strict=True)):
        if np.isfinite(xc) and np.isfinite(yc):
            i, j = int(round(yc)), int(round(xc))
            out[k] = bool(
                bad[max(i - half, 0) : i + half + 1, max(j - half, 0) : j + half + 1].any()
            )
    return out


def _start_flux(image, bad, x, y, flux, fwhm) -> np.ndarray:
    """Replace missing starting fluxes with a sum in a circle of one FWHM radius."""
    from photutils.aperture import CircularAperture, aperture_photometry

    flux = np.array(flux, float)
    missing = ~(flux > 0)
    if missing.any():
        aperture = CircularAperture(np.column_stack([x[missing], y[missing]]), r=max(fwhm, 1.5))
        sums = aperture_photometry(np.where(bad, 0.0, image), aperture)["aperture_sum"]
        flux[missing] = np.maximum(np.asarray(sums, float), 1.0)
    return flux


def model_error(
    residual: np.ndarray, model: np.ndarray, error: np.ndarray, bad: np.ndarray
) -> float:
    """How far a PSF is from the stars' cores: median of ``|residual| / model``.

    Taken over the unmasked pixels where the fitted model exceeds 20 times the noise (the
    cores of bright stars: photon noise adds at most 5 %). About 0.01-0.03 for a PSF that
    fits; more when the PSF changes across the field or the stars are trailed. NaN without
    such pixels.
    """
    core = (model > 20.0 * error) & ~bad
    if not core.any():
        return np.nan
    return float(np.median(np.abs(residual[core]) / model[core]))


def residual_sources(
    residual: np.ndarray,
    error: np.ndarray,
    bad: np.ndarray,
    model: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    fwhm_pixels: float,
    params: PsfParameters,
    relative_model_error: float = MODEL_ERROR,
) -> tuple[np.ndarray, np.ndarray]:
    """Peaks of the residual image that are new sources next to fitted stars.

    A peak counts when the residual, smoothed over about one FWHM, exceeds
    ``residual_threshold_sigma`` times its noise, where the noise includes
    ``relative_model_error`` of the fitted model (a bright star's imperfect core is not a
    companion), lies within
    ``group_radius_fwhm`` of a fitted star (isolated new sources do not bias anything) but
    farther than half an FWHM from it.

    Returns
    -------
    x, y : numpy.ndarray
        Pixel positions of the new sources.
    """
    from photutils.detection import find_peaks
    from scipy.ndimage import gaussian_filter
    from scipy.spatial import cKDTree

    good = np.isfinite(x) & np.isfinite(y)
    if not good.any():
        return np.array([]), np.array([])
    sigma = max(fwhm_pixels, 1.0) / 2.3548
    clean = np.where(bad, 0.0, residual)
    smooth = gaussian_filter(clean, sigma)
    # Noise of a Gaussian-weighted mean of white noise: sigma_pix / (2 sqrt(pi) sigma_kernel).
    variance = error**2 + (relative_model_error * np.abs(model)) ** 2
    noise = np.sqrt(gaussian_filter(np.where(bad, 0.0, variance), sigma)) / (
        2.0 * np.sqrt(np.pi) * sigma
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        significance = np.where(noise > 0, smooth / noise, 0.0)
    # Near bad pixels (saturated cores) the residual means nothing.
    from scipy.ndimage import binary_dilation

    near_bad = binary_dilation(bad, iterations=max(2, int(round(fwhm_pixels))))
    box = max(3, 2 * int(round(0.5 * fwhm_pixels)) + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no local peaks": nothing to add
        peaks = find_peaks(
            significance,
            params.residual_threshold_sigma,
            box_size=box,
            mask=near_bad,
            border_width=box,
        )
    if peaks is None or not len(peaks):
        return np.array([]), np.array([])
    px = np.asarray(peaks["x_peak"], float)
    py = np.asarray(peaks["y_peak"], float)
    distance, _ = cKDTree(np.column_stack([x[good], y[good]])).query(np.column_stack([px, py]))
    keep = (distance > 0.5 * fwhm_pixels) & (distance < params.group_radius_fwhm * fwhm_pixels)
    px, py = px[keep], py[keep]
    limit = int(MAX_ADDED_FRACTION * good.sum())
    if len(px) > limit:
        # More "companions" than a crowded field has: a PSF that does not fit, or a reference
        # list far shallower than the frame. The most significant ones only.
        log.warning(
            "%d sources in the residual image, more than %.0f %% of the %d stars: only the "
            "%d most significant are fitted",
            len(px),
            100 * MAX_ADDED_FRACTION,
            good.sum(),
            limit,
        )
        order = np.argsort(-np.asarray(peaks["peak_value"], float)[keep], kind="stable")
        px, py = px[order[:limit]], py[order[:limit]]
    return px, py


def _noise_q(error, bad, table, fwhm, params) -> np.ndarray:
    """The ``qfit`` (sum of absolute residuals over the flux) that noise alone would give."""
    size = fit_box_size(fwhm, params.fit_radius_fwhm)
    half = size // 2
    ny, nx = error.shape
    out = np.full(len(table), np.nan)
    xs = np.asarray(table["x_fit"], float)
    ys = np.asarray(table["y_fit"], float)
    fluxes = np.asarray(table["flux_fit"], float)
    sigma = np.where(bad, 0.0, error)
    for k, (xc, yc, f) in enumerate(zip(xs, ys, fluxes, strict=True)):
        if not (np.isfinite(xc) and np.isfinite(yc) and f > 0):
            continue
        i, j = int(round(yc)), int(round(xc))
        box = sigma[
            max(i - half, 0) : min(i + half + 1, ny), max(j - half, 0) : min(j + half + 1, nx)
        ]
        # E|N(0, s)| = s sqrt(2 / pi)
        out[k] = np.sqrt(2.0 / np.pi) * float(box.sum()) / f
    return out
