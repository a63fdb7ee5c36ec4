"""Photometric zero points, extinction and calibrated magnitudes.

The zero point of a frame, filter and aperture is the robust mean of
``m_cat + 2.5 log10(flux / fraction)`` over reference stars matched to the catalogue, isolated,
unflagged and well measured, where ``fraction`` is the frame's aperture correction (the share of
a star's total flux inside the aperture). It is in the simulator's sense: a star of magnitude m
gives ``10**(-0.4 (m - zeropoint))`` ADU in total in the frame. A star's calibrated magnitude
is then ``zeropoint - 2.5 log10(flux / fraction)``, the same for every aperture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.stats import sigma_clip
from astropy.table import Table, vstack

from aifa_steps.photometry.frame import table_apertures
from aifa_steps.photometry.refcat import REFCAT_COLUMNS

__all__ = [
    "ZeropointParameters",
    "frame_zeropoints",
    "failed_frame_zeropoints",
    "fit_extinction",
    "calibrated_magnitudes",
    "night_magnitudes",
    "photometry_targets",
    "aperture_rows",
]

LN10_2_5 = 2.5 / np.log(10.0)  # 1.0857: magnitude error of a relative flux error


@dataclass
class ZeropointParameters:
    """Settings of the zero points (the ``zeropoints`` section of the config).

    Parameters
    ----------
    min_snr : float
        Reference stars need at least this signal-to-noise ratio in the aperture.
    max_catalogue_error : float
        ... and a catalogue error below this (mag).
    sigma_clip : float
        Rejection threshold of the robust mean.
    min_stars : int
        Fewer stars give no zero point.
    colour : list of str
        The two bands of the colour (e.g. ``[g, i]``) for the colour term.
    colour_term : bool
        Fit and apply a colour term per frame (``zeropoint`` then refers to colour 0).
    catalogue_aperture_arcsec : float or ``"auto"``
        Aperture of the night's mean magnitudes (``magnitudes.ecsv``), see
        `aifa_steps.photometry.frame.catalogue_aperture_key`.
    catalogue_aperture_fwhm : float
        With automatic apertures: the catalogue aperture's radius in units of the FWHM.
    """

    min_snr: float = 50.0
    max_catalogue_error: float = 0.05
    sigma_clip: float = 3.0
    min_stars: int = 5
    colour: tuple[str, str] = ("g", "i")
    colour_term: bool = False
    catalogue_aperture_arcsec: float | str = 4.0
    catalogue_aperture_fwhm: float = 1.5

    @classmethod
    def from_config(cls, section: dict) -> ZeropointParameters:
        """Parameters from the configuration's ``zeropoints`` section."""
        kwargs = {k: v for k, v in section.items() if k in cls.__dataclass_fields__}
        if "colour" in kwargs:
            kwargs["colour"] = tuple(kwargs["colour"])
        return cls(**kwargs)


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


def _colour(reference: Table, bands: tuple[str, str]) -> np.ndarray:
    first, second = (f"{b}mag" for b in bands)
    if first in reference.colnames and second in reference.colnames:
        return np.asarray(reference[first], float) - np.asarray(reference[second], float)
    return np.full(len(reference), np.nan)


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
    colour = _colour(reference, params.colour)
    isolated = np.asarray(reference["isolated"], bool)
    rows, star_tables = [], []
    for radius, key in zip(radii, keys, strict=True):
        fraction = float(meta.get(f"APFRAC_{key}", np.nan))
        flux = np.asarray(photometry[f"flux_{key}"], float)
        snr = flux / np.asarray(photometry[f"flux_err_{key}"], float)
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
    keys = keys or [f"{float(r):g}" for r in apertures_arcsec]
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


