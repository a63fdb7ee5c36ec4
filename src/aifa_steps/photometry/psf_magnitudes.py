"""PSF magnitudes beside the aperture's: a frame's PSF fluxes calibrated, the night's columns.

`attach_psf` joins a frame's PSF photometry (`aifa_steps.photometry.psf_frame`) to its aperture
photometry, `psf_magnitudes` calibrates the PSF fluxes with the frame's zero point (that of the
catalogue aperture, ``PSFKEY``) and the PSF's aperture correction ``APFRAC_psf``, and
`psf_night_columns` adds the aperture's night magnitudes and the quality of the fits to the
night's PSF magnitudes (`aifa_steps.photometry.magnitudes.target_magnitudes`).
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from aifa_steps.photometry.zeropoints import aperture_rows, calibrate_fluxes

__all__ = [
    "PSF_COLUMNS",
    "PSF_NO_FIT",
    "PSF_SATURATED",
    "PSF_POOR_FIT",
    "PSF_PARTIAL",
    "attach_psf",
    "psf_magnitudes",
    "psf_night_columns",
]

#: Columns of a PSF table that join a frame's photometry.
PSF_COLUMNS = ("flux_psf", "flux_err_psf", "flag_psf", "qfit_psf", "qnoise_psf", "group_psf")

#: ``flag_psf`` bits (set by `aifa_steps.photometry.psf_frame`).
PSF_NO_FIT = 1  # no fit: off the frame, too few pixels or no convergence
PSF_SATURATED = 2  # saturated pixels within one FWHM: fitted on the wings
PSF_POOR_FIT = 4  # residual well above the noise, or the position ran into its bound
PSF_PARTIAL = 8  # masked or off-frame pixels in the fitted box


def psf_magnitudes(photometry: Table, zeropoints: Table, colour: np.ndarray, out: Table) -> None:
    """Add the calibrated PSF magnitudes of a frame to its `calibrated_magnitudes` table.

    Adds ``mag_psf``, ``mag_err_psf`` (flux, aperture correction and zero point errors),
    ``flag_psf`` and ``qexcess_psf`` (``qfit_psf - qnoise_psf``) to ``out``; a frame without PSF
    columns or zero point gets NaN and `PSF_NO_FIT`.

    Parameters
    ----------
    photometry : astropy.table.Table
        The frame's photometry with `attach_psf` columns.
    zeropoints : astropy.table.Table
        The frame's zero points.
    colour : numpy.ndarray
        Catalogue colour of each source (for a colour term).
    out : astropy.table.Table
        The frame's calibrated magnitudes, changed in place.
    """
    n = len(photometry)
    meta = photometry.meta
    mag, err, excess = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    flag = np.full(n, PSF_NO_FIT)
    key = str(meta.get("PSFKEY", ""))
    zp_row = zeropoints[aperture_rows(zeropoints, key)] if key and len(zeropoints) else []
    if "flux_psf" in photometry.colnames and len(zp_row):
        fraction_err = float(meta.get("APFERR_psf", np.nan))
        mag, err = calibrate_fluxes(
            photometry["flux_psf"],
            photometry["flux_err_psf"],
            zp_row,
            colour,
            float(meta.get("APFRAC_psf", np.nan)),
            fraction_err if np.isfinite(fraction_err) else 0.0,
        )
        flag = np.asarray(photometry["flag_psf"], int).copy()
        bad = ~np.isfinite(mag)
        flag[bad] |= PSF_NO_FIT
        excess = np.asarray(photometry["qfit_psf"], float) - np.asarray(
            photometry["qnoise_psf"], float
        )
    out["mag_psf"], out["mag_err_psf"], out["flag_psf"] = mag, err, flag
    out["qexcess_psf"] = excess


def attach_psf(photometry: Table, psf: Table | None) -> Table:
    """A frame's aperture photometry with its PSF photometry's columns and calibration.

    Parameters
    ----------
    photometry : astropy.table.Table
        The frame's aperture photometry (``photometry/<object>/<stem>.ecsv``).
    psf : astropy.table.Table or None
        Its PSF photometry (``photometry/<object>/psf/<stem>.ecsv``); None or a failed one
        (``PHOTOK`` False) leaves the frame without PSF magnitudes.

    Returns
    -------
    astropy.table.Table
        A copy with `PSF_COLUMNS` (matched by ``id``) and ``APFRAC_psf``, ``APFERR_psf``,
        ``PSFKEY`` in the metadata.
    """
    out = photometry.copy(copy_data=False)
    if psf is None or psf.meta.get("PHOTOK", True) is False or not len(psf):
        return out
    if str(psf.meta.get("STEM")) != str(photometry.meta.get("STEM")):
        raise ValueError(
            f"PSF table of {psf.meta.get('STEM')} given for frame {photometry.meta.get('STEM')}"
        )
    row = {int(i): k for k, i in enumerate(np.asarray(psf["id"]))}
    index = np.array([row.get(int(i), -1) for i in np.asarray(photometry["id"])], int)
    found = index >= 0
    for name in PSF_COLUMNS:
        if name not in psf.colnames:
            continue
        values = np.asarray(psf[name])
        fill = PSF_NO_FIT if name == "flag_psf" else (0 if values.dtype.kind in "iu" else np.nan)
        column = np.full(len(out), fill, dtype=values.dtype)
        column[found] = values[index[found]]
        out[name] = column
    for key in ("APFRAC_psf", "APFERR_psf", "PSFKEY", "PSFKIND"):
        if key in psf.meta:
            out.meta[key] = psf.meta[key]
    return out


def psf_night_columns(calibrated: Table, psf: Table, aperture: Table) -> Table:
    """The night's PSF magnitudes with the aperture's beside them and the fits' quality.

    Parameters
    ----------
    calibrated : astropy.table.Table
        Calibrated magnitudes of all frames (with `psf_magnitudes` columns if any frame had
        PSF photometry).
    psf, aperture : astropy.table.Table
        The night's magnitudes (`aifa_steps.photometry.magnitudes.night_magnitudes`) from the
        PSF fits and from the catalogue aperture; without PSF columns in ``calibrated``,
        ``psf`` is ignored and the PSF magnitudes are NaN.

    Returns
    -------
    astropy.table.Table
        ``psf`` plus per filter ``f_aper``, ``f_aper_err``, ``f_aper_n``, and ``psf_poor``,
        ``poor_fit``, ``saturated``, ``psf_qexcess`` (see `target_magnitudes
        <aifa_steps.photometry.magnitudes.target_magnitudes>`), with the aperture's metadata.
    """
    bands = [b for b in ("g", "r", "i") if b in aperture.colnames]
    out = psf.copy() if "mag_psf" in calibrated.colnames else aperture.copy()
    for band in bands:
        out[f"{band}_aper"] = aperture[band]
        out[f"{band}_aper_err"] = aperture[f"{band}_err"]
        out[f"{band}_aper_n"] = aperture[f"{band}_n"]
        if "mag_psf" not in calibrated.colnames:
            out[band] = np.nan
            out[f"{band}_err"] = np.nan
            out[f"{band}_n"] = 0
    index = {int(i): k for k, i in enumerate(np.asarray(out["id"]))}
    poor = np.zeros(len(out))
    saturated = np.zeros(len(out), bool)
    excess = np.full(len(out), np.nan)
    if "flag_psf" in calibrated.colnames and len(calibrated):
        flags = np.asarray(calibrated["flag_psf"], int)
        used = (flags & PSF_NO_FIT) == 0
        ids = np.asarray(calibrated["id"])[used]
        rows = np.array([index[int(i)] for i in ids], int)
        count = np.bincount(rows, minlength=len(out))
        n_poor = np.bincount(rows, weights=(flags[used] & PSF_POOR_FIT) > 0, minlength=len(out))
        n_sat = np.bincount(rows, weights=(flags[used] & PSF_SATURATED) > 0, minlength=len(out))
        with np.errstate(invalid="ignore", divide="ignore"):
            poor = np.where(count > 0, n_poor / count, np.nan)
        saturated = n_sat > 0
        q = np.asarray(calibrated["qexcess_psf"], float)[used]
        order = np.argsort(rows, kind="stable")
        bounds = np.flatnonzero(np.diff(rows[order])) + 1
        for group in np.split(order, bounds):
            if group.size:
                excess[rows[group[0]]] = (
                    float(np.nanmedian(q[group])) if np.isfinite(q[group]).any() else np.nan
                )
    out["psf_poor"] = poor
    out["poor_fit"] = np.asarray(poor >= 0.5)
    out["saturated"] = saturated
    out["psf_qexcess"] = excess
    out.meta.update(aperture.meta)
    return out
