"""Differential light curves and transit fits of time-series targets.

`transit_light_curve` measures the target against a comparison ensemble
(`aifa_steps.products.ensemble`) in every aperture, fits the transit with a baseline
(`aifa_steps.products.detrending`) and keeps the smallest aperture whose scatter is within 5 %
of the best. `transit_products` is the ``transit_products`` rule's step: the target's settings
(`TransitSettings`, read from ``targets.<OBJECT>``) in, light curve, comparison stars and fit
summary out. The figure is `aifa_steps.products.plots.lightcurve_figure`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from aifa_steps.core.observing import scintillation_noise
from aifa_steps.photometry.aperture_plans import table_apertures
from aifa_steps.products.detrending import detrend_regressors
from aifa_steps.products.ensemble import (
    ComparisonParameters,
    differential_flux,
    flux_matrix,
    select_comparisons,
)
from aifa_steps.products.settings import TransitSettings
from aifa_steps.products.transit_fit import error_scale, fit_transit
from aifa_steps.products.transit_model import TransitModel

__all__ = [
    "TransitSettings",
    "bin_light_curve",
    "bin_width_minutes",
    "fit_summary",
    "predicted_mid_time",
    "transit_light_curve",
    "transit_products",
]


def predicted_mid_time(t0: float, period: float, times: np.ndarray) -> float:
    """The ephemeris' mid-transit time closest to the middle of the observations."""
    middle = 0.5 * (np.nanmin(times) + np.nanmax(times))
    return float(t0 + np.round((middle - t0) / period) * period)