def fit_extinction(zeropoints: Table, aperture: str | float, sigma: float = 3.0) -> Table:
    """Extinction coefficient per filter from the zero points against airmass.

    Fits ``zeropoint - 2.5 log10(exptime) = zp0 - k X`` (zero point of one second, X airmass)
    with iterative sigma clipping (clouds only ever lower a zero point).

    Parameters
    ----------
    zeropoints : astropy.table.Table
        The night's zero points (`frame_zeropoints` rows of all frames).
    aperture : str or float
        Aperture whose zero points are used (suffix or radius, see `aperture_rows`).
    sigma : float
        Clipping threshold.

    Returns
    -------
    astropy.table.Table
        ``filter``, ``k`` (mag per airmass), ``k_err``, ``zeropoint_1s_airmass0``, ``n_frames``,
        ``airmass_min``, ``airmass_max``, ``reason`` (why there is no fit: too few frames or
        too small an airmass range).
    """
    rows = []
    sel = aperture_rows(zeropoints, aperture) & np.isfinite(
        np.asarray(zeropoints["zeropoint"], float)
    )
    table = zeropoints[sel]
    for band in sorted(set(table["filter"])):
        part = table[table["filter"] == band]
        x = np.asarray(part["airmass"], float)
        y = np.asarray(part["zeropoint"], float) - 2.5 * np.log10(
            np.asarray(part["exptime"], float)
        )
        row = {
            "filter": band,
            "k": np.nan,
            "k_err": np.nan,
            "zeropoint_1s_airmass0": np.nan,
            "n_frames": len(part),
            "airmass_min": float(x.min()) if len(x) else np.nan,
            "airmass_max": float(x.max()) if len(x) else np.nan,
            "reason": "",
        }
        if len(part) < 4:
            row["reason"] = f"only {len(part)} frames"
        elif np.ptp(x) < 0.1:
            row["reason"] = f"airmass range {np.ptp(x):.2f} < 0.1"
        else:
            keep = np.ones(len(x), bool)
            for _ in range(5):
                coef = np.polyfit(x[keep], y[keep], 1)
                res = y - np.polyval(coef, x)
                scatter = 1.4826 * np.median(np.abs(res[keep] - np.median(res[keep])))
                new = np.abs(res) < sigma * max(scatter, 1e-3)
                if new.sum() < 4 or np.array_equal(new, keep):
                    break
                keep = new
            coef, cov = np.polyfit(x[keep], y[keep], 1, cov=True)
            row.update(
                k=float(-coef[0]),
                k_err=float(np.sqrt(cov[0, 0])),
                zeropoint_1s_airmass0=float(coef[1]),
                n_frames=int(keep.sum()),
            )
        rows.append(row)
    names = (
        "filter",
        "k",
        "k_err",
        "zeropoint_1s_airmass0",
        "n_frames",
        "airmass_min",
        "airmass_max",
        "reason",
    )
    return Table(rows=rows, names=names) if rows else Table(names=names)


def calibrated_magnitudes(
    photometry: Table, zeropoints: Table, reference: Table, colour_bands=("g", "i")
) -> Table:
    """Calibrated magnitudes of every reference source in one frame, for every aperture.

    Parameters
    ----------
    photometry : astropy.table.Table
        The frame's photometry table.
    zeropoints : astropy.table.Table
        The frame's zero points (one row per aperture).
    reference : astropy.table.Table
        The target's reference sources (for the colour of the colour term).
    colour_bands : tuple of str
        Bands of the colour term's colour.

    Returns
    -------
    astropy.table.Table
        ``stem``, ``filter``, ``mjd``, ``bjd_tdb``, ``airmass``, ``id`` and per aperture
        ``mag_<r>``, ``mag_err_<r>`` (photon noise, aperture correction and zero point) and
        ``flag_<r>``. Magnitudes are NaN without flux or zero point.
    """
    meta = photometry.meta
    radii, keys = table_apertures(meta)
    n = len(photometry)
    out = Table(
        {
            "stem": np.full(n, str(meta["STEM"])),
            "filter": np.full(n, str(meta["FILTER"])),
            "mjd": np.full(n, float(meta["MJD_MID"])),
            "bjd_tdb": np.full(n, float(meta["BJD_TDB"])),
            "airmass": np.full(n, float(meta["AIRMASS"])),
            "id": np.asarray(photometry["id"]),
        }
    )
    colour = _colour(reference, tuple(colour_bands))
    # Sources without a catalogue colour get the median colour.
    typical = np.nanmedian(colour) if np.isfinite(colour).any() else 0.0
    colour = np.where(np.isfinite(colour), colour, typical)
    for radius, key in zip(radii, keys, strict=True):
        zp_row = zeropoints[
            aperture_rows(zeropoints, key if "aperture" in zeropoints.colnames else radius)
        ]
        zp = float(zp_row["zeropoint"][0]) if len(zp_row) else np.nan
        zp_err = float(zp_row["zeropoint_err"][0]) if len(zp_row) else np.nan
        slope = float(zp_row["colour_term"][0]) if len(zp_row) else np.nan
        slope = slope if np.isfinite(slope) else 0.0
        fraction = float(meta.get(f"APFRAC_{key}", np.nan))
        fraction_err = float(meta.get(f"APFERR_{key}", np.nan))
        flux = np.asarray(photometry[f"flux_{key}"], float)
        flux_err = np.asarray(photometry[f"flux_err_{key}"], float)
        with np.errstate(invalid="ignore", divide="ignore"):
            mag = zp + slope * colour - 2.5 * np.log10(flux / fraction)
            err = np.sqrt(
                (LN10_2_5 * flux_err / flux) ** 2
                + (LN10_2_5 * fraction_err / fraction) ** 2
                + zp_err**2
            )
        bad = ~(flux > 0)
        mag[bad], err[bad] = np.nan, np.nan
        out[f"mag_{key}"] = mag
        out[f"mag_err_{key}"] = err
        out[f"flag_{key}"] = photometry[f"flag_{key}"]
    return out


