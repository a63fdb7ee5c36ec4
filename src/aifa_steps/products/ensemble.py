"""The comparison ensemble of a differential light curve.

The fluxes of every reference source in every frame (``photometry/<object>/<stem>.ecsv``) form
a matrix (`flux_matrix`). Comparison stars are chosen automatically (`select_comparisons`):
measured without a flag in nearly every frame, bright, close to the target in colour (when the
catalogue gives colours) and not variable: each candidate's light curve against the ensemble
of the others must be as flat as the photon noise allows (iterative rejection); their weights
follow their scatter. The configuration may pin or forbid stars. `differential_flux` divides
the target by the weighted ensemble.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table

from aifa_steps.core.formats import flag_column, flux_column, flux_err_column

__all__ = [
    "ComparisonParameters",
    "differential_flux",
    "flux_matrix",
    "select_comparisons",
]


@dataclass(frozen=True)
class ComparisonParameters:
    """How the comparison ensemble is chosen.

    Only ``pinned`` and ``excluded`` come from the configuration (``comparison_stars`` and
    ``exclude_stars`` of the target, see `aifa_steps.products.settings.TransitSettings`); the
    other fields tune the choice and keep their defaults in the workflow.

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
    """

    max_stars: int = 12
    min_flux_ratio: float = 0.3
    max_colour_difference: float = 1.0
    min_good_fraction: float = 0.95
    clip: float = 3.0
    pinned: list[int] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)


def _column(table: Table, name: str) -> np.ndarray:
    if name in table.colnames:
        return np.asarray(table[name], float)
    return np.full(len(table), np.nan)


def flux_matrix(tables: list[Table], aperture: str) -> dict[str, np.ndarray]:
    """Stack per-frame photometry tables (same reference sources, same order).

    Parameters
    ----------
    tables : list of astropy.table.Table
        Per-frame photometry of the reference sources, with ``BJD_TDB``, ``AIRMASS``,
        ``SEEING``, ``SKY`` and ``EXPTIME`` in their meta.
    aperture : str
        Column suffix of the aperture (``4``, ``1.5fwhm``).

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
        "flux": np.array([np.asarray(t[flux_column(aperture)], float) for t in tables]),
        "err": np.array([np.asarray(t[flux_err_column(aperture)], float) for t in tables]),
        "flag": np.array([np.asarray(t[flag_column(aperture)]) for t in tables]),
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
