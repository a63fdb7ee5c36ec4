"""PSF photometry of one solved frame at the reference positions of its target.

`psf_frame_photometry` is the ``psf_photometry`` rule's step: the frame's PSF
(`aifa_steps.photometry.psf_model.build_psf`) from bright isolated stars, fits of every reference
source with its neighbours (`aifa_steps.photometry.psf_fit.fit_psf`), and the aperture
correction that ties the PSF fluxes to the total fluxes of the zero points.

Aperture correction: a PSF flux is the flux inside the model's footprint, the zero points
(`aifa_steps.photometry.zeropoints`) are for total fluxes. The frame's aperture photometry
(``photometry/<object>/<stem>.ecsv``) has, for the isolated bright stars, the total flux
(catalogue aperture over its curve-of-growth fraction). ``APFRAC_psf``, the median ratio of PSF
to total flux, plays the part of an aperture's flux fraction, so that
``mag = zeropoint - 2.5 log10(flux_psf / APFRAC_psf)`` as for the apertures
(`aifa_steps.photometry.magnitudes.calibrated_magnitudes`). When the ratio changes
significantly across the field (a PSF that varies, which one model cannot follow) a plane in
x and y is fitted to it and the fluxes are divided by its relative value (``PSFAPX``,
``PSFAPY``).
"""

from __future__ import annotations

import logging

import numpy as np
from astropy.nddata import CCDData
from astropy.table import Table
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy.ndimage import binary_dilation, distance_transform_edt

from aifa_steps.core.failures import FrameFailure
from aifa_steps.core.formats import SATURATED, flux_column
from aifa_steps.photometry.aperture_plans import table_apertures
from aifa_steps.photometry.apertures import FLAG_OFF_FRAME
from aifa_steps.photometry.background import estimate_background
from aifa_steps.photometry.psf_fit import fit_psf
from aifa_steps.photometry.psf_magnitudes import (
    PSF_NO_FIT,
    PSF_PARTIAL,
    PSF_POOR_FIT,
    PSF_SATURATED,
)
from aifa_steps.photometry.psf_model import build_psf
from aifa_steps.photometry.settings import PhotometryParameters, PsfParameters

__all__ = [
    "PSF_NO_FIT",
    "PSF_SATURATED",
    "PSF_POOR_FIT",
    "PSF_PARTIAL",
    "psf_frame_photometry",
    "psf_star_indices",
    "psf_aperture_correction",
    "failed_psf_photometry",
    "psf_summary",
]

log = logging.getLogger(__name__)


#: Median ``|residual| / model`` in bright cores above which a frame's PSF is called poor.
POOR_PSF = 0.05

# photutils' flags: 1 partial box, 2/32 position at its bound, 4 negative flux, 8 no
# convergence, 64 no overlap, 128 fully masked, 256 too few pixels, 512/1024 non-finite.
_PHOTUTILS_NO_FIT = 4 | 8 | 64 | 128 | 256 | 512 | 1024
_PHOTUTILS_BOUND = 2 | 32


def psf_star_indices(
    aperture_table: Table,
    reference: Table,
    saturation: float,
    min_snr: float,
    max_stars: int,
) -> np.ndarray:
    """Rows of the bright, isolated, clean, unsaturated stars (brightest first).

    The same choice as the curve of growth's (`aifa_steps.photometry.frame.measure_frame`):
    no flag in any aperture, no neighbour adding 1 % of the flux (``isolated``), a peak below
    half the saturation level and at least ``min_snr`` in the smallest aperture.
    """
    radii, keys = table_apertures(aperture_table.meta)
    clean = np.all([np.asarray(aperture_table[f"flag_{k}"]) == 0 for k in keys], axis=0)
    isolated = (
        np.asarray(reference["isolated"], bool)
        if "isolated" in reference.colnames
        else np.ones(len(reference), bool)
    )
    sky = float(aperture_table.meta.get("SKY", 0.0))
    linear = np.asarray(aperture_table["peak"], float) < 0.5 * saturation - sky
    snr = np.asarray(aperture_table[flux_column(keys[0])], float) / np.asarray(
        aperture_table[f"flux_err_{keys[0]}"], float
    )
    good = np.flatnonzero(clean & isolated & linear & (snr >= min_snr))
    brightness = np.asarray(aperture_table[flux_column(keys[-1])], float)[good]
    return good[np.argsort(-brightness, kind="stable")][:max_stars]


