"""Photometric zero points of every frame against the reference catalogue.

The zero point of a frame, filter and aperture is the robust mean of
``m_cat + 2.5 log10(flux / fraction)`` over reference stars matched to the catalogue, isolated,
unflagged and well measured, where ``fraction`` is the frame's aperture correction (the share of
a star's total flux inside the aperture). It is in the simulator's sense: a star of magnitude m
gives ``10**(-0.4 (m - zeropoint))`` ADU in total in the frame. A star's calibrated magnitude
(`aifa_steps.photometry.magnitudes`) is then ``zeropoint - 2.5 log10(flux / fraction)``, the same
for every aperture.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from astropy.stats import sigma_clip
from astropy.table import Table, vstack

from aifa_steps.core.formats import aperture_keys, flux_column, flux_err_column
from aifa_steps.photometry.aperture_plans import table_apertures
from aifa_steps.photometry.frame import photometry_failed
from aifa_steps.photometry.settings import ZeropointParameters

LN10_2_5 = 2.5 / np.log(10.0)  # 1.0857: magnitude error of a relative flux error

__all__ = [
    "calibrate_fluxes",
    "aperture_rows",
    "catalogue_colour",
    "frame_zeropoints",
    "failed_frame_zeropoints",
    "night_zeropoints",
    "photometry_targets",
]


def aperture_rows(table: Table, aperture: str | float) -> np.ndarray:
    """Rows of a zero-point (or star) table of one aperture.

    ``aperture`` is a column suffix (``"4"``, ``"1.5fwhm"``; matched against the ``aperture``
    column) or a radius in arcsec (matched against ``aperture_arcsec``).
    """
    if not len(table):
        return np.zeros(0, bool)
    if isinstance(aperture, str):
        if "aperture" in table.colnames:
            return np.asarray(table["aperture"]).astype(str) == aperture
        aperture = float(aperture)
    return np.isclose(np.asarray(table["aperture_arcsec"], float), float(aperture))


def catalogue_colour(reference: Table, bands: tuple[str, str]) -> np.ndarray:
    """Catalogue colour (``<first>mag - <second>mag``) of each source; NaN without those columns."""
    first, second = (f"{b}mag" for b in bands)
    if first in reference.colnames and second in reference.colnames:
        return np.asarray(reference[first], float) - np.asarray(reference[second], float)
    return np.full(len(reference), np.nan)


def calibrate_fluxes(
    flux: np.ndarray,
    flux_err: np.ndarray,
    zp_row: Table,
    colour: np.ndarray,
    fraction: float,
    fraction_err: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Magnitudes and errors of fluxes with a frame's zero point (the inverse of it).

    ``mag = zeropoint + colour_term * colour - 2.5 log10(flux / fraction)``; the error adds
    the flux error, the error of the flux fraction (aperture correction) and the zero point's
    in quadrature. Without a zero point (``zp_row`` empty) or flux, NaN.
    """
    flux = np.asarray(flux, float)
    if not len(zp_row):
        nan = np.full(flux.shape, np.nan)
        return nan, nan.copy()
    zp = float(zp_row["zeropoint"][0])
    zp_err = float(zp_row["zeropoint_err"][0])
    slope = float(zp_row["colour_term"][0]) if "colour_term" in zp_row.colnames else 0.0
    slope = slope if np.isfinite(slope) else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        mag = zp + slope * colour - 2.5 * np.log10(flux / fraction)
        err = np.sqrt(
            (LN10_2_5 * np.asarray(flux_err, float) / flux) ** 2
            + (LN10_2_5 * fraction_err / fraction) ** 2
            + zp_err**2
        )
    bad = ~(flux > 0)
    mag[bad], err[bad] = np.nan, np.nan
    return mag, err


