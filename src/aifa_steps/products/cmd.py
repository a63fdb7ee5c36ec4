"""Cluster catalogue and colour-magnitude diagram from the night's calibrated magnitudes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from aifa_steps.core.atomic import save_figure

__all__ = ["cluster_catalogue", "read_isochrone", "cmd_figure"]

BANDS = ("g", "r", "i")


def cluster_catalogue(magnitudes: Table, centre_ra: float, centre_dec: float) -> Table:
    """The calibrated catalogue of a cluster field (``products/<object>/catalogue.ecsv``).

    Parameters
    ----------
    magnitudes : astropy.table.Table
        The night's mean magnitudes of the target
        (`aifa_steps.photometry.zeropoints.night_magnitudes`,
        ``photometry/<object>/magnitudes.ecsv``).
    centre_ra, centre_dec : float
        Cluster centre (deg).

    Returns
    -------
    astropy.table.Table
        ``id``, ``ra``, ``dec``, ``g``, ``g_err``, ``r``, ``r_err``, ``i``, ``i_err`` (NaN where
        a band was not observed or not measured), ``g_n``, ``r_n``, ``i_n`` (frames averaged),
        ``sep_arcmin`` (distance from the centre), ``isolated`` and the reference catalogue's
        cross-identification (``refcat_sep_arcsec``, ``refcat_gmag``, ...), sorted by ``r``.
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
    for column in magnitudes.colnames:
        if column == "isolated" or column.startswith("refcat_"):
            out[column] = magnitudes[column]
    out["ra"].unit = out["dec"].unit = "deg"
    for band in BANDS:
        out[band].unit = out[f"{band}_err"].unit = "mag"
    out["sep_arcmin"].unit = "arcmin"
    order = np.argsort(np.where(np.isfinite(out["r"]), out["r"], np.inf), kind="stable")
    return out[order]


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


def cmd_figure(
    catalogue: Table,
    path: str | Path,
    title: str,
    radius_arcmin: float | None = None,
    isochrone: Table | None = None,
    max_error: float = 0.1,
) -> None:
    """Colour-magnitude diagram r against g - i.

    Stars within ``radius_arcmin`` of the centre (the cluster) are drawn dark, the rest (mostly
    field stars) light; only stars with errors below ``max_error`` in all three bands.

    Parameters
    ----------
    catalogue : astropy.table.Table
        `cluster_catalogue` output.
    path : path
        PNG file.
    title : str
        Figure title.
    radius_arcmin : float, optional
        Cluster radius; default the median separation (half the stars inside).
    isochrone : astropy.table.Table, optional
        Apparent g, r, i along an isochrone, drawn as a line.
    max_error : float
        Largest magnitude error of a plotted star.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colour = np.asarray(catalogue["g"], float) - np.asarray(catalogue["i"], float)
    mag = np.asarray(catalogue["r"], float)
    errors = np.array([np.asarray(catalogue[f"{b}_err"], float) for b in BANDS])
    good = np.isfinite(colour) & np.isfinite(mag) & np.all(errors < max_error, axis=0)
    sep = np.asarray(catalogue["sep_arcmin"], float)
    if radius_arcmin is None:
        radius_arcmin = float(np.median(sep[good])) if good.any() else 0.0
    inner = good & (sep <= radius_arcmin)
    outer = good & (sep > radius_arcmin)
    fig, ax = plt.subplots(figsize=(6.5, 7.5))
    ax.scatter(colour[outer], mag[outer], s=5, color="0.65", label=f"> {radius_arcmin:.1f}'")
    ax.scatter(colour[inner], mag[inner], s=7, color="k", label=f"<= {radius_arcmin:.1f}'")
    if isochrone is not None:
        ax.plot(
            np.asarray(isochrone["g"]) - np.asarray(isochrone["i"]),
            isochrone["r"],
            color="C3",
            lw=1.2,
            label="isochrone",
        )
    if good.any():
        typical = np.nanmedian(errors[:, good], axis=1)
        ax.text(
            0.02,
            0.02,
            f"{good.sum()} stars with errors < {max_error} mag; "
            f"median errors g {typical[0]:.3f}, r {typical[1]:.3f}, i {typical[2]:.3f}",
            transform=ax.transAxes,
            fontsize=7,
        )
    ax.invert_yaxis()
    ax.set_xlabel("g - i [mag]")
    ax.set_ylabel("r [mag]")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, title="distance from centre", title_fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