def psf_aperture_correction(
    psf_flux: np.ndarray,
    total_flux: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    shape: tuple[int, int],
    min_plane_stars: int = 20,
) -> tuple[float, float, float, float, int]:
    """Ratio of PSF to total flux of isolated stars, with a plane across the field if needed.

    Parameters
    ----------
    psf_flux, total_flux : numpy.ndarray
        Fluxes of the same stars (PSF fit; aperture over its curve-of-growth fraction).
    x, y : numpy.ndarray
        Their pixel positions.
    shape : tuple of int
        The frame's shape (the plane is in units of the half width and height from the
        centre).
    min_plane_stars : int
        Fewer stars fit no plane.

    Returns
    -------
    fraction, fraction_err, slope_x, slope_y : float
        Median ratio and its error; relative change of the ratio from the centre to the
        right-hand and top edges (0 unless significant at 3 sigma and above 0.3 %).
    n : int
        Stars used (after a 3-sigma clip).
    """
    ratio = np.asarray(psf_flux, float) / np.asarray(total_flux, float)
    ok = np.isfinite(ratio) & (ratio > 0)
    ratio, x, y = ratio[ok], np.asarray(x, float)[ok], np.asarray(y, float)[ok]
    if ratio.size == 0:
        return np.nan, np.nan, 0.0, 0.0, 0
    keep = np.ones(ratio.size, bool)
    for _ in range(5):
        median = np.median(ratio[keep])
        spread = 1.4826 * np.median(np.abs(ratio[keep] - median))
        new = np.abs(ratio - median) <= 3.0 * max(spread, 1e-4 * median)
        if np.array_equal(new, keep) or new.sum() < 3:
            break
        keep = new
    ratio, x, y = ratio[keep], x[keep], y[keep]
    fraction = float(np.median(ratio))
    n = int(ratio.size)
    fraction_err = float(1.2533 * np.std(ratio, ddof=1) / np.sqrt(n)) if n > 1 else np.nan
    slope_x = slope_y = 0.0
    if n >= min_plane_stars:
        ny, nx = shape
        u = (x - 0.5 * (nx - 1)) / (0.5 * nx)
        v = (y - 0.5 * (ny - 1)) / (0.5 * ny)
        design = np.column_stack([np.ones(n), u, v])
        coef, *_ = np.linalg.lstsq(design, ratio / fraction, rcond=None)
        scatter = np.std(ratio / fraction - design @ coef, ddof=3)
        cov = scatter**2 * np.linalg.inv(design.T @ design)
        significant = np.abs(coef[1:]) > np.maximum(3.0 * np.sqrt(np.diag(cov)[1:]), 0.003)
        if significant.any():
            slope_x, slope_y = (
                float(c) if s else 0.0 for c, s in zip(coef[1:], significant, strict=True)
            )
    return fraction, fraction_err, slope_x, slope_y, n


