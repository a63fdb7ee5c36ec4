"""Figures of the science products: light curve, colour-magnitude diagram, colour image.

The only module of `aifa_steps.products` that imports matplotlib (with the Agg backend);
the steps import it when they draw.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.table import Table  # noqa: E402

from aifa_steps.core.atomic import atomic_path, save_figure  # noqa: E402
from aifa_steps.products.cmd import BANDS  # noqa: E402
from aifa_steps.products.lightcurve import (  # noqa: E402
    bin_light_curve,
    bin_width_minutes,
)

__all__ = ["cmd_figure", "lightcurve_figure", "save_rgb_image"]


def lightcurve_figure(
    result: dict, path, title: str, ephemeris: dict | None = None, bin_minutes: float = 10.0
) -> None:
    """Raw and detrended light curve with the fitted model, time bins, residuals and airmass.

    The fitted transit is drawn on a fine time grid (a smooth curve, not segments between the
    frames); the bins are fixed intervals of at least ``bin_minutes`` and three cadences
    (`aifa_steps.products.lightcurve.bin_width_minutes`), drawn at their centres with their
    width; the predicted ingress, mid-time and egress are marked; the residual panel gives
    the RMS per frame and per bin.

    Parameters
    ----------
    result : dict
        `transit_light_curve` output.
    path : path
        PNG file.
    title : str
        Figure title.
    ephemeris : dict, optional
        Literature ``duration_hours``: predicted ingress and egress are drawn around the
        predicted mid-time.
    bin_minutes : float
        Shortest bin width.
    """
    table, fit = result["table"], result["fit"]
    times = np.asarray(table["bjd_tdb"], float)
    t0 = np.floor(np.nanmin(times))
    hours = (times - t0) * 24.0
    fine = np.linspace(np.nanmin(times), np.nanmax(times), 2000)
    fine_hours = (fine - t0) * 24.0
    transit = np.asarray(table["transit"], float)
    model = result.get("transit_model")
    fine_transit = model.flux(fine) if model is not None else np.interp(fine, times, transit)
    baseline = np.asarray(table["model"], float) / transit
    fig, (ax_raw, ax_det, ax_res) = plt.subplots(
        3, 1, figsize=(9, 9), sharex=True, gridspec_kw={"height_ratios": [2, 2, 1]}
    )
    ax_raw.errorbar(hours, table["flux"], table["flux_err"], fmt=".", color="0.5", ms=3, lw=0.5)
    ax_raw.plot(
        fine_hours,
        fine_transit * np.interp(fine, times, baseline),
        color="C3",
        lw=1.2,
        label="transit x baseline (airmass ...)",
    )
    ax_raw.set_ylabel("relative flux")
    ax_raw.legend(fontsize=8, loc="lower left")
    air = ax_raw.twinx()
    air.plot(hours, table["airmass"], color="C0", lw=0.8, alpha=0.6)
    air.set_ylabel("airmass", color="C0")
    detrended = np.asarray(table["flux_detrended"], float)
    ax_det.errorbar(hours, detrended, table["flux_err"], fmt=".", color="0.6", ms=3, lw=0.5)
    width = bin_width_minutes(times, bin_minutes)
    bt, bf, be = bin_light_curve(times, detrended, width)
    ax_det.errorbar(
        (bt - t0) * 24.0,
        bf,
        be,
        xerr=width / 120.0,
        fmt="o",
        color="k",
        ms=4,
        label=f"{width:g} min bins",
    )
    ax_det.plot(fine_hours, fine_transit, color="C3", lw=1.5, label="fitted transit")
    if ephemeris and "duration_hours" in ephemeris and "predicted_t0" in result:
        mid = (result["predicted_t0"] - t0) * 24.0
        half = 0.5 * float(ephemeris["duration_hours"])
        for edge in (mid - half, mid + half):
            ax_det.axvline(edge, color="C2", ls="--", lw=1)
        ax_det.axvline(mid, color="C2", ls=":", lw=1, label="predicted ingress, mid, egress")
    ax_det.set_ylabel("detrended flux")
    ax_det.legend(fontsize=8, loc="lower left")
    ax_det.set_title(
        f"depth {fit.depth * 100:.2f} +- {fit.depth_err * 100:.2f} %, "
        f"mid-time BJD_TDB {fit.t0_bjd_tdb:.5f} +- {fit.t0_bjd_tdb_err * 1440:.1f} min, "
        f"duration {fit.duration_hours:.2f} +- {fit.duration_hours_err:.2f} h",
        fontsize=9,
    )
    residual = detrended - transit
    ax_res.plot(hours, residual * 1e3, ".", color="0.4", ms=3)
    _, binned_residual, _ = bin_light_curve(times, residual, width)
    ax_res.plot((bt - t0) * 24.0, binned_residual * 1e3, "o", color="k", ms=4)
    ax_res.axhline(0, color="k", lw=0.8)
    ax_res.set_ylabel("residual [ppt]")
    ax_res.set_xlabel(f"BJD_TDB - {t0:.0f} [h]")
    ax_res.set_title(
        f"RMS {np.nanstd(residual) * 1e3:.2f} ppt per frame, "
        f"{np.nanstd(binned_residual) * 1e3:.2f} ppt per {width:g} min; median error "
        f"{np.nanmedian(table['flux_err']) * 1e3:.2f} ppt (x {fit.error_scale:.2f}); aperture "
        f"{result['aperture']:.3g} arcsec, "
        f"{len(result['comparisons'])} comparison stars",
        fontsize=9,
    )
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


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
    field stars) light; suspect stars as open circles (PSF magnitudes: ``poor_fit``; aperture
    magnitudes: ``blended``, a neighbour close and bright enough to add light to the
    aperture), and stars with an error of ``max_error`` or more in
    a band as small crosses, so that a student sees which points to trust.

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
    colour = np.asarray(catalogue["g"], float) - np.asarray(catalogue["i"], float)
    mag = np.asarray(catalogue["r"], float)
    errors = np.array([np.asarray(catalogue[f"{b}_err"], float) for b in BANDS])
    measured = np.isfinite(colour) & np.isfinite(mag)
    good = measured & np.all(errors < max_error, axis=0)
    poor = measured & ~good
    # PSF magnitudes: the poor fits are suspect; aperture magnitudes: the blended stars.
    suspect_column = "poor_fit" if "poor_fit" in catalogue.colnames else "blended"
    suspect_label = "poor PSF fit" if suspect_column == "poor_fit" else "blended"
    isolated = (
        ~np.asarray(catalogue[suspect_column], bool)
        if suspect_column in catalogue.colnames
        else np.ones(len(catalogue), bool)
    )
    blended = good & ~isolated
    sep = np.asarray(catalogue["sep_arcmin"], float)
    if radius_arcmin is None:
        radius_arcmin = float(np.median(sep[good])) if good.any() else 0.0
    inner = good & isolated & (sep <= radius_arcmin)
    outer = good & isolated & (sep > radius_arcmin)
    fig, ax = plt.subplots(figsize=(6.5, 7.5))
    ax.scatter(colour[outer], mag[outer], s=5, color="0.65", label=f"> {radius_arcmin:.1f}'")
    ax.scatter(colour[inner], mag[inner], s=7, color="k", label=f"<= {radius_arcmin:.1f}'")
    if blended.any():
        ax.scatter(
            colour[blended],
            mag[blended],
            s=14,
            facecolors="none",
            edgecolors="C0",
            linewidths=0.7,
            label=f"{suspect_label} ({blended.sum()})",
        )
    if poor.any():
        ax.scatter(
            colour[poor],
            mag[poor],
            s=6,
            marker="x",
            color="C1",
            linewidths=0.5,
            alpha=0.6,
            label=f"error >= {max_error} mag ({poor.sum()})",
        )
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
    ax.legend(fontsize=8, title="distance from centre", title_fontsize=8, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def save_rgb_image(rgb: np.ndarray, output: str | Path) -> None:
    """Write an RGB picture (rows top to bottom) in the format of the file's suffix (PNG)."""
    with atomic_path(output) as tmp:
        matplotlib.image.imsave(tmp, rgb, format=Path(output).suffix.lstrip(".") or "png")
