"""Photometry of one solved frame: background, forced apertures, seeing, aperture corrections.

`measure_frame` combines the building blocks of `aifa_steps.photometry` into the table that
the workflow writes for every solved frame (``photometry/<object>/<stem>.ecsv``): one row per
reference source, one set of columns per aperture, and the frame's properties (times, filter,
exposure, airmass, seeing, aperture corrections) in the table's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from astropy.nddata import CCDData
from astropy.table import Table
from astropy.wcs.utils import proj_plane_pixel_scales

from .failures import FrameFailure
from .observing import Site, airmass, bjd_tdb
from .photometry import (
    aperture_corrections,
    estimate_background,
    forced_photometry,
    frame_seeing,
    star_fwhm,
)

__all__ = [
    "PhotometryParameters",
    "FrameInfo",
    "measure_frame",
    "aperture_keys",
    "check_stars_measured",
    "failed_photometry",
    "photometry_failed",
    "usable_photometry",
]


@dataclass
class PhotometryParameters:
    """Settings of the per-frame photometry (the ``photometry`` section of the config).

    Parameters
    ----------
    apertures_arcsec : list of float
        Aperture radii.
    background_box : int
        Box size (pixels) of the background mesh.
    background_filter : int
        Median filter size (boxes) of the background mesh.
    growth_radius_fwhm : float
        Outer radius of the measured curve of growth in units of the seeing FWHM.
    max_growth_stars : int
        Brightest suitable stars used for the curve of growth and the seeing.
    min_growth_snr : float
        Minimum signal-to-noise ratio (smallest aperture) of those stars.
    saturation : float
        Saturation level (ADU); stars peaking above half of it do not enter the curve of
        growth (non-linearity).
    fit_fwhm : bool
        Fit a circular 2-D Gaussian to every unflagged star (``fwhm_arcsec`` column; slow).
    """

    apertures_arcsec: list[float] = field(default_factory=lambda: [4.0, 6.0, 8.0, 10.0])
    background_box: int = 300
    background_filter: int = 3
    growth_radius_fwhm: float = 3.0
    max_growth_stars: int = 20
    min_growth_snr: float = 50.0
    saturation: float = 65535.0
    fit_fwhm: bool = False

    @classmethod
    def from_config(cls, section: dict, saturation: float) -> PhotometryParameters:
        """Parameters from the configuration's ``photometry`` section."""
        names = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in section.items() if k in names}
        return cls(**kwargs, saturation=float(saturation))


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


def aperture_keys(radii_arcsec) -> list[str]:
    """Column suffixes of the apertures (``4``, ``6``, ``7.5``, ...)."""
    return [f"{r:g}" for r in radii_arcsec]


def measure_frame(
    ccd: CCDData,
    reference: Table,
    info: FrameInfo,
    site: Site,
    target_radec: tuple[float, float],
    params: PhotometryParameters | None = None,
) -> Table:
    """Forced photometry of a solved frame at the reference positions of its target.

    Parameters
    ----------
    ccd : astropy.nddata.CCDData
        Calibrated frame with its solved WCS, uncertainty and ``flags`` (`aifa_steps.calibrate`).
    reference : astropy.table.Table
        The target's reference sources (`aifa_steps.detection.reference_sources`).
    info : FrameInfo
        Inventory values of the frame.
    site : aifa_steps.observing.Site
        Observatory (airmass and barycentric time at mid-exposure).
    target_radec : tuple of float
        Target position (deg) for the barycentric correction.
    params : PhotometryParameters, optional
        Settings.

    Returns
    -------
    astropy.table.Table
        `aifa_steps.photometry.forced_photometry` columns plus ``snr_<r>`` and, with
        ``fit_fwhm``, ``fwhm_arcsec``. Metadata: ``STEM``, ``OBJECT``, ``FILTER``,
        ``EXPTIME``, ``MJD`` (start), ``MJD_MID``, ``BJD_TDB`` (mid-exposure, for the target;
        geocentric light time, within 0.02 s of the topocentric), ``AIRMASS``
        (mid-exposure), ``SEEING`` (arcsec), ``NSEEING``, ``APFRAC_<r>`` and
        ``APFERR_<r>`` (fraction of the total flux in each aperture and its error),
        ``MOFALPHA``, ``MOFBETA``, ``NGROWTH``, ``SKY`` and ``SKYRMS`` (median ADU),
        ``GROWTH_R``, ``GROWTH_F`` (the curve of growth).
    """
    params = params or PhotometryParameters()
    radii = tuple(float(r) for r in params.apertures_arcsec)
    keys = aperture_keys(radii)
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
    )
    for key in keys:
        table[f"snr_{key}"] = table[f"flux_{key}"] / table[f"flux_err_{key}"]
    residual = data - background

    # Bright, isolated, unflagged, unsaturated stars for the seeing and the curve of growth.
    sky = float(np.median(background))
    clean = np.all([table[f"flag_{k}"] == 0 for k in keys], axis=0)
    isolated = np.asarray(reference["isolated"], bool) if "isolated" in reference.colnames else 1
    linear = table["peak"] < 0.5 * params.saturation - sky
    strong = table[f"snr_{keys[0]}"] >= params.min_growth_snr
    good = np.flatnonzero(clean & isolated & linear & strong)
    good = good[np.argsort(-np.asarray(table[f"flux_{keys[-1]}"])[good])]
    good = good[: params.max_growth_stars]
    seeing, n_seeing = frame_seeing(residual, ccd.wcs, table["x"][good], table["y"][good])
    fit_radius = params.growth_radius_fwhm * (seeing if np.isfinite(seeing) else 3.0)
    fraction, fraction_err, growth, (alpha, beta) = aperture_corrections(
        residual, ccd.wcs, table["ra"][good], table["dec"][good], radii, max(fit_radius, 3.0)
    )
    if params.fit_fwhm:
        scale = float(np.mean(proj_plane_pixel_scales(ccd.wcs)) * 3600.0)
        fwhm = np.full(len(table), np.nan)
        fit = np.flatnonzero(clean & (table[f"snr_{keys[0]}"] > 10))
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
        "GROWTH_R": [float(v) for v in growth["radius_arcsec"]],
        "GROWTH_F": [float(v) for v in growth["fraction"]],
    }
    for key, f, e in zip(keys, fraction, fraction_err, strict=True):
        meta[f"APFRAC_{key}"] = float(f)
        meta[f"APFERR_{key}"] = float(e)
    table.meta.update(meta)
    return table


def check_stars_measured(table: Table, min_snr: float = 5.0, min_stars: int = 1) -> None:
    """Raise `~aifa_steps.failures.FrameFailure` when a frame shows no star at all.

    A frame that solved but then measures no source above ``min_snr`` in its largest aperture
    (clouds moved in, the dome closed, a focus run) cannot give a flux or a zero point.
    """
    keys = aperture_keys(table.meta.get("APERTURES", []))
    if not keys:
        return
    snr = np.asarray(table[f"snr_{keys[-1]}"], float)
    n = int(np.count_nonzero(np.isfinite(snr) & (snr >= min_snr)))
    if n < min_stars:
        raise FrameFailure(
            f"no stars measured: {n} of {len(table)} sources above S/N {min_snr:g} "
            f"in the {keys[-1]} arcsec aperture"
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