def psf_frame_photometry(
    ccd: CCDData,
    reference: Table,
    aperture_table: Table,
    params: PsfParameters | None = None,
    photometry: PhotometryParameters | None = None,
    saturation: float = 65535.0,
    catalogue_key: str | None = None,
) -> Table:
    """PSF photometry of every reference source in a solved frame.

    Parameters
    ----------
    ccd : astropy.nddata.CCDData
        Calibrated frame with its solved WCS, uncertainty and ``flags``.
    reference : astropy.table.Table
        The target's reference sources.
    aperture_table : astropy.table.Table
        The frame's aperture photometry (`aifa_steps.photometry.frame.measure_frame`): the
        positions on this frame, the seeing, the stars' total fluxes and the flags.
    params : PsfParameters, optional
        PSF settings.
    photometry : PhotometryParameters, optional
        Background mesh and the star selection's S/N limit (``min_growth_snr``).
    saturation : float
        Saturation level (ADU).
    catalogue_key : str, optional
        Aperture whose total fluxes calibrate the PSF fluxes, the zero points' catalogue
        aperture in the workflow (default, or when the frame lacks it: its first aperture
        of at least 1.5 FWHM, else its largest).

    Returns
    -------
    astropy.table.Table
        ``id``, ``ra``, ``dec``, ``x_psf``, ``y_psf``, ``flux_psf``, ``flux_err_psf``,
        ``flag_psf`` (bits `PSF_NO_FIT`, `PSF_SATURATED`, `PSF_POOR_FIT`, `PSF_PARTIAL`),
        ``qfit_psf`` (sum of absolute residuals over the flux), ``qnoise_psf`` (what noise
        alone gives), ``group_psf`` (stars fitted together). Metadata: the aperture table's
        (``STEM``, ``FILTER``, times, ``SEEING`` ...) plus ``PSFKIND``, ``NPSFSTAR``,
        ``PSFFWHM`` (pixels), ``APFRAC_psf``, ``APFERR_psf``, ``NAPCPSF``, ``PSFAPX``,
        ``PSFAPY``, ``PSFADDED`` (sources added from the residual image), ``PSFKEY``,
        ``PSFMERR`` (`aifa_steps.photometry.psf_fit.model_error`: above `POOR_PSF` the log
        warns that the PSF does not fit the frame).

    Raises
    ------
    aifa_steps.core.failures.FrameFailure
        When the frame has no seeing or no star to calibrate the PSF fluxes with.
    """
    params = params or PsfParameters()
    photometry = photometry or PhotometryParameters()
    meta = aperture_table.meta
    radii, keys = table_apertures(meta)
    key = catalogue_key if catalogue_key in keys else _default_key(meta, radii, keys)
    scale = float(np.mean(proj_plane_pixel_scales(ccd.wcs.celestial)) * 3600.0)
    seeing = float(meta.get("SEEING", np.nan))
    if not np.isfinite(seeing) or seeing <= 0:
        raise FrameFailure("no seeing measured on the frame: no PSF")
    fwhm = seeing / scale

    flags = getattr(ccd, "flags", None)
    bad = flags > 0 if flags is not None else np.asarray(ccd.mask, bool)
    saturated = (flags & SATURATED) > 0 if flags is not None else np.zeros(bad.shape, bool)
    if saturated.any():
        # The pixels next to a saturated one may be non-linear or take bled charge.
        bad = bad | binary_dilation(saturated, iterations=1)
    data = np.asarray(ccd.data, dtype=np.float32)
    background, rms = estimate_background(
        data, bad, photometry.background_box, photometry.background_filter
    )
    image = (data - background).astype(float)
    error = ccd.uncertainty.array if ccd.uncertainty is not None else rms
    error = np.where(np.isfinite(error) & (error > 0), error, np.nanmedian(rms))

    if np.asarray(aperture_table["id"]).tolist() != np.asarray(reference["id"]).tolist():
        raise ValueError("the aperture photometry's rows are not the reference sources")
    x = np.asarray(aperture_table["x"], float)
    y = np.asarray(aperture_table["y"], float)
    first = np.asarray(aperture_table[f"flag_{keys[0]}"])
    on_frame = np.isfinite(x) & np.isfinite(y) & ((first & FLAG_OFF_FRAME) == 0)

    stars = psf_star_indices(
        aperture_table, reference, saturation, photometry.min_growth_snr, params.max_stars
    )
    psf = build_psf(
        image,
        x[stars],
        y[stars],
        fwhm,
        oversampling=params.oversampling,
        min_stars=params.min_stars,
        moffat_beta=float(meta.get("MOFBETA", 3.0)),
    )
    log.info("PSF: %s from %d stars, FWHM %.2f px", psf.kind, psf.n_stars, fwhm)

    index = np.flatnonzero(on_frame)
    start = np.asarray(aperture_table[flux_column(keys[-1])], float)[index]
    fit = fit_psf(image, error, bad, psf, x[index], y[index], start, params)
    if fit.model_error > POOR_PSF:
        log.warning(
            "%s: the PSF differs from the stars' cores by %.0f %% (median): it changes across "
            "the field or the stars are not round; this frame's PSF magnitudes are less "
            "reliable than its aperture magnitudes (kept beside them)",
            meta.get("STEM", ""),
            100 * fit.model_error,
        )
    n = len(aperture_table)
    columns = {
        name: np.full(n, np.nan)
        for name in ("x_psf", "y_psf", "flux_psf", "flux_err_psf", "qfit_psf", "qnoise_psf")
    }
    columns["x_psf"][index] = fit.table["x_fit"]
    columns["y_psf"][index] = fit.table["y_fit"]
    columns["flux_psf"][index] = fit.table["flux_fit"]
    columns["flux_err_psf"][index] = fit.table["flux_err"]
    columns["qfit_psf"][index] = fit.table["qfit"]
    columns["qnoise_psf"][index] = fit.table["noise_q"]
    group = np.zeros(n, int)
    group[index] = fit.table["group_size"]
    photutils_flags = np.zeros(n, int)
    photutils_flags[index] = fit.table["flags"]

    flag = np.zeros(n, int)
    flux = columns["flux_psf"]
    flag[~on_frame | ((photutils_flags & _PHOTUTILS_NO_FIT) > 0) | ~(flux > 0)] |= PSF_NO_FIT
    flag[_near(saturated, x, y, fwhm)] |= PSF_SATURATED
    flag[(photutils_flags & 1) > 0] |= PSF_PARTIAL
    excess = columns["qfit_psf"] - columns["qnoise_psf"]
    poor = (excess > params.poor_fit) | ((photutils_flags & _PHOTUTILS_BOUND) > 0)
    # Saturated pixels near a star whose fitted profile peaks far below saturation belong to
    # a neighbour: the fit shared that neighbour's masked core between the two.
    peak = flux * psf_peak(psf) + float(meta.get("SKY", 0.0))
    poor |= ((flag & PSF_SATURATED) > 0) & (peak < 0.5 * saturation)
    flag[poor] |= PSF_POOR_FIT

    # Aperture correction from the isolated stars that built the PSF and others like them.
    calibrators = psf_star_indices(
        aperture_table, reference, saturation, photometry.min_growth_snr, n
    )
    calibrators = calibrators[flag[calibrators] == 0]
    total = np.asarray(aperture_table[flux_column(key)], float) / float(meta[f"APFRAC_{key}"])
    fraction, fraction_err, slope_x, slope_y, n_cal = psf_aperture_correction(
        flux[calibrators], total[calibrators], x[calibrators], y[calibrators], image.shape
    )
    if not np.isfinite(fraction):
        raise FrameFailure("no isolated bright star to tie the PSF fluxes to the zero points")
    ny, nx = image.shape
    plane = (
        1.0
        + slope_x * (x - 0.5 * (nx - 1)) / (0.5 * nx)
        + slope_y * (y - 0.5 * (ny - 1)) / (0.5 * ny)
    )
    plane = np.where(np.isfinite(plane) & (plane > 0.5), plane, 1.0)

    table = Table()
    for name in ("id", "ra", "dec"):
        table[name] = aperture_table[name]
    table["x_psf"] = columns["x_psf"]
    table["y_psf"] = columns["y_psf"]
    table["flux_psf"] = flux / plane
    table["flux_err_psf"] = columns["flux_err_psf"] / plane
    table["flag_psf"] = flag
    table["qfit_psf"] = columns["qfit_psf"]
    table["qnoise_psf"] = columns["qnoise_psf"]
    table["group_psf"] = group
    table.meta.update(
        {k: v for k, v in meta.items() if not k.startswith(("APFRAC_", "APFERR_", "GROWTH_"))}
    )
    table.meta.update(
        {
            "PSFKIND": psf.kind,
            "NPSFSTAR": psf.n_stars,
            "PSFFWHM": round(fwhm, 4),
            "PSFKEY": key,
            "APFRAC_psf": fraction,
            "APFERR_psf": fraction_err,
            "NAPCPSF": n_cal,
            "PSFAPX": slope_x,
            "PSFAPY": slope_y,
            "PSFADDED": fit.n_added,
            "PSFMERR": round(fit.model_error, 4),
            "PSFPARS": {name: getattr(params, name) for name in params.keys()},
            "PHOTOK": True,
        }
    )
    return table


