"""Differential light curves: the target against an ensemble of comparison stars.

The fluxes of every reference source in every frame (``photometry/<object>/<stem>.ecsv``) form
a matrix. Comparison stars are chosen automatically: measured without a flag in nearly every
frame, bright, close to the target in colour (when the catalogue gives colours) and not
variable: each candidate's light curve against the ensemble of the others must be as flat as
the photon noise allows (iterative rejection); their weights follow their scatter. The
configuration may pin or forbid stars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table

from aifa_steps.core.atomic import save_figure
from aifa_steps.core.observing import scintillation_noise
from aifa_steps.products.transit_fit import error_scale

__all__ = [
    "ComparisonParameters",
    "DETREND_TERMS",
    "detrend_regressors",
    "flux_matrix",
    "select_comparisons",
    "differential_flux",
    "predicted_mid_time",
    "transit_light_curve",
    "bin_light_curve",
    "lightcurve_figure",
]


@dataclass
class ComparisonParameters:
    """Settings of the comparison ensemble (``targets.<OBJECT>`` keys of the config).

    Parameters
    ----------
    max_stars : int
        Largest ensemble.
    min_flux_ratio : float
        Candidates at least this bright relative to the target.
    max_colour_difference : float
        Largest |(g - i) difference| to the target (mag), when both colours are known.
    min_good_fraction : float
        Candidates must be unflagged in this fraction of the frames.
    clip : float
        A star whose relative scatter exceeds this many times the ensemble's median
        (normalised by its photon noise) is dropped as variable.
    pinned, excluded : list of int
        Reference ids always used / never used.
    aperture_m, elevation_m : float
        Telescope aperture and site elevation: every star's error then includes its
        scintillation noise (Young 1967); 0 leaves it out.
    """

    max_stars: int = 12
    min_flux_ratio: float = 0.3
    max_colour_difference: float = 1.0
    min_good_fraction: float = 0.95
    clip: float = 3.0
    pinned: list[int] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)
    aperture_m: float = 0.0
    elevation_m: float = 0.0


def _column(table: Table, name: str) -> np.ndarray:
    if name in table.colnames:
        return np.asarray(table[name], float)
    return np.full(len(table), np.nan)


DETREND_TERMS = ("airmass", "seeing", "sky", "x", "y")


def detrend_regressors(
    matrix: dict[str, np.ndarray], target: int, terms: Sequence[str] = ("airmass",)
) -> np.ndarray:
    """Baseline regressors of the transit fit, each centred and scaled to unit spread.

    Parameters
    ----------
    matrix : dict
        From `flux_matrix`.
    target : int
        Column of the target.
    terms : sequence of str
        Any of `DETREND_TERMS`: ``airmass``, ``seeing`` (FWHM), ``sky`` (level), ``x``,
        ``y`` (the target's position on the detector).

    Returns
    -------
    numpy.ndarray
        ``(frames, len(terms))``; a term that does not vary gives a column of zeros.

    Raises
    ------
    ValueError
        For an unknown term or one without values.
    """
    columns = []
    for term in terms:
        if term not in DETREND_TERMS:
            raise ValueError(f"unknown detrending term {term!r}: use any of {DETREND_TERMS}")
        values = matrix[term][:, target] if term in ("x", "y") else matrix[term]
        values = np.asarray(values, float)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"detrending term {term!r} has no value in some frames")
        spread = np.std(values)
        columns.append((values - values.mean()) / spread if spread > 0 else 0.0 * values)
    return np.column_stack(columns) if columns else np.zeros((len(matrix["bjd_tdb"]), 0))


def flux_matrix(tables: list[Table], aperture: str) -> dict[str, np.ndarray]:
    """Stack per-frame photometry tables (same reference sources, same order).

    Returns
    -------
    dict
        ``flux``, ``err``, ``flag``, ``x``, ``y`` (frames x sources; positions NaN when the
        tables have none), ``ids``, ``bjd_tdb``, ``airmass``, ``seeing``, ``sky``,
        ``exptime`` per frame.
    """
    order = np.argsort([float(t.meta["BJD_TDB"]) for t in tables])
    tables = [tables[k] for k in order]
    return {
        "flux": np.array([np.asarray(t[f"flux_{aperture}"], float) for t in tables]),
        "err": np.array([np.asarray(t[f"flux_err_{aperture}"], float) for t in tables]),
        "flag": np.array([np.asarray(t[f"flag_{aperture}"]) for t in tables]),
        "x": np.array([_column(t, "x") for t in tables]),
        "y": np.array([_column(t, "y") for t in tables]),
        "ids": np.asarray(tables[0]["id"]),
        "bjd_tdb": np.array([float(t.meta["BJD_TDB"]) for t in tables]),
        "airmass": np.array([float(t.meta["AIRMASS"]) for t in tables]),
        "seeing": np.array([float(t.meta["SEEING"]) for t in tables]),
        "sky": np.array([float(t.meta["SKY"]) for t in tables]),
        "exptime": np.array([float(t.meta["EXPTIME"]) for t in tables]),
    }


def _relative_scatter(flux: np.ndarray, err: np.ndarray, ensemble: np.ndarray) -> np.ndarray:
    """Robust scatter of flux / ensemble of each star, in units of its photon noise."""
    ratio = flux / ensemble[:, None]
    ratio = ratio / np.nanmedian(ratio, axis=0)
    noise = np.nanmedian(err / flux, axis=0)
    # The standard deviation over the night: a slow variable (a pulsating star, an eclipsing
    # binary) stands out as much as a noisy star.
    spread = np.nanstd(ratio, axis=0)
    return spread / noise


def select_comparisons(
    matrix: dict[str, np.ndarray],
    target: int,
    colours: np.ndarray | None = None,
    params: ComparisonParameters | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Choose and weight the comparison stars.

    Parameters
    ----------
    matrix : dict
        `flux_matrix` output.
    target : int
        Column of the target.
    colours : numpy.ndarray, optional
        Catalogue colour (g - i) of every source (NaN when unknown).
    params : ComparisonParameters, optional
        Settings.

    Returns
    -------
    columns : numpy.ndarray
        Columns of the chosen comparison stars.
    weights : numpy.ndarray
        Their weights (sum 1).
    notes : list of str
        Why candidates were dropped (for the log).
    """
    params = params or ComparisonParameters()
    flux, err, flag, ids = matrix["flux"], matrix["err"], matrix["flag"], matrix["ids"]
    notes = []
    good_fraction = np.mean((flag == 0) & np.isfinite(flux) & (flux > 0), axis=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sources flagged in every frame
        level = np.nanmedian(np.where(flag == 0, flux, np.nan), axis=0)
    level = np.nan_to_num(level, nan=0.0)
    candidate = (good_fraction >= params.min_good_fraction) & (
        level >= params.min_flux_ratio * level[target]
    )
    if colours is not None and np.isfinite(colours[target]):
        close = ~(np.abs(colours - colours[target]) > params.max_colour_difference)
        candidate &= close
    candidate[target] = False
    candidate &= ~np.isin(ids, params.excluded)
    pinned = np.isin(ids, params.pinned)
    candidate |= pinned
    columns = np.flatnonzero(candidate)
    columns = columns[np.argsort(-level[columns])]
    columns = np.concatenate([columns[pinned[columns]], columns[~pinned[columns]]])
    columns = columns[: max(params.max_stars, int(pinned.sum()))]
    if columns.size < 2:
        raise ValueError(
            f"only {columns.size} comparison star(s) qualify (unflagged, at least "
            f"{params.min_flux_ratio} x the target's flux)"
        )
    # Iterative rejection of variable (or otherwise bad) comparison stars.
    for _ in range(5):
        f = flux[:, columns]
        scatter = np.empty(columns.size)
        for k in range(columns.size):
            others = np.delete(np.arange(columns.size), k)
            ensemble = np.nansum(f[:, others] / np.nanmedian(f[:, others], axis=0), axis=1)
            scatter[k] = _relative_scatter(f[:, [k]], err[:, columns[[k]]], ensemble)[0]
        typical = np.median(scatter)
        bad = (scatter > params.clip * typical) & ~pinned[columns]
        if not bad.any() or columns.size - bad.sum() < 2:
            break
        for col, s in zip(columns[bad], scatter[bad], strict=True):
            notes.append(f"comparison {ids[col]} dropped: scatter {s:.1f} x its noise")
        columns = columns[~bad]
    # Weights: inverse variance of each star's relative flux (photon noise x its scatter).
    relative_noise = np.nanmedian(err[:, columns] / flux[:, columns], axis=0)
    weights = 1.0 / relative_noise**2
    return columns, weights / weights.sum(), notes


def differential_flux(
    matrix: dict[str, np.ndarray],
    target: int,
    columns: np.ndarray,
    weights: np.ndarray,
    scintillation: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The target's flux relative to the weighted ensemble, normalised to its median.

    Parameters
    ----------
    matrix : dict
        `flux_matrix` output.
    target : int
        Column of the target.
    columns, weights : numpy.ndarray
        Comparison stars and their weights (`select_comparisons`).
    scintillation : numpy.ndarray, optional
        Relative scintillation noise per frame, added to every star's error (independent
        from star to star).

    Returns
    -------
    flux, flux_err : numpy.ndarray
        Per frame; the error combines the target's and the ensemble's noise.
    """
    flux, err = matrix["flux"], matrix["err"]
    if scintillation is not None:
        err = np.hypot(err, np.abs(flux) * np.asarray(scintillation, float)[:, None])
    norm = np.nanmedian(flux[:, columns], axis=0)
    ensemble = np.nansum(weights * flux[:, columns] / norm, axis=1)
    ensemble_err = np.sqrt(np.nansum((weights * err[:, columns] / norm) ** 2, axis=1))
    ratio = flux[:, target] / ensemble
    ratio_err = np.abs(ratio) * np.hypot(err[:, target] / flux[:, target], ensemble_err / ensemble)
    scale = np.nanmedian(ratio)
    return ratio / scale, ratio_err / scale


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
        Baseline terms fitted together with the transit (see `detrend_regressors`).

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
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    from aifa_steps.products.transit_fit import fit_transit

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
    from aifa_steps.photometry.aperture_plans import table_apertures

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
        if params is not None and params.aperture_m > 0:
            scintillation = scintillation_noise(
                params.aperture_m, params.elevation_m, matrix["airmass"], matrix["exptime"]
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
    }


def bin_light_curve(t: np.ndarray, flux: np.ndarray, minutes: float) -> tuple:
    """Mean flux in bins of ``minutes`` (bins with at least two points) and its error."""
    edges = np.arange(np.nanmin(t), np.nanmax(t) + minutes / 1440.0, minutes / 1440.0)
    index = np.digitize(t, edges)
    centres, means, errors = [], [], []
    for k in np.unique(index):
        sel = (index == k) & np.isfinite(flux)
        if sel.sum() >= 2:
            centres.append(np.mean(t[sel]))
            means.append(np.mean(flux[sel]))
            errors.append(np.std(flux[sel], ddof=1) / np.sqrt(sel.sum()))
    return np.array(centres), np.array(means), np.array(errors)


def lightcurve_figure(
    result: dict, path, title: str, ephemeris: dict | None = None, bin_minutes: float = 10.0
) -> None:
    """Raw and detrended light curve with the fitted model, bins, residuals and airmass.

    Parameters
    ----------
    result : dict
        `transit_light_curve` output.
    path : path
        PNG file.
    title : str
        Figure title.
    ephemeris : dict, optional
        Literature ``duration_hours``: predicted ingress and egress are drawn around the
        predicted mid-time.
    bin_minutes : float
        Bin width.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table, fit = result["table"], result["fit"]
    t0 = np.floor(np.nanmin(table["bjd_tdb"]))
    hours = (np.asarray(table["bjd_tdb"]) - t0) * 24.0
    fig, (ax_raw, ax_det, ax_res) = plt.subplots(
        3, 1, figsize=(9, 9), sharex=True, gridspec_kw={"height_ratios": [2, 2, 1]}
    )
    ax_raw.errorbar(hours, table["flux"], table["flux_err"], fmt=".", color="0.5", ms=3, lw=0.5)
    ax_raw.plot(hours, table["model"], color="C3", lw=1.2, label="transit x airmass baseline")
    ax_raw.set_ylabel("relative flux")
    ax_raw.legend(fontsize=8, loc="lower left")
    air = ax_raw.twinx()
    air.plot(hours, table["airmass"], color="C0", lw=0.8, alpha=0.6)
    air.set_ylabel("airmass", color="C0")
    detrended = np.asarray(table["flux_detrended"])
    ax_det.errorbar(hours, detrended, table["flux_err"], fmt=".", color="0.6", ms=3, lw=0.5)
    bt, bf, be = bin_light_curve(np.asarray(table["bjd_tdb"]), detrended, bin_minutes)
    ax_det.errorbar(
        (bt - t0) * 24.0, bf, be, fmt="o", color="k", ms=4, label=f"{bin_minutes:g} min bins"
    )
    ax_det.plot(hours, table["transit"], color="C3", lw=1.5, label="fitted transit")
    if ephemeris and "duration_hours" in ephemeris:
        mid = (result["predicted_t0"] - t0) * 24.0
        half = 0.5 * float(ephemeris["duration_hours"])
        for edge in (mid - half, mid + half):
            ax_det.axvline(edge, color="C2", ls="--", lw=1)
        ax_det.axvline(mid, color="C2", ls=":", lw=1, label="predicted ingress, mid, egress")
    ax_det.set_ylabel("detrended flux")
    ax_det.legend(fontsize=8, loc="lower left")
    ax_det.set_title(
        f"depth {fit.depth * 100:.2f} +- {fit.depth_err * 100:.2f} %, "
        f"mid-time BJD_TDB {fit.t0_bjd_tdb:.5f} +- {fit.t0_bjd_tdb_err * 1440:.1f} min, "
        f"duration {fit.duration_hours:.2f} +- {fit.duration_hours_err:.2f} h",
        fontsize=9,
    )
    residual = detrended - np.asarray(table["transit"])
    ax_res.plot(hours, residual * 1e3, ".", color="0.4", ms=3)
    ax_res.axhline(0, color="k", lw=0.8)
    ax_res.set_ylabel("residual [ppt]")
    ax_res.set_xlabel(f"BJD_TDB - {t0:.0f} [h]")
    ax_res.set_title(
        f"RMS {np.nanstd(residual) * 1e3:.2f} ppt; median error "
        f"{np.nanmedian(table['flux_err']) * 1e3:.2f} ppt (x {fit.error_scale:.2f}); aperture "
        f"{result['aperture']:.3g} arcsec, "
        f"{len(result['comparisons'])} comparison stars",
        fontsize=9,
    )
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
