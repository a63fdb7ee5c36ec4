"""Extinction, calibrated magnitudes of every frame and a target's mean magnitudes of the night.

A star's calibrated magnitude is ``zeropoint - 2.5 log10(flux / fraction)`` with the frame's
zero point (`aifa_steps.photometry.zeropoints`) and aperture correction, the same for every
aperture. PSF fluxes (`aifa_steps.photometry.psf_frame`) are calibrated the same way: their
``fraction`` is the frame's ratio of PSF to total flux, their zero point the catalogue
aperture's.
"""

from __future__ import annotations

import numpy as np
from astropy.stats import sigma_clip
from astropy.table import Table, vstack

from aifa_steps.core.formats import aperture_keys, flux_column, flux_err_column
from aifa_steps.photometry.aperture_plans import table_apertures
from aifa_steps.photometry.psf_magnitudes import (
    PSF_NO_FIT,
    attach_psf,
    psf_magnitudes,
    psf_night_columns,
)
from aifa_steps.photometry.refcat import REFCAT_COLUMNS
from aifa_steps.photometry.zeropoints import aperture_rows, calibrate_fluxes, catalogue_colour

__all__ = [
    "fit_extinction",
    "calibrated_magnitudes",
    "night_magnitudes",
    "target_magnitudes",
    "attach_psf",
]


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
        too small an airmass range). Empty, without columns, for a night without zero
        points.
    """
    if not len(zeropoints):
        return Table()
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
    photometry: Table,
    zeropoints: Table,
    reference: Table,
    colour_bands=("g", "i"),
    psf: bool = False,
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
    psf : bool
        Also calibrate the PSF fluxes (`attach_psf` columns): ``mag_psf``, ``mag_err_psf``,
        ``flag_psf`` and ``qexcess_psf`` (``qfit_psf - qnoise_psf``). A frame without them
        gets NaN and ``flag_psf`` 1 (no fit).

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
    colour = catalogue_colour(reference, tuple(colour_bands))
    # Sources without a catalogue colour get the median colour.
    typical = np.nanmedian(colour) if np.isfinite(colour).any() else 0.0
    colour = np.where(np.isfinite(colour), colour, typical)
    for radius, key in zip(radii, keys, strict=True):
        zp_row = zeropoints[
            aperture_rows(zeropoints, key if "aperture" in zeropoints.colnames else radius)
        ]
        mag, err = calibrate_fluxes(
            photometry[flux_column(key)],
            photometry[flux_err_column(key)],
            zp_row,
            colour,
            float(meta.get(f"APFRAC_{key}", np.nan)),
            float(meta.get(f"APFERR_{key}", np.nan)),
        )
        out[f"mag_{key}"] = mag
        out[f"mag_err_{key}"] = err
        out[f"flag_{key}"] = photometry[f"flag_{key}"]
    if psf:
        psf_magnitudes(photometry, zeropoints, colour, out)
    return out


def night_magnitudes(
    calibrated: Table,
    reference: Table,
    aperture: str | float,
    sigma: float = 3.0,
    exclude: int = -1,
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
    exclude : int
        Flag bits that leave a measurement out (default: every bit).

    Returns
    -------
    astropy.table.Table
        Reference columns (``id``, ``ra``, ``dec``, ``isolated``, catalogue match and
        magnitudes) plus, per filter f: ``f`` (weighted mean of unflagged measurements),
        ``f_err`` (the larger of the formal error and the scatter over root n), ``f_scatter``
        (standard deviation of the frames) and ``f_n`` (frames used).
    """
    key = aperture if isinstance(aperture, str) else aperture_keys([aperture])[0]
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
        flags = np.asarray(calibrated[f"flag_{key}"], int)
        part = calibrated[(calibrated["filter"] == band) & ((flags & exclude) == 0)]
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


def target_magnitudes(
    tables: list[Table],
    zeropoints: Table,
    reference: Table,
    aperture: str | float,
    colour_bands: tuple[str, str] = ("g", "i"),
    name: str = "",
    psf_tables: list[Table] | None = None,
) -> tuple[Table, Table]:
    """Calibrated magnitudes of a target's frames and its mean magnitudes of the night.

    Parameters
    ----------
    tables : list of astropy.table.Table
        Photometry of the target's frames whose photometry did not fail
        (`aifa_steps.photometry.frame.usable_photometry`).
    zeropoints : astropy.table.Table
        The night's zero points.
    reference : astropy.table.Table
        The target's reference sources.
    aperture : str or float
        Aperture of the mean magnitudes (`night_magnitudes`).
    colour_bands : tuple of str
        Bands of the colour term's colour.
    name : str
        The target's name when the reference table has no ``OBJECT``.
    psf_tables : list of astropy.table.Table, optional
        PSF photometry of the frames (`aifa_steps.photometry.psf_frame`, matched by
        ``STEM``; failed ones allowed). Given, the mean magnitudes ``g``, ``r``, ``i`` are PSF
        magnitudes and the aperture's are kept beside them (see Returns).

    Returns
    -------
    calibrated, magnitudes : astropy.table.Table
        `calibrated_magnitudes` rows of all frames, and `night_magnitudes` with ``OBJECT``
        and ``METHOD`` (``psf`` or ``aperture``). With PSF tables, per filter f also
        ``f_aper``, ``f_aper_err``, ``f_aper_n`` (the aperture's mean magnitudes), and
        ``psf_poor`` (fraction of the star's PSF fits marked poor), ``poor_fit`` (half of
        them or more), ``saturated`` (a core saturated in any frame: fitted on the wings),
        ``psf_qexcess`` (median residual of the fits beyond noise, in units of the flux).
    """
    psf = psf_tables is not None
    if psf:
        by_stem = {str(t.meta.get("STEM")): t for t in psf_tables}
        tables = [attach_psf(t, by_stem.get(str(t.meta["STEM"]))) for t in tables]
    frames = [
        calibrated_magnitudes(
            photometry,
            zeropoints[zeropoints["stem"] == photometry.meta["STEM"]],
            reference,
            colour_bands,
            psf=psf,
        )
        for photometry in tables
    ]
    calibrated = vstack(frames) if frames else Table()
    magnitudes = night_magnitudes(calibrated, reference, aperture)
    if psf:
        aperture_magnitudes = magnitudes
        if "mag_psf" in calibrated.colnames:
            magnitudes = night_magnitudes(calibrated, reference, "psf", exclude=PSF_NO_FIT)
        magnitudes = psf_night_columns(calibrated, magnitudes, aperture_magnitudes)
    magnitudes.meta["OBJECT"] = reference.meta.get("OBJECT", name)
    magnitudes.meta["METHOD"] = ("psf" if psf else "aperture", "how g, r, i were measured")
    return calibrated, magnitudes
