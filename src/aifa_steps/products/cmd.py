"""Cluster catalogue and colour-magnitude diagram from the night's calibrated magnitudes.

`cluster_products` is the ``cluster_products`` rule's step: the target's settings
(`CmdSettings`, read from ``targets.<OBJECT>``) in, the catalogue out and the diagram
(`aifa_steps.products.plots.cmd_figure`) drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from aifa_steps.products.settings import CmdSettings

__all__ = ["BANDS", "CmdSettings", "cluster_catalogue", "cluster_products", "read_isochrone"]

BANDS = ("g", "r", "i")
#: Columns of PSF magnitudes (`aifa_steps.photometry.magnitudes.target_magnitudes`) kept.
PSF_QUALITY = ("poor_fit", "psf_poor", "saturated", "psf_qexcess")


def cluster_catalogue(magnitudes: Table, centre_ra: float, centre_dec: float) -> Table:
    """The calibrated catalogue of a cluster field (``products/<object>/catalogue.ecsv``).

    Parameters
    ----------
    magnitudes : astropy.table.Table
        The night's mean magnitudes of the target
        (`aifa_steps.photometry.magnitudes.night_magnitudes`,
        ``photometry/<object>/magnitudes.ecsv``).
    centre_ra, centre_dec : float
        Cluster centre (deg).

    Returns
    -------
    astropy.table.Table
        ``id``, ``ra``, ``dec``, ``g``, ``g_err``, ``r``, ``r_err``, ``i``, ``i_err`` (NaN where
        a band was not observed or not measured), ``g_n``, ``r_n``, ``i_n`` (frames averaged),
        ``sep_arcmin`` (distance from the centre), ``isolated`` (no neighbour adds 1 % of the
        star's flux: the zero-point stars), ``blended`` (`blended_stars`: a neighbour within two
        FWHM brighter than 10 % of the star) and the reference catalogue's cross-identification
        (``refcat_sep_arcsec``, ``refcat_gmag``, ...), sorted by ``r``. From PSF magnitudes
        (``METHOD`` psf) also the aperture's ``g_aper``, ``g_aper_err``, ``g_aper_n``, ...
        and the fits' quality: ``poor_fit``, ``psf_poor``, ``saturated``, ``psf_qexcess``.
    """
    out = Table()
    for column in ("id", "ra", "dec"):
        out[column] = magnitudes[column]
    n = len(magnitudes)
    for suffixes in (("", "_err"), ("_n",)):
        for band in BANDS:
            for suffix in suffixes:
                name = f"{band}{suffix}"
                fill = 0 if suffix == "_n" else np.nan
                out[name] = magnitudes[name] if name in magnitudes.colnames else np.full(n, fill)
    centre = SkyCoord(centre_ra * u.deg, centre_dec * u.deg)
    stars = SkyCoord(np.asarray(out["ra"], float) * u.deg, np.asarray(out["dec"], float) * u.deg)
    out["sep_arcmin"] = stars.separation(centre).arcmin
    for suffix in ("_aper", "_aper_err", "_aper_n"):
        for band in BANDS:
            if f"{band}{suffix}" in magnitudes.colnames:
                out[f"{band}{suffix}"] = magnitudes[f"{band}{suffix}"]
    for column in magnitudes.colnames:
        if column in PSF_QUALITY or column == "isolated" or column.startswith("refcat_"):
            out[column] = magnitudes[column]
    out["blended"] = blended_stars(out, 2.0 * float(magnitudes.meta.get("APFWHM") or 2.5))
    out["ra"].unit = out["dec"].unit = "deg"
    for band in BANDS:
        out[band].unit = out[f"{band}_err"].unit = "mag"
        if f"{band}_aper" in out.colnames:
            out[f"{band}_aper"].unit = out[f"{band}_aper_err"].unit = "mag"
    method = magnitudes.meta.get("METHOD", "aperture")
    out.meta["METHOD"] = method[0] if isinstance(method, (list, tuple)) else method
    out["sep_arcmin"].unit = "arcmin"
    order = np.argsort(np.where(np.isfinite(out["r"]), out["r"], np.inf), kind="stable")
    return out[order]


def blended_stars(catalogue: Table, radius_arcsec: float, max_ratio: float = 0.1) -> np.ndarray:
    """Stars with a neighbour within ``radius_arcsec`` brighter than ``max_ratio`` of their flux.

    Such a neighbour puts a noticeable part of its light into the star's aperture, so the
    star's magnitudes (and its colour, if the two differ in colour) are biased: the diagram
    marks them. The flux comes from the first of r, g, i that the star has; stars measured in
    none of them are not blended by this test.

    Parameters
    ----------
    catalogue : astropy.table.Table
        ``ra``, ``dec`` (deg) and magnitudes ``r``, ``g``, ``i``.
    radius_arcsec : float
        Neighbour distance (default in `cluster_catalogue`: two FWHM, the smallest aperture's
        radius plus the neighbour's own image).
    max_ratio : float
        Flux ratio of a neighbour that counts.
    """
    from aifa_steps.photometry.reference import isolated_sources

    mag = np.full(len(catalogue), np.nan)
    for band in ("r", "g", "i"):
        if band in catalogue.colnames:
            values = np.asarray(catalogue[band], float)
            mag = np.where(np.isfinite(mag), mag, values)
    flux = np.where(np.isfinite(mag), 10 ** (-0.4 * np.nan_to_num(mag, nan=99.0)), 0.0)
    if len(catalogue) < 2:
        return np.zeros(len(catalogue), bool)
    return ~isolated_sources(catalogue["ra"], catalogue["dec"], flux, radius_arcsec, max_ratio)


def read_isochrone(path: str | Path) -> Table:
    """A user's isochrone: apparent ``g``, ``r``, ``i`` magnitudes (any table astropy reads).

    Raises
    ------
    KeyError
        If a band is missing, naming the file.
    """
    table = Table.read(path)
    missing = [b for b in BANDS if b not in table.colnames]
    if missing:
        raise KeyError(f"isochrone {path} lacks the column(s) {missing} (apparent g, r, i)")
    return table


def cluster_products(
    magnitudes: Table,
    settings: CmdSettings,
    name: str,
    figure: str | Path,
    isochrone: str | Path | None = None,
) -> Table:
    """The calibrated catalogue of a cluster, with its colour-magnitude diagram drawn.

    Parameters
    ----------
    magnitudes : astropy.table.Table
        The target's calibrated magnitudes (``photometry/<object>/magnitudes.ecsv``).
    settings : CmdSettings
        The target's section of the configuration.
    name : str
        The target's OBJECT (the catalogue's ``OBJECT``, the figure's title).
    figure : path
        PNG file of the diagram.
    isochrone : path, optional
        Table of apparent g, r, i along an isochrone, drawn as a line.

    Returns
    -------
    astropy.table.Table
        `cluster_catalogue` output with ``OBJECT`` in its meta.
    """
    from aifa_steps.products.plots import cmd_figure

    catalogue = cluster_catalogue(magnitudes, float(settings.ra), float(settings.dec))
    catalogue.meta["OBJECT"] = name
    cmd_figure(
        catalogue,
        figure,
        f"{name}: r against g - i",
        radius_arcmin=settings.radius_arcmin,
        isochrone=read_isochrone(isochrone) if isochrone else None,
    )
    return catalogue