def frame_zeropoints(
    photometry: Table, reference: Table, params: ZeropointParameters | None = None
) -> tuple[Table, Table]:
    """Zero points of one frame, one row per aperture.

    Parameters
    ----------
    photometry : astropy.table.Table
        The frame's table (`aifa_steps.photometry.frame.measure_frame`), rows in the order of
        ``reference``.
    reference : astropy.table.Table
        The target's reference sources with the catalogue cross-identification.
    params : ZeropointParameters, optional
        Settings.

    Returns
    -------
    zeropoints : astropy.table.Table
        ``stem``, ``object``, ``target`` (file-safe name), ``filter``, ``aperture`` (column
        suffix of the aperture: its radius in arcsec, or its multiple of the FWHM such as
        ``1.5fwhm``), ``aperture_arcsec`` (radius), ``zeropoint``, ``zeropoint_err``,
        ``n_stars``, ``airmass``, ``mjd``, ``bjd_tdb``, ``exptime``, ``seeing_arcsec``,
        ``aperture_fraction``, ``colour_term``, ``colour_term_err``, ``reason`` (why there
        is no zero point).
    stars : astropy.table.Table
        The stars used, for residual plots: ``stem``, ``filter``, ``aperture``,
        ``aperture_arcsec``, ``id``,
        ``catalogue_mag``, ``colour``, ``residual`` (mag, star minus zero point), ``used``.
    """
    params = params or ZeropointParameters()
    meta = photometry.meta
    band = str(meta["FILTER"])
    radii, keys = table_apertures(meta)
    column = f"{band}mag"
    has_catalogue = column in reference.colnames
    cat_mag = (
        np.asarray(reference[column], float) if has_catalogue else np.full(len(reference), np.nan)
    )
    cat_err = (
        np.asarray(reference[f"e_{column}"], float)
        if f"e_{column}" in reference.colnames
        else np.zeros(len(reference))
    )
    colour = catalogue_colour(reference, params.colour)
    isolated = np.asarray(reference["isolated"], bool)
    rows, star_tables = [], []
    for radius, key in zip(radii, keys, strict=True):
        fraction = float(meta.get(f"APFRAC_{key}", np.nan))
        flux = np.asarray(photometry[flux_column(key)], float)
        snr = flux / np.asarray(photometry[flux_err_column(key)], float)
        candidate = (
            np.isfinite(cat_mag)
            & (cat_err < params.max_catalogue_error)
            & isolated
            & (np.asarray(photometry[f"flag_{key}"]) == 0)
            & (snr >= params.min_snr)
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = cat_mag + 2.5 * np.log10(flux / fraction)
        row = _zeropoint_row(meta, radius, key, fraction)
        used = np.zeros(len(diff), bool)
        if not has_catalogue:
            row["reason"] = f"the reference catalogue has no {column}"
        elif not np.isfinite(fraction):
            row["reason"] = "no aperture correction (no bright isolated star)"
        elif candidate.sum() < params.min_stars:
            row["reason"] = f"only {int(candidate.sum())} usable reference stars"
        else:
            idx = np.flatnonzero(candidate)
            values = diff[idx]
            slope, slope_err = np.nan, np.nan
            if params.colour_term:
                ok = np.isfinite(colour[idx])
                idx, values = idx[ok], values[ok]
                clipped = sigma_clip(values, sigma=params.sigma_clip, maxiters=5)
                keep = ~np.ma.getmaskarray(clipped)
                coef, cov = np.polyfit(colour[idx][keep], values[keep], 1, cov=True)
                slope, slope_err = float(coef[0]), float(np.sqrt(cov[0, 0]))
                values = values - slope * colour[idx]
            clipped = sigma_clip(values, sigma=params.sigma_clip, maxiters=5)
            keep = ~np.ma.getmaskarray(clipped)
            n = int(keep.sum())
            zp = float(np.median(values[keep]))
            spread = float(np.std(values[keep], ddof=1)) if n > 1 else np.nan
            used[idx[keep]] = True
            row.update(
                zeropoint=zp,
                zeropoint_err=1.2533 * spread / np.sqrt(n),
                n_stars=n,
                colour_term=slope,
                colour_term_err=slope_err,
            )
        rows.append(row)
        zp = row["zeropoint"]
        slope = row["colour_term"] if np.isfinite(row["colour_term"]) else 0.0
        sel = np.flatnonzero(candidate)
        star_tables.append(
            Table(
                {
                    "stem": np.full(len(sel), row["stem"]),
                    "filter": np.full(len(sel), band),
                    "aperture": np.full(len(sel), key),
                    "aperture_arcsec": np.full(len(sel), radius),
                    "id": np.asarray(reference["id"])[sel],
                    "catalogue_mag": cat_mag[sel],
                    "colour": colour[sel],
                    "residual": diff[sel] - slope * np.nan_to_num(colour[sel]) - zp,
                    "used": used[sel],
                }
            )
        )
    return Table(rows=rows), vstack(star_tables) if star_tables else Table()


def failed_frame_zeropoints(
    photometry: Table, apertures_arcsec: list[float], keys: list[str] | None = None
) -> Table:
    """Zero-point rows of a frame whose photometry failed: NaN, with the reason.

    Parameters
    ----------
    photometry : astropy.table.Table
        The failed frame's table (`aifa_steps.photometry.frame.failed_photometry`).
    apertures_arcsec : list of float
        The target's apertures (one row each).
    keys : list of str, optional
        Their column suffixes (default: the radii).
    """
    reason = "photometry failed: " + str(photometry.meta.get("REASON", ""))
    keys = keys or aperture_keys(float(r) for r in apertures_arcsec)
    rows = [
        _zeropoint_row(photometry.meta, float(radius), key, reason=reason)
        for radius, key in zip(apertures_arcsec, keys, strict=True)
    ]
    return Table(rows=rows)


def _zeropoint_row(
    meta, radius: float, key: str, fraction: float = np.nan, reason: str = ""
) -> dict:
    """A row of ``zeropoints.ecsv`` without a zero point yet.

    The frame's properties come from its photometry metadata (NaN where a failed frame has
    none).
    """

    def value(key: str) -> float:
        return float(meta.get(key, np.nan))

    return {
        "stem": str(meta["STEM"]),
        "object": str(meta["OBJECT"]),
        "target": str(meta.get("TARGET") or meta["OBJECT"]),
        "filter": str(meta["FILTER"]),
        "aperture": key,
        "aperture_arcsec": radius,
        "zeropoint": np.nan,
        "zeropoint_err": np.nan,
        "n_stars": 0,
        "airmass": value("AIRMASS"),
        "mjd": value("MJD"),
        "bjd_tdb": value("BJD_TDB"),
        "exptime": value("EXPTIME"),
        "seeing_arcsec": value("SEEING"),
        "aperture_fraction": fraction,
        "colour_term": np.nan,
        "colour_term_err": np.nan,
        "reason": reason,
    }


def night_zeropoints(
    frames: Iterable[tuple[Table, Table]], params: ZeropointParameters | None = None
) -> tuple[Table, Table, list[str]]:
    """Zero points of every frame of the night.

    Frames whose photometry failed get rows without zero point that carry the reason.

    Parameters
    ----------
    frames : iterable of (Table, Table)
        Each frame's photometry table and its target's reference table.
    params : ZeropointParameters, optional
        Settings.

    Returns
    -------
    zeropoints, stars : astropy.table.Table
        `frame_zeropoints` rows of all frames (empty tables without frames).
    problems : list of str
        One message per failed frame and per aperture without zero point.
    """
    zp_rows, star_rows, problems = [], [], []
    for photometry, reference in frames:
        reason = photometry_failed(photometry)
        if reason:
            problems.append(f"{photometry.meta['STEM']}: photometry failed: {reason}")
            radii, keys = table_apertures(reference.meta)
            zp_rows.append(failed_frame_zeropoints(photometry, radii, keys))
            continue
        zps, stars = frame_zeropoints(photometry, reference, params)
        zp_rows.append(zps)
        star_rows.append(stars)
        problems.extend(
            f"{row['stem']}, aperture {row['aperture']}: no zero point: {row['reason']}"
            for row in zps[zps["reason"] != ""]
        )
    zeropoints = vstack(zp_rows) if zp_rows else Table()
    stars = vstack(star_rows) if star_rows else Table()
    return zeropoints, stars, problems


def photometry_targets(
    objects: list[str], references: dict[str, Table], zeropoints: Table
) -> Table:
    """One row per observed target: what its photometry achieved, or why it has none.

    Parameters
    ----------
    objects : list of str
        All targets of the night's inventory.
    references : dict
        Reference tables of the targets that have photometry.
    zeropoints : astropy.table.Table
        The night's zero points.

    Returns
    -------
    astropy.table.Table
        ``object``, ``reference_frame``, ``n_sources``, ``n_catalogue`` (matched),
        ``n_frames`` (photometered), ``n_calibrated`` (frames with a zero point in every
        aperture), ``reason`` (empty when all is well).
    """
    rows = []
    for obj in objects:
        row = {
            "object": obj,
            "reference_frame": "",
            "n_sources": 0,
            "n_catalogue": 0,
            "n_frames": 0,
            "n_calibrated": 0,
            "reason": "",
        }
        reference = references.get(obj)
        if reference is None:
            row["reason"] = "no solved frame: no photometry"
            rows.append(row)
            continue
        key = "target" if "target" in zeropoints.colnames else "object"
        mine = zeropoints[zeropoints[key] == obj] if len(zeropoints) else zeropoints
        frames = sorted(set(mine["stem"])) if len(mine) else []
        calibrated = [
            stem
            for stem in frames
            if np.isfinite(np.asarray(mine["zeropoint"][mine["stem"] == stem], float)).all()
        ]
        frame = reference.meta.get("REFFRAME", "")
        row.update(
            reference_frame=frame[0] if isinstance(frame, (list, tuple)) else str(frame),
            n_sources=len(reference),
            n_catalogue=int((np.asarray(reference["refcat_row"]) >= 0).sum()),
            n_frames=len(frames),
            n_calibrated=len(calibrated),
        )
        if row["n_catalogue"] == 0:
            row["reason"] = "no reference-catalogue star in the field: no zero points"
        elif len(calibrated) < len(frames):
            row["reason"] = f"{len(frames) - len(calibrated)} frames without zero point"
        rows.append(row)
    return Table(rows=rows) if rows else Table(names=("object", "reason"), dtype=(str, str))
