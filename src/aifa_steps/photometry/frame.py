"""Photometry of one solved frame: background, forced apertures, seeing, aperture corrections.

`measure_frame` combines the building blocks of `aifa_steps.photometry.measure` into the table that
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

from aifa_steps.core.failures import FrameFailure
from aifa_steps.core.formats import AUTO_APERTURE_FWHM, aperture_keys, fwhm_keys
from aifa_steps.core.observing import Site, airmass, bjd_tdb
from aifa_steps.photometry.measure import (
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
    "aperture_plan",
    "catalogue_aperture_key",
    "smallest_aperture_key",
    "table_apertures",
    "target_fwhm",
    "set_reference_apertures",
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
    apertures : ``"auto"`` or list of float
        ``"auto"``: radii of ``aperture_fwhm`` times the target's FWHM (`aperture_plan`); a
        list: radii in arcsec.
    aperture_fwhm : list of float
        Radii of automatic apertures in units of the target's FWHM.
    sky_annulus_fwhm : list of float, optional
        Inner and outer radius of a local sky annulus in units of the target's FWHM (see
        `aifa_steps.photometry.measure.forced_photometry`); None: the frame's background mesh alone.
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

    apertures: str | list[float] = field(default_factory=lambda: [4.0, 6.0, 8.0, 10.0])
    aperture_fwhm: list[float] = field(default_factory=lambda: list(AUTO_APERTURE_FWHM))
    sky_annulus_fwhm: list[float] | None = None
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
        kwargs["apertures"] = aperture_setting(section)
        return cls(**kwargs, saturation=float(saturation))

    @property
    def auto(self) -> bool:
        """True when the apertures follow the seeing (``apertures: auto``)."""
        return isinstance(self.apertures, str)


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


def aperture_setting(section: dict) -> str | list[float]:
    """The ``photometry`` section's apertures: ``"auto"`` or radii in arcsec.

    ``apertures`` (``auto`` or a list) decides; a configuration of an older version with only
    ``apertures_arcsec`` keeps those radii.
    """
    value = section.get("apertures", "auto")
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"photometry.apertures is {value!r}: use auto or a list of radii")
        if section.get("apertures_arcsec"):
            return [float(r) for r in section["apertures_arcsec"]]
        return "auto"
    return [float(r) for r in value]


def aperture_plan(
    apertures: str | list[float], fwhm_arcsec: float, multiples=AUTO_APERTURE_FWHM
) -> tuple[list[float], list[str]]:
    """Radii (arcsec) and column suffixes of a target's apertures.

    Parameters
    ----------
    apertures : ``"auto"`` or list of float
        Explicit radii in arcsec (suffix: the radius, e.g. ``4``), or ``"auto"``:
        ``multiples`` times ``fwhm_arcsec`` (suffix: the multiple, e.g. ``1.5fwhm``, so the
        columns of every target and night have the same names whatever the seeing).
    fwhm_arcsec : float
        The target's FWHM (`target_fwhm`); only used with ``"auto"``.
    multiples : sequence of float
        Radii of automatic apertures in units of the FWHM.

    Returns
    -------
    radii : list of float
        Aperture radii in arcsec, increasing.
    keys : list of str
        Column suffixes.

    Raises
    ------
    ValueError
        For automatic apertures without a finite, positive FWHM.
    """
    if not isinstance(apertures, str):
        radii = sorted(float(r) for r in apertures)
        return radii, aperture_keys(radii)
    if not (np.isfinite(fwhm_arcsec) and fwhm_arcsec > 0):
        raise ValueError(
            "photometry.apertures is auto, but the target has no measured FWHM (no star was "
            "measured in its frames): give photometry.apertures as a list of radii in arcsec"
        )
    multiples = sorted(float(m) for m in multiples)
    return [m * float(fwhm_arcsec) for m in multiples], fwhm_keys(multiples)


def target_fwhm(frame_fwhm_arcsec, reference_fwhm_arcsec: float = float("nan")) -> float:
    """The FWHM that sizes a target's automatic apertures: the median seeing of its frames.

    One radius for all frames of a target keeps the light curve consistent (the same pixels
    around target and comparison stars in every frame: the same neighbours' light and sky
    noise; the varying enclosed fraction is common to all stars of a frame and corrected per
    frame by the curve of growth). The median seeing over the night, not the reference frame's
    (the best), so that the apertures fit the typical frame; the larger multiples cover the
    worst.

    Parameters
    ----------
    frame_fwhm_arcsec : array-like
        FWHM of each of the target's solved frames (``astrometry/status.ecsv`` ``fwhm_arcsec``).
    reference_fwhm_arcsec : float
        Fallback when no frame has a measured FWHM (e.g. the reference frame's detections).

    Returns
    -------
    float
        FWHM in arcsec (NaN when neither is known).
    """
    values = np.asarray(frame_fwhm_arcsec, float)
    values = values[np.isfinite(values) & (values > 0)]
    return float(np.median(values)) if values.size else float(reference_fwhm_arcsec)


def set_reference_apertures(
    reference: Table, params: PhotometryParameters, frame_fwhm_arcsec=()
) -> tuple[list[float], list[str]]:
    """Choose a target's apertures and record them in its reference table's metadata.

    Every frame of the target is then measured through these apertures
    (`measure_frame`): ``APERTURES`` (radii, arcsec), ``APKEYS`` (column suffixes), ``APMODE``
    (``auto`` or ``arcsec``), ``APFWHM`` (the target's FWHM, arcsec, that sized automatic
    apertures and the sky annulus), ``APMULT`` (multiples of it, automatic apertures only),
    ``ANNULUS`` (inner and outer radius of the sky annulus, arcsec, when configured).

    Parameters
    ----------
    reference : astropy.table.Table
        The target's reference sources (`aifa_steps.photometry.detection.reference_sources`); its
        ``fwhm_arcsec`` of bright isolated sources is the fallback FWHM.
    params : PhotometryParameters
        Settings (``apertures``, ``aperture_fwhm``).
    frame_fwhm_arcsec : array-like
        Seeing of each of the target's solved frames.

    Returns
    -------
    radii, keys
        As `aperture_plan`.
    """
    fallback = float("nan")
    if "fwhm_arcsec" in reference.colnames and len(reference):
        fwhm = np.asarray(reference["fwhm_arcsec"], float)
        good = np.isfinite(fwhm)
        if "isolated" in reference.colnames:
            good &= np.asarray(reference["isolated"], bool)
        if "snr" in reference.colnames:
            good &= np.asarray(reference["snr"], float) >= 50
        if good.any():
            fallback = float(np.median(fwhm[good]))
    fwhm = target_fwhm(frame_fwhm_arcsec, fallback)
    radii, keys = aperture_plan(params.apertures, fwhm, params.aperture_fwhm)
    reference.meta["APERTURES"] = radii
    reference.meta["APKEYS"] = keys
    reference.meta["APMODE"] = "auto" if params.auto else "arcsec"
    reference.meta["APFWHM"] = fwhm
    if params.auto:
        reference.meta["APMULT"] = sorted(float(m) for m in params.aperture_fwhm)
    if params.sky_annulus_fwhm:
        inner, outer = (float(m) for m in params.sky_annulus_fwhm)
        if not (np.isfinite(fwhm) and fwhm > 0 and 0 < inner < outer):
            raise ValueError(
                "photometry.sky_annulus_fwhm needs an inner radius below the outer one and a "
                "measured FWHM of the target"
            )
        reference.meta["ANNULUS"] = [inner * fwhm, outer * fwhm]
    return radii, keys


def table_apertures(meta) -> tuple[list[float], list[str]]:
    """Radii (arcsec) and column suffixes of the apertures of a photometry or reference table.

    Tables written before automatic apertures have ``APERTURES`` only (suffix: the radius).
    """
    radii = [float(r) for r in meta.get("APERTURES", [])]
    keys = meta.get("APKEYS")
    return radii, (list(keys) if keys else aperture_keys(radii))


def smallest_aperture_key(photometry_section: dict) -> str:
    """Column suffix of the smallest aperture of the ``photometry`` configuration section."""
    apertures = aperture_setting(photometry_section)
    if isinstance(apertures, str):
        return fwhm_keys([min(photometry_section.get("aperture_fwhm", AUTO_APERTURE_FWHM))])[0]
    return aperture_keys([min(apertures)])[0]


def catalogue_aperture_key(photometry_section: dict, zeropoints_section: dict) -> str:
    """Suffix of the aperture of the night's mean magnitudes, catalogue and extinction.

    ``zeropoints.catalogue_aperture_arcsec`` names an explicit aperture (arcsec); ``auto``
    takes, with explicit apertures, the smallest, and with automatic apertures the one of
    ``zeropoints.catalogue_aperture_fwhm`` FWHM.

    Raises
    ------
    ValueError
        When the setting does not name one of the apertures (see
        `aifa_steps.summary.checks.config_problems`, which reports it before the run).
    """
    apertures = aperture_setting(photometry_section)
    value = zeropoints_section.get("catalogue_aperture_arcsec", "auto")
    if isinstance(apertures, str):
        multiples = [float(m) for m in photometry_section.get("aperture_fwhm", AUTO_APERTURE_FWHM)]
        if value != "auto":
            raise ValueError(
                f"zeropoints.catalogue_aperture_arcsec is {value:g}, but photometry.apertures "
                "is auto (radii in units of the seeing FWHM): set "
                "zeropoints.catalogue_aperture_arcsec: auto and choose "
                f"zeropoints.catalogue_aperture_fwhm among photometry.aperture_fwhm "
                f"{multiples}, or give photometry.apertures as a list of radii in arcsec"
            )
        multiple = float(zeropoints_section.get("catalogue_aperture_fwhm", 1.5))
        if not any(abs(multiple - m) < 1e-9 for m in multiples):
            raise ValueError(
                f"zeropoints.catalogue_aperture_fwhm is {multiple:g}, which is not one of "
                f"photometry.aperture_fwhm {multiples}: add it there or choose one of them"
            )
        return fwhm_keys([multiple])[0]
    if value == "auto":
        return aperture_keys([min(apertures)])[0]
    if not any(abs(float(value) - r) < 1e-9 for r in apertures):
        raise ValueError(
            f"zeropoints.catalogue_aperture_arcsec is {float(value):g}, which is not one of "
            f"photometry.apertures {[float(f'{r:g}') for r in apertures]}: add it there or "
            "choose one of them"
        )
    return aperture_keys([float(value)])[0]


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
        Calibrated frame with its solved WCS, uncertainty and ``flags``
        (`aifa_steps.calibration.calibrate`).
    reference : astropy.table.Table
        The target's reference sources (`aifa_steps.photometry.detection.reference_sources`).
    info : FrameInfo
        Inventory values of the frame.
    site : aifa_steps.core.observing.Site
        Observatory (airmass and barycentric time at mid-exposure).
    target_radec : tuple of float
        Target position (deg) for the barycentric correction.
    params : PhotometryParameters, optional
        Settings.

    Returns
    -------
    astropy.table.Table
        `aifa_steps.photometry.measure.forced_photometry` columns plus ``snr_<r>`` and, with
        ``fit_fwhm``, ``fwhm_arcsec``. Metadata: ``STEM``, ``OBJECT``, ``FILTER``,
        ``EXPTIME``, ``MJD`` (start), ``MJD_MID``, ``BJD_TDB`` (mid-exposure, for the target;
        geocentric light time, within 0.02 s of the topocentric), ``AIRMASS``
        (mid-exposure), ``SEEING`` (arcsec), ``NSEEING``, ``APFRAC_<r>`` and
        ``APFERR_<r>`` (fraction of the total flux in each aperture and its error),
        ``MOFALPHA``, ``MOFBETA``, ``NGROWTH``, ``SKY`` and ``SKYRMS`` (median ADU),
        ``GROWTH_R``, ``GROWTH_F`` (the curve of growth).
    """
    params = params or PhotometryParameters()
    if params.auto:
        if "APKEYS" not in reference.meta:
            raise ValueError(
                "automatic apertures need the target's apertures in the reference table "
                "(APERTURES, APKEYS: aifa_steps.photometry.frame.aperture_plan)"
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


def check_stars_measured(table: Table, min_snr: float = 5.0, min_stars: int = 1) -> None:
    """Raise `~aifa_steps.core.failures.FrameFailure` when a frame shows no star at all.

    A frame that solved but then measures no source above ``min_snr`` in its largest aperture
    (clouds moved in, the dome closed, a focus run) cannot give a flux or a zero point.
    """
    radii, keys = table_apertures(table.meta)
    if not keys:
        return
    snr = np.asarray(table[f"snr_{keys[-1]}"], float)
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