def transit_light_curve(
    tables: list[Table],
    reference: Table,
    target_radec: tuple[float, float],
    ephemeris: dict,
    params: ComparisonParameters | None = None,
    limb_darkening: tuple[float, float] = (0.45, 0.2),
    depth_guess: float = 0.01,
    detrend: Sequence[str] = ("airmass",),
    aperture_m: float = 0.0,
    elevation_m: float = 0.0,
) -> dict:
    """Light curve and transit fit of a time-series target, best aperture chosen.

    Parameters
    ----------
    tables : list of astropy.table.Table
        Per-frame photometry of the target's frames.
    reference : astropy.table.Table
        The target's reference sources (catalogue colours for the comparison choice).
    target_radec : tuple of float
        The transit host (deg); the nearest reference source within 3 arcsec.
    ephemeris : dict
        ``t0_bjd_tdb``, ``period_days``, ``duration_hours`` (starting values; the period is
        kept fixed).
    params : ComparisonParameters, optional
        Comparison ensemble settings.
    limb_darkening : tuple of float
        Quadratic limb darkening of the band.
    depth_guess : float
        Starting depth.
    detrend : sequence of str
        Baseline terms fitted together with the transit (see
        `aifa_steps.products.detrending.detrend_regressors`).
    aperture_m, elevation_m : float
        Telescope aperture and site elevation: every star's error then includes its
        scintillation noise (Young 1967); 0 leaves it out.

    Returns
    -------
    dict
        ``table`` (`astropy.table.Table`: ``bjd_tdb``, ``flux``, ``flux_err``,
        ``flux_detrended``, ``model`` (transit times baseline), ``transit``, ``airmass``,
        ``seeing``, ``sky``, ``x``, ``y``), ``fit`` (`aifa_steps.products.transit_fit.TransitFit`),
        ``aperture`` (radius, arcsec), ``aperture_key`` (its column suffix, e.g. ``4`` or
        ``1.5fwhm``), ``comparisons`` (table of ``id``, ``ra``, ``dec``, ``weight``),
        ``apertures`` (RMS of each aperture's residuals, by suffix), ``notes``,
        ``predicted_t0``. The fit carries ``error_ratio`` and ``error_scale`` (see
        `aifa_steps.products.transit_fit.error_scale`); ``flux_err`` is rescaled by the latter.
    """
    coords = SkyCoord(np.asarray(reference["ra"]) * u.deg, np.asarray(reference["dec"]) * u.deg)
    host = SkyCoord(target_radec[0] * u.deg, target_radec[1] * u.deg)
    separation = coords.separation(host).arcsec
    target = int(np.argmin(separation))
    if separation[target] > 3.0:
        raise ValueError(
            f"no detected source within 3 arcsec of the target ({separation[target]:.1f} arcsec "
            "to the nearest): check targets.<OBJECT>.ra/dec"
        )
    colours = (
        np.asarray(reference["gmag"], float) - np.asarray(reference["imag"], float)
        if {"gmag", "imag"} <= set(reference.colnames)
        else None
    )
    radii_arcsec, radii = table_apertures(tables[0].meta)
    radius_of = dict(zip(radii, radii_arcsec, strict=True))
    times = np.array([float(t.meta["BJD_TDB"]) for t in tables])
    period = float(ephemeris["period_days"])
    t_guess = predicted_mid_time(float(ephemeris["t0_bjd_tdb"]), period, times)
    results, scores = {}, {}
    for aperture in radii:
        matrix = flux_matrix(tables, aperture)
        try:
            columns, weights, notes = select_comparisons(matrix, target, colours, params)
        except ValueError:
            continue
        scintillation = None
        if aperture_m > 0:
            scintillation = scintillation_noise(
                aperture_m, elevation_m, matrix["airmass"], matrix["exptime"]
            )
        flux, flux_err = differential_flux(matrix, target, columns, weights, scintillation)
        regressors = detrend_regressors(matrix, target, detrend)
        fit, transit, baseline = fit_transit(
            matrix["bjd_tdb"],
            flux,
            flux_err,
            regressors,
            t_guess,
            period,
            float(ephemeris.get("duration_hours", 2.0)),
            depth_guess,
            limb_darkening,
        )
        outside = transit > 0.99999
        rms = float(np.nanstd((flux / baseline)[outside])) if outside.sum() > 3 else fit.rms
        scores[aperture] = rms
        results[aperture] = (
            matrix,
            columns,
            weights,
            notes,
            flux,
            flux_err,
            fit,
            transit,
            baseline,
        )
    if not results:
        raise ValueError("no aperture has two usable comparison stars")
    # The smallest aperture whose scatter is within 5 % of the best: larger apertures collect
    # the light of faint neighbours, which dilutes the transit without lowering the scatter.
    lowest = min(scores.values())
    aperture = next(a for a in radii if a in scores and scores[a] <= 1.05 * lowest)
    matrix, columns, weights, notes, flux, flux_err, fit, transit, baseline = results[aperture]
    # Error bars against the scatter: rescaled, and the transit fitted again, when the
    # out-of-transit scatter and the median error disagree by more than ERROR_RATIO_LIMIT.
    outside = transit > 0.99999
    ratio, factor = error_scale(flux / baseline, flux_err, outside)
    if factor != 1.0:
        notes = [
            *notes,
            f"errors rescaled by {factor:.3f}: out-of-transit scatter {ratio:.2f} x the "
            "median error",
        ]
        flux_err = flux_err * factor
        fit, transit, baseline = fit_transit(
            matrix["bjd_tdb"],
            flux,
            flux_err,
            detrend_regressors(matrix, target, detrend),
            t_guess,
            period,
            float(ephemeris.get("duration_hours", 2.0)),
            depth_guess,
            limb_darkening,
        )
    fit.error_ratio = ratio
    fit.error_scale = factor
    table = Table(
        {
            "bjd_tdb": matrix["bjd_tdb"],
            "flux": flux,
            "flux_err": flux_err,
            "flux_detrended": flux / baseline,
            "model": transit * baseline,
            "transit": transit,
            "airmass": matrix["airmass"],
            "seeing": matrix["seeing"],
            "sky": matrix["sky"],
            "x": matrix["x"][:, target],
            "y": matrix["y"][:, target],
        }
    )
    table.meta["DETREND"] = list(detrend)
    table.meta["APERTURE"] = float(radius_of[aperture])
    table.meta["APKEY"] = aperture
    table.meta["ERRRATIO"] = ratio
    table.meta["ERRSCALE"] = factor
    table.meta["TARGETID"] = int(matrix["ids"][target])
    comparisons = Table(
        {
            "id": matrix["ids"][columns],
            "ra": np.asarray(reference["ra"])[columns],
            "dec": np.asarray(reference["dec"])[columns],
            "weight": weights,
        }
    )
    return {
        "table": table,
        "fit": fit,
        "aperture": float(radius_of[aperture]),
        "aperture_key": aperture,
        "comparisons": comparisons,
        "apertures": scores,
        "notes": notes,
        "predicted_t0": t_guess,
        "transit_model": TransitModel(
            fit.t0_bjd_tdb,
            period,
            fit.rp_rs,
            fit.a_rs,
            float(np.degrees(np.arccos(np.clip(fit.impact_parameter / fit.a_rs, 0.0, 1.0)))),
            tuple(limb_darkening),
        ),
    }


