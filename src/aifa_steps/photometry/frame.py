"""Photometry of one solved frame: background, forced apertures, seeing, aperture corrections.

`measure_frame` combines the building blocks (`aifa_steps.photometry.background`,
`~aifa_steps.photometry.apertures`, `~aifa_steps.photometry.growth`) into the table that the
workflow writes for every solved frame (``photometry/<object>/<stem>.ecsv``): one row per
reference source, one set of columns per aperture, and the frame's properties (times, filter,
exposure, airmass, seeing, aperture corrections) in the table's metadata. `frame_photometry` is
the whole job; a frame that fails gets `failed_photometry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.nddata import CCDData
from astropy.table import Table
from astropy.wcs.utils import proj_plane_pixel_scales

from aifa_steps.core.failures import FrameFailure
from aifa_steps.core.formats import flux_column, flux_err_column, snr_column
from aifa_steps.core.observing import Site, airmass, bjd_tdb
from aifa_steps.photometry.aperture_plans import aperture_plan, table_apertures
from aifa_steps.photometry.apertures import forced_photometry
from aifa_steps.photometry.background import estimate_background
from aifa_steps.photometry.growth import aperture_corrections, frame_seeing, star_fwhm
from aifa_steps.photometry.settings import ARCSEC_APERTURES, PhotometryParameters

__all__ = [
    "FrameInfo",
    "measure_frame",
    "frame_photometry",
    "frame_photometry_summary",
    "check_stars_measured",
    "failed_photometry",
    "photometry_failed",
    "usable_photometry",
]


@dataclass
class FrameInfo:
    """What the inventory knows about a frame (carried into the photometry table).

    Parameters
    ----------
    stem : str
        Raw file name without extension.
    object, filter : str
        Target and filter names.
    exptime : float
        Exposure time (s).
    mjd : float
        Exposure start, MJD (UTC).
    """

    stem: str
    object: str
    filter: str
    exptime: float
    mjd: float

    @classmethod
    def from_inventory(cls, stem: str, frame: Mapping[str, Any]) -> FrameInfo:
        """The frame's values from its inventory row.

        ``frame`` holds ``object``, ``filter``, ``exptime`` and ``mjd`` (the workflow's
        ``frame_info``).
        """
        return cls(
            stem=str(stem),
            object=str(frame["object"]),
            filter=str(frame["filter"]),
            exptime=float(frame["exptime"]),
            mjd=float(frame["mjd"]),
        )


def measure_frame(
    ccd: CCDData,
    reference: Table,
    info: FrameInfo,
    site: Site,
    target_radec: tuple[float, float],
    params: PhotometryParameters | None = None,
    saturation: float = 65535.0,
) -> Table:
    """Forced photometry of a solved frame at the reference positions of its target.

    Parameters
    ----------
    ccd : astropy.nddata.CCDData
        Calibrated frame with its solved WCS, uncertainty and ``flags``
        (`aifa_steps.calibration.calibrate`).
    reference : astropy.table.Table
        The target's reference sources (`aifa_steps.photometry.reference.reference_sources`).
    info : FrameInfo
        Inventory values of the frame.
    site : aifa_steps.core.observing.Site
        Observatory (airmass and barycentric time at mid-exposure).
    target_radec : tuple of float
        Target position (deg) for the barycentric correction.
    params : PhotometryParameters, optional
        Settings (default: the schema's, with apertures of `ARCSEC_APERTURES` arcsec).
    saturation : float
        Saturation level (ADU); stars peaking above half of it do not enter the curve of
        growth (non-linearity).

    Returns
    -------
    astropy.table.Table
        `aifa_steps.photometry.apertures.forced_photometry` columns plus ``snr_<r>`` and, with
        ``fit_fwhm``, ``fwhm_arcsec``. Metadata: ``STEM``, ``OBJECT``, ``FILTER``,
        ``EXPTIME``, ``MJD`` (start), ``MJD_MID``, ``BJD_TDB`` (mid-exposure, for the target;
        geocentric light time, within 0.02 s of the topocentric), ``AIRMASS``
        (mid-exposure), ``SEEING`` (arcsec), ``NSEEING``, ``APFRAC_<r>`` and
        ``APFERR_<r>`` (fraction of the total flux in each aperture and its error),
        ``MOFALPHA``, ``MOFBETA``, ``NGROWTH``, ``SKY`` and ``SKYRMS`` (median ADU),
        ``GROWTH_R``, ``GROWTH_F`` (the curve of growth).
    """
    params = params or PhotometryParameters(apertures=list(ARCSEC_APERTURES))
    if params.auto:
        if "APKEYS" not in reference.meta:
            raise ValueError(
                "automatic apertures need the target's apertures in the reference table "
                "(APERTURES, APKEYS: aifa_steps.photometry.aperture_plans.aperture_plan)"
            )
        radii_list, keys = table_apertures(reference.meta)
    else:
        radii_list, keys = aperture_plan(params.apertures, float("nan"))
    radii = tuple(radii_list)
    flags = getattr(ccd, "flags", None)
    bad = flags > 0 if flags is not None else ccd.mask
    data = np.asarray(ccd.data, dtype=np.float32)
    background, rms = estimate_background(
        data, bad, params.background_box, params.background_filter
    )
    uncertainty = ccd.uncertainty.array if ccd.uncertainty is not None else rms
    table = forced_photometry(
        data,
        uncertainty,
        ccd.wcs,
        reference["ra"],
        reference["dec"],
        radii,
        background=background,
        background_rms=rms,
        flags=flags,
        ids=reference["id"],
        background_box=params.background_box,
        keys=keys,
        annulus_arcsec=reference.meta.get("ANNULUS"),
    )
    for key in keys:
        table[snr_column(key)] = table[flux_column(key)] / table[flux_err_column(key)]
    residual = data - background

    # Bright, isolated, unflagged, unsaturated stars for the seeing and the curve of growth.
    sky = float(np.median(background))
    clean = np.all([table[f"flag_{k}"] == 0 for k in keys], axis=0)
    isolated = np.asarray(reference["isolated"], bool) if "isolated" in reference.colnames else 1
    linear = table["peak"] < 0.5 * saturation - sky
    strong = table[snr_column(keys[0])] >= params.min_growth_snr
    good = np.flatnonzero(clean & isolated & linear & strong)
    good = good[np.argsort(-np.asarray(table[flux_column(keys[-1])])[good])]
    good = good[: params.max_growth_stars]
    seeing, n_seeing = frame_seeing(residual, ccd.wcs, table["x"][good], table["y"][good])
    fit_radius = params.growth_radius_fwhm * (seeing if np.isfinite(seeing) else 3.0)
    fraction, fraction_err, growth, (alpha, beta) = aperture_corrections(
        residual, ccd.wcs, table["ra"][good], table["dec"][good], radii, max(fit_radius, 3.0)
    )
    if params.fit_fwhm:
        scale = float(np.mean(proj_plane_pixel_scales(ccd.wcs)) * 3600.0)
        fwhm = np.full(len(table), np.nan)
        fit = np.flatnonzero(clean & (table[snr_column(keys[0])] > 10))
        fwhm[fit] = star_fwhm(residual, table["x"][fit], table["y"][fit], mask=bad) * scale
        table["fwhm_arcsec"] = fwhm

    exposure_mid = info.mjd + 0.5 * info.exptime / 86400.0
    ra0, dec0 = target_radec
    meta = {
        "STEM": info.stem,
        "OBJECT": info.object,
        "FILTER": info.filter,
        "EXPTIME": float(info.exptime),
        "MJD": float(info.mjd),
        "MJD_MID": float(exposure_mid),
        "BJD_TDB": float(bjd_tdb(exposure_mid, ra0, dec0, site, topocentric=False)),
        "AIRMASS": float(airmass(exposure_mid, ra0, dec0, site)),
        "SEEING": seeing,
        "NSEEING": n_seeing,
        "MOFALPHA": alpha,
        "MOFBETA": beta,
        "NGROWTH": int(growth["n_stars"][0]),
        "SKY": sky,
        "SKYRMS": float(np.median(rms)),
        "APERTURES": list(radii),
        "APKEYS": list(keys),
        "APFWHM": float(reference.meta.get("APFWHM", np.nan)),
        "GROWTH_R": [float(v) for v in growth["radius_arcsec"]],
        "GROWTH_F": [float(v) for v in growth["fraction"]],
    }
    for key, f, e in zip(keys, fraction, fraction_err, strict=True):
        meta[f"APFRAC_{key}"] = float(f)
        meta[f"APFERR_{key}"] = float(e)
    table.meta.update(meta)
    return table


def frame_photometry(
    ccd: CCDData,
    reference: Table,
    info: FrameInfo,
    site: Site,
    target_radec: tuple[float, float],
    params: PhotometryParameters,
    saturation: float,
    target: str,
) -> Table:
    """The photometry job of one frame: `measure_frame`, checked, with its provenance.

    Parameters
    ----------
    ccd, reference, info, site, target_radec, params, saturation
        As for `measure_frame`.
    target : str
        File-safe name of the target (``TARGET``).

    Returns
    -------
    astropy.table.Table
        The `measure_frame` table with ``REFFRAME`` (the reference frame's stem), ``TARGET``
        and ``PHOTOK = True`` in its metadata.

    Raises
    ------
    aifa_steps.core.failures.FrameFailure
        When no star is measured (`check_stars_measured`).
    """
    table = measure_frame(ccd, reference, info, site, target_radec, params, saturation)
    check_stars_measured(table)
    table.meta["REFFRAME"] = reference.meta.get("REFFRAME", "")
    table.meta["TARGET"] = target
    table.meta["PHOTOK"] = True
    return table


def frame_photometry_summary(table: Table) -> str:
    """One line for the log: sources, seeing and the flux fraction in the smallest aperture."""
    meta = table.meta
    key = meta["APKEYS"][0]
    return (
        f"{meta['STEM']}: {len(table)} sources, seeing {meta['SEEING']:.2f} arcsec, "
        f"flux fraction in {meta['APERTURES'][0]:.2f} arcsec ({key}) {meta[f'APFRAC_{key}']:.3f}"
    )


def check_stars_measured(table: Table, min_snr: float = 5.0, min_stars: int = 1) -> None:
    """Raise `~aifa_steps.core.failures.FrameFailure` when a frame shows no star at all.

    A frame that solved but then measures no source above ``min_snr`` in its largest aperture
    (clouds moved in, the dome closed, a focus run) cannot give a flux or a zero point.
    """
    radii, keys = table_apertures(table.meta)
    if not keys:
        return
    snr = np.asarray(table[snr_column(keys[-1])], float)
    n = int(np.count_nonzero(np.isfinite(snr) & (snr >= min_snr)))
    if n < min_stars:
        raise FrameFailure(
            f"no stars measured: {n} of {len(table)} sources above S/N {min_snr:g} "
            f"in the {radii[-1]:.3g} arcsec aperture ({keys[-1]})"
        )


def failed_photometry(info: FrameInfo, reason: str, target: str = "") -> Table:
    """The photometry table of a frame that failed.

    It has no rows; ``PHOTOK = False`` and the reason are in the metadata, so later steps
    leave the frame out and say why.
    """
    table = Table(names=("id", "ra", "dec", "x", "y"), dtype=(int, float, float, float, float))
    table.meta.update(
        {
            "STEM": info.stem,
            "OBJECT": info.object,
            "TARGET": target,
            "FILTER": info.filter,
            "EXPTIME": float(info.exptime),
            "MJD": float(info.mjd),
            "PHOTOK": False,
            "REASON": reason,
        }
    )
    return table


def photometry_failed(table: Table) -> str:
    """The reason a frame's photometry failed ('' for a good table)."""
    if table.meta.get("PHOTOK", True) is False:
        return str(table.meta.get("REASON", "photometry failed"))
    return ""


def usable_photometry(tables: list[Table]) -> list[Table]:
    """The tables of frames whose photometry did not fail."""
    return [t for t in tables if not photometry_failed(t)]
