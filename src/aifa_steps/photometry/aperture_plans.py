"""A target's apertures: radii and column suffixes, chosen once and recorded in its reference.

Apertures are radii in arcsec (column suffix: the radius, ``4``) or, with ``apertures: auto``,
multiples of the target's FWHM (suffix ``1.5fwhm``); `set_reference_apertures` fixes them in the
reference table's metadata, and every table measured through them carries them too
(`table_apertures`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from astropy.table import Table

from aifa_steps.core.formats import AUTO_APERTURE_FWHM, aperture_keys, fwhm_keys
from aifa_steps.photometry.settings import (
    PhotometryParameters,
    aperture_setting,
    catalogue_aperture_key,
)

__all__ = [
    "aperture_plan",
    "target_fwhm",
    "set_reference_apertures",
    "table_apertures",
    "smallest_aperture_key",
    "catalogue_aperture_key",
]


def aperture_plan(
    apertures: str | Iterable[float],
    fwhm_arcsec: float,
    multiples: Iterable[float] = AUTO_APERTURE_FWHM,
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


def target_fwhm(
    frame_fwhm_arcsec: Iterable[float], reference_fwhm_arcsec: float = float("nan")
) -> float:
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
    reference: Table, params: PhotometryParameters, frame_fwhm_arcsec: Iterable[float] = ()
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
        The target's reference sources (`aifa_steps.photometry.reference.reference_sources`); its
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


def table_apertures(meta: Mapping[str, Any]) -> tuple[list[float], list[str]]:
    """Radii (arcsec) and column suffixes of the apertures of a photometry or reference table.

    Tables written before automatic apertures have ``APERTURES`` only (suffix: the radius).
    """
    radii = [float(r) for r in meta.get("APERTURES", [])]
    keys = meta.get("APKEYS")
    return radii, (list(keys) if keys else aperture_keys(radii))


def smallest_aperture_key(photometry_section: Mapping[str, Any]) -> str:
    """Column suffix of the smallest aperture of the ``photometry`` configuration section."""
    apertures = aperture_setting(photometry_section)
    if isinstance(apertures, str):
        return fwhm_keys([min(photometry_section.get("aperture_fwhm", AUTO_APERTURE_FWHM))])[0]
    return aperture_keys([min(apertures)])[0]