def bin_width_minutes(t: np.ndarray, requested: float = 10.0, points: int = 3) -> float:
    """A bin width that averages at least ``points`` frames: ``requested`` or wider.

    Bins narrower than a few cadences hold one or two points each and show nothing a plot of
    the points does not. The width is ``requested`` minutes, widened to ``points`` times the
    median cadence (rounded up to a whole minute) when that is longer.
    """
    t = np.sort(np.asarray(t, float)[np.isfinite(t)])
    if t.size < 2:
        return float(requested)
    cadence = float(np.median(np.diff(t))) * 1440.0
    return float(max(requested, np.ceil(points * cadence)))


def bin_light_curve(
    t: np.ndarray, flux: np.ndarray, minutes: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean flux in consecutive time bins of ``minutes`` and the error of each mean.

    The bins are fixed intervals of time starting at the first point, not groups of points;
    a bin is kept when it holds at least two finite points, and it is placed at its centre.

    Returns
    -------
    centres : numpy.ndarray
        Bin centres (the unit of ``t``).
    means, errors : numpy.ndarray
        Mean flux and its standard error (sample standard deviation / sqrt(n)).
    """
    t = np.asarray(t, float)
    flux = np.asarray(flux, float)
    width = minutes / 1440.0
    start = np.nanmin(t)
    index = np.floor((t - start) / width).astype(int)
    centres, means, errors = [], [], []
    for k in np.unique(index):
        sel = (index == k) & np.isfinite(flux)
        if sel.sum() >= 2:
            centres.append(start + (k + 0.5) * width)
            means.append(np.mean(flux[sel]))
            errors.append(np.std(flux[sel], ddof=1) / np.sqrt(sel.sum()))
    return np.array(centres), np.array(means), np.array(errors)


def fit_summary(result: dict) -> dict:
    """The transit fit with the aperture and baseline it used (``transit_fit.json``).

    Parameters
    ----------
    result : dict
        `transit_light_curve` output.

    Returns
    -------
    dict
        The fit's parameters (`aifa_steps.products.transit_fit.TransitFit.as_dict`) plus
        ``aperture_arcsec``, ``aperture`` (its column suffix), ``aperture_rms`` (RMS of every
        aperture's residuals), ``baseline_terms`` and ``predicted_t0_bjd_tdb`` (the
        ephemeris' mid-time of this night's transit).
    """
    summary = result["fit"].as_dict()
    summary.update(
        aperture_arcsec=result["aperture"],
        aperture=result["aperture_key"],
        aperture_rms=result["apertures"],
        baseline_terms=["constant", *result["table"].meta["DETREND"]],
        predicted_t0_bjd_tdb=float(result["predicted_t0"]),
    )
    return summary


def transit_products(
    tables: list[Table],
    reference: Table,
    settings: TransitSettings,
    name: str,
    aperture_m: float = 0.0,
    elevation_m: float = 0.0,
) -> dict:
    """Light curve, comparison stars and transit fit of one target (the rule's step).

    Parameters
    ----------
    tables : list of astropy.table.Table
        Usable per-frame photometry of the target's frames.
    reference : astropy.table.Table
        The target's reference sources.
    settings : TransitSettings
        The target's section of the configuration.
    name : str
        The target's OBJECT (written into the light curve's meta, named in messages).
    aperture_m, elevation_m : float
        Telescope aperture and site elevation for the scintillation noise (0: none).

    Returns
    -------
    dict
        `transit_light_curve` output (its table's meta with ``OBJECT``), plus ``summary``
        (`fit_summary`) and ``ephemeris`` (the checked ephemeris).

    Raises
    ------
    ValueError
        When the ephemeris lacks what the fit needs, or the light curve cannot be made.
    """
    ephemeris = settings.checked_ephemeris(name)
    result = transit_light_curve(
        tables,
        reference,
        (settings.ra, settings.dec),
        ephemeris,
        settings.comparisons,
        limb_darkening=settings.limb_darkening,
        depth_guess=settings.depth_guess,
        detrend=settings.detrend,
        aperture_m=aperture_m,
        elevation_m=elevation_m,
    )
    result["table"].meta["OBJECT"] = name
    result["summary"] = fit_summary(result)
    result["ephemeris"] = ephemeris
    return result