def night_magnitudes(
    calibrated: Table, reference: Table, aperture: str | float, sigma: float = 3.0
) -> Table:
    """Mean magnitude of every source per filter over the night.

    Parameters
    ----------
    calibrated : astropy.table.Table
        `calibrated_magnitudes` rows of all frames of one target.
    reference : astropy.table.Table
        The target's reference sources (positions and cross-identification are copied).
    aperture : str or float
        Aperture used: its column suffix (``4``, ``1.5fwhm``) or radius in arcsec.
    sigma : float
        Clipping threshold of the weighted mean.

    Returns
    -------
    astropy.table.Table
        Reference columns (``id``, ``ra``, ``dec``, ``isolated``, catalogue match and
        magnitudes) plus, per filter f: ``f`` (weighted mean of unflagged measurements),
        ``f_err`` (the larger of the formal error and the scatter over root n), ``f_scatter``
        (standard deviation of the frames) and ``f_n`` (frames used).
    """
    key = aperture if isinstance(aperture, str) else f"{aperture:g}"
    radii, keys = table_apertures(reference.meta)
    radius = dict(zip(keys, radii, strict=True)).get(key, np.nan)
    if not isinstance(aperture, str):
        radius = float(aperture)
    catalogue = [c for c in REFCAT_COLUMNS[2:] if c in reference.colnames]
    wanted = ("id", "ra", "dec", "x", "y", "segment_flux", "isolated", "refcat_sep_arcsec")
    out = reference[[c for c in wanted if c in reference.colnames] + catalogue].copy()
    out.rename_columns(catalogue, [f"refcat_{c}" for c in catalogue])
    index = {int(i): k for k, i in enumerate(np.asarray(reference["id"]))}
    bands = sorted(set(calibrated["filter"])) if "filter" in calibrated.colnames else []
    for band in bands:
        part = calibrated[(calibrated["filter"] == band) & (calibrated[f"flag_{key}"] == 0)]
        mean = np.full(len(out), np.nan)
        err = np.full(len(out), np.nan)
        scatter = np.full(len(out), np.nan)
        count = np.zeros(len(out), int)
        ids = np.asarray(part["id"])
        mags = np.asarray(part[f"mag_{key}"], float)
        errs = np.asarray(part[f"mag_err_{key}"], float)
        order = np.argsort(ids, kind="stable")
        ids, mags, errs = ids[order], mags[order], errs[order]
        bounds = np.flatnonzero(np.diff(ids)) + 1
        for group_ids, m, e in zip(
            np.split(ids, bounds), np.split(mags, bounds), np.split(errs, bounds), strict=True
        ):
            if len(group_ids) == 0:
                continue
            ok = np.isfinite(m) & np.isfinite(e) & (e > 0)
            m, e = m[ok], e[ok]
            if m.size == 0:
                continue
            if m.size >= 3:
                clip = ~np.ma.getmaskarray(sigma_clip(m, sigma=sigma, maxiters=3))
                m, e = m[clip], e[clip]
            w = 1.0 / e**2
            k = index[int(group_ids[0])]
            mean[k] = float(np.sum(w * m) / np.sum(w))
            formal = float(np.sqrt(1.0 / np.sum(w)))
            spread = float(np.std(m, ddof=1)) if m.size > 1 else np.nan
            scatter[k] = spread
            err[k] = max(formal, spread / np.sqrt(m.size)) if m.size > 1 else formal
            count[k] = m.size
        out[band], out[f"{band}_err"] = mean, err
        out[f"{band}_scatter"], out[f"{band}_n"] = scatter, count
    out.meta["APERTURE"] = (float(radius), "aperture of the magnitudes [arcsec]")
    out.meta["APKEY"] = (key, "its column suffix")
    return out


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
