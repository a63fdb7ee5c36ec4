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

#: Groups of more stars are not fitted a second time (the cost grows with the cube of the
#: size); their first fit stands.
MAX_REFIT_GROUP = 25


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
    residual : numpy.ndarray
        The image minus every fitted star.
    model_error : float
        `model_error` of the first fit: how far the PSF is from the stars' cores.
    """

    table: Table
    n_added: int
    residual: np.ndarray
    model_error: float = np.nan


def fit_box_size(fwhm_pixels: float, radius_fwhm: float) -> int:
    """Odd side (pixels) of the box fitted around each star."""
    half = int(round(radius_fwhm * max(fwhm_pixels, 1.0)))
    return 2 * max(half, 2) + 1


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
        The fits in input order, sources added from the residual image and the residual.
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

    table, photometry = _run(image, error, bad, psf, Table({"x": x, "y": y, "flux": flux}), params)
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
    refitted = _refit_groups(image, error, bad, psf, fits, table, n, params)
    log.info("%d groups fitted again with their neighbours subtracted", refitted)
    table["noise_q"] = _noise_q(error, bad, table, fwhm, params)
    return PsfFit(table, len(added_x), image - _model_image(image.shape, psf, fits), mismatch)


def _refit_groups(image, error, bad, psf, fits, table, n, params) -> int:
    """Fit groups again on the image minus every star outside them (DAOPHOT's ALLSTAR).

    Groups whose neighbours put light worth half the flux error of a member into its fitted
    box, and groups with a source found in the residual, are fitted again on the image from
    which the current models of all other stars are subtracted. Groups far enough apart
    that their stars' light does not reach each other's boxes are fitted together in one
    batch (one photutils call); the model image follows each batch. ``fits`` (positions, the
    first ``n`` rows the input stars, then the added sources) and ``table`` (the input
    stars' results) change in place.

    Returns
    -------
    int
        Groups fitted again.
    """
    from photutils.psf import SourceGrouper

    fwhm = psf.fwhm_pixels
    half = fit_box_size(fwhm, params.fit_radius_fwhm) // 2
    finite = np.isfinite(fits["x_fit"]) & np.isfinite(fits["y_fit"])
    gx = np.where(finite, fits["x_fit"], fits["x"])
    gy = np.where(finite, fits["y_fit"], fits["y"])
    ok = np.isfinite(gx) & np.isfinite(gy)
    groups = np.zeros(len(fits), int)
    if ok.sum() == 1:
        groups[ok] = 1
    elif ok.sum() > 1:
        grouper = SourceGrouper(min_separation=params.group_radius_fwhm * fwhm)
        groups[ok] = grouper(gx[ok], gy[ok])
    model = _model_image(image.shape, psf, fits)
    flux_err = np.concatenate([np.asarray(table["flux_err"], float), np.zeros(len(fits) - n)])
    ny, nx = image.shape
    wanted = []  # (members, box) of the groups to fit again
    too_large = 0
    for group in np.unique(groups[ok]):
        members = np.flatnonzero(groups == group)
        i0 = max(int(np.floor(gy[members].min())) - half - 1, 0)
        i1 = min(int(np.ceil(gy[members].max())) + half + 2, ny)
        j0 = max(int(np.floor(gx[members].min())) - half - 1, 0)
        j1 = min(int(np.ceil(gx[members].max())) + half + 2, nx)
        if i1 <= i0 or j1 <= j0:
            continue
        own = _model_image((i1 - i0, j1 - j0), psf, fits[members], origin=(i0, j0))
        others = model[i0:i1, j0:j1] - own
        added = bool(np.any(members >= n))
        if len(members) > MAX_REFIT_GROUP:
            too_large += 1
        elif added or _contaminated(others, gx, gy, members, flux_err, half, (i0, j0)):
            wanted.append((members, (i0, i1, j0, j1)))
    if too_large:
        log.warning(
            "%d groups of more than %d stars keep their first fit", too_large, MAX_REFIT_GROUP
        )
    reach = psf.stamp_half + 1  # a star's light reaches into boxes this far away
    for batch in _batches([box for _, box in wanted], reach):
        members = np.concatenate([wanted[k][0] for k in batch])
        group_id = np.concatenate([np.full(len(wanted[k][0]), k + 1) for k in batch])
        before = _model_image(image.shape, psf, fits[members])
        init = Table(
            {
                "x": fits["x"][members],
                "y": fits["y"][members],
                "flux": np.where(fits["flux_fit"][members] > 0, fits["flux_fit"][members], 1.0),
                "group_id": group_id,
            }
        )
        result, _ = _run(image - (model - before), error, bad, psf, init, params)
        for name in ("x_fit", "y_fit", "flux_fit"):
            fits[name][members] = result[name]
        mine = members < n
        for name in table.colnames:
            table[name][members[mine]] = result[name][mine]
        model += _model_image(image.shape, psf, fits[members]) - before
    return len(wanted)


def _batches(boxes: list[tuple[int, int, int, int]], margin: int) -> list[list[int]]:
    """Split boxes (i0, i1, j0, j1) into batches whose boxes lie ``margin`` apart or more."""
    batches: list[list[int]] = []
    taken: list[list[tuple[int, int, int, int]]] = []
    for k, (i0, i1, j0, j1) in enumerate(boxes):
        grown = (i0 - margin, i1 + margin, j0 - margin, j1 + margin)
        for batch, occupied in zip(batches, taken, strict=True):
            if not any(_overlap(grown, other) for other in occupied):
                batch.append(k)
                occupied.append((i0, i1, j0, j1))
                break
        else:
            batches.append([k])
            taken.append([(i0, i1, j0, j1)])
    return batches


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _contaminated(others, gx, gy, members, flux_err, half, origin) -> bool:
    """True when the other stars put light worth half a member's flux error in its box."""
    i0, j0 = origin
    for k in members:
        if not flux_err[k] > 0:
            return True
        i, j = int(round(gy[k])) - i0, int(round(gx[k])) - j0
        box = others[max(i - half, 0) : i + half + 1, max(j - half, 0) : j + half + 1]
        if abs(float(box.sum())) > 0.5 * flux_err[k]:
            return True
    return False


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


def _model_image(
    shape: tuple[int, int], psf: FramePsf, stars: Table, origin: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """An image of fitted stars (``x_fit``, ``y_fit``, ``flux_fit``).

    ``origin`` is the frame's pixel (row, column) of the image's first pixel: each star is
    drawn in the same box around it (`FramePsf.stamp_half`), cut to the image, so that
    models of a part of the frame cancel those of the whole frame exactly.
    """
    out = np.zeros(shape)
    model = psf.model.copy()
    half = psf.stamp_half
    r0, c0 = origin
    ny, nx = shape
    for xc, yc, f in zip(stars["x_fit"], stars["y_fit"], stars["flux_fit"], strict=True):
        if not (np.isfinite(xc) and np.isfinite(yc) and np.isfinite(f)):
            continue
        i0, i1 = max(int(yc) - half, r0), min(int(yc) + half + 1, r0 + ny)
        j0, j1 = max(int(xc) - half, c0), min(int(xc) + half + 1, c0 + nx)
        if i1 <= i0 or j1 <= j0:
            continue
        yy, xx = np.mgrid[i0:i1, j0:j1]
        model.x_0, model.y_0, model.flux = xc, yc, f
        out[i0 - r0 : i1 - r0, j0 - c0 : j1 - c0] += model(xx, yy)
    return out


def _forget_group_models() -> None:
    """Empty photutils' cache of group models before fitting with another PSF.

    photutils 3.0 caches the model class of a group by its number of stars and the PSF's
    class only, and that class keeps a copy of the PSF it was first made with: a second frame
    fitted in the same process (the job server, a test session) would be fitted with the
    first frame's PSF in every group of two or more stars. ``tests/test_psf.py`` checks that
    a frame's fits do not depend on what was fitted before.
    """
    from photutils.psf import _components

    cache = getattr(_components, "_FLAT_MODEL_CACHE", None)
    if cache is not None:
        cache.clear()


def _run(image, error, bad, psf, init, params) -> tuple[Table, object]:
    """PSFPhotometry of the stars of ``init`` (``x``, ``y``, ``flux``, maybe ``group_id``)."""
    from photutils.psf import PSFPhotometry, SourceGrouper

    _forget_group_models()
    fwhm = psf.fwhm_pixels
    photometry = PSFPhotometry(
        psf.model,
        fit_box_size(fwhm, params.fit_radius_fwhm),
        grouper=SourceGrouper(min_separation=params.group_radius_fwhm * fwhm),
        xy_bounds=params.max_shift_pixels,
        aperture_radius=max(fwhm, 1.5),
        group_warning_threshold=100,
    )
    with warnings.catch_warnings():
        # Per-source fit warnings end up in the flags column.
        warnings.simplefilter("ignore")
        result = photometry(image, mask=bad, error=error, init_params=init)
    order = np.argsort(np.asarray(result["id"]))
    result = result[order]
    keep = (
        "x_fit",
        "y_fit",
        "flux_fit",
        "flux_err",
        "qfit",
        "cfit",
        "reduced_chi2",
        "group_size",
        "flags",
    )
    return Table({k: np.asarray(result[k]) for k in keep}), photometry


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