def psf_peak(psf) -> float:
    """The highest pixel of a star of unit flux centred on a pixel."""
    model = psf.model.copy()
    model.x_0, model.y_0, model.flux = 0.0, 0.0, 1.0
    return float(model(0.0, 0.0))


def _near(pixels: np.ndarray, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Positions with a set pixel of ``pixels`` within ``radius`` (False off the frame)."""
    out = np.zeros(len(x), bool)
    if not pixels.any():
        return out
    distance = distance_transform_edt(~pixels)
    ny, nx = pixels.shape
    i = np.round(np.nan_to_num(y, nan=-1.0)).astype(int)
    j = np.round(np.nan_to_num(x, nan=-1.0)).astype(int)
    inside = (i >= 0) & (i < ny) & (j >= 0) & (j < nx)
    out[inside] = distance[i[inside], j[inside]] <= radius
    return out


def _default_key(meta, radii, keys) -> str:
    """The frame's first aperture of at least 1.5 FWHM (the largest if none is)."""
    seeing = float(meta.get("SEEING", np.nan))
    for radius, key in zip(radii, keys, strict=True):
        if np.isfinite(seeing) and radius >= 1.5 * seeing - 1e-6:
            return key
    return keys[-1]


def failed_psf_photometry(stem: str, reason: str, meta: dict | None = None) -> Table:
    """The PSF table of a frame whose PSF photometry failed (no rows, ``PHOTOK = False``)."""
    table = Table(
        names=("id", "flux_psf", "flux_err_psf", "flag_psf"), dtype=(int, float, float, int)
    )
    table.meta.update(dict(meta or {}))
    table.meta.update({"STEM": stem, "PHOTOK": False, "REASON": reason})
    return table


def psf_summary(table: Table) -> str:
    """One line for the log: the PSF, the fits and the aperture correction."""
    meta = table.meta
    good = int(np.count_nonzero(np.asarray(table["flag_psf"]) == 0))
    poor = int(np.count_nonzero((np.asarray(table["flag_psf"]) & PSF_POOR_FIT) > 0))
    return (
        f"{meta['STEM']}: {meta['PSFKIND']} PSF from {meta['NPSFSTAR']} stars, {len(table)} "
        f"sources, {good} clean fits, {poor} poor, {meta['PSFADDED']} added from the residual; "
        f"PSF/total flux {meta['APFRAC_psf']:.4f} +- {meta['APFERR_psf']:.4f} "
        f"({meta['NAPCPSF']} stars, field slopes {meta['PSFAPX']:+.4f} {meta['PSFAPY']:+.4f}); "
        f"PSF off the cores by {meta.get('PSFMERR', float('nan')):.3f}"
    )
