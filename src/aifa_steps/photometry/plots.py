"""Figures of the photometry: detections, zero points through the night, residuals."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.table import Table  # noqa: E402
from astropy.visualization import ZScaleInterval  # noqa: E402

from aifa_steps.core.atomic import save_figure  # noqa: E402

__all__ = ["detections_figure", "zeropoint_figure", "zeropoint_residual_figure"]


def detections_figure(image: np.ndarray, reference: Table, path: str | Path, title: str) -> None:
    """The reference frame with its detections: matched to the catalogue, isolated or not.

    Parameters
    ----------
    image : numpy.ndarray
        Background-subtracted reference frame.
    reference : astropy.table.Table
        Reference sources (``x``, ``y``, ``isolated``, ``refcat_row``).
    path : path
        PNG file.
    title : str
        Figure title.
    """
    ny, nx = image.shape
    step = max(1, int(np.ceil(max(image.shape) / 1600)))
    sample = image[:: max(1, ny // 800), :: max(1, nx // 800)]
    vmin, vmax = ZScaleInterval().get_limits(sample)
    fig, ax = plt.subplots(figsize=(9, 9 * ny / nx + 0.6))
    ax.imshow(
        image[::step, ::step],
        origin="lower",
        cmap="gray_r",
        vmin=vmin,
        vmax=vmax,
        extent=(0, nx, 0, ny),
        interpolation="nearest",
    )
    matched = np.asarray(reference["refcat_row"]) >= 0
    isolated = np.asarray(reference["isolated"], bool)
    groups = (
        (matched & isolated, "C2", "in the catalogue, isolated (zero points)"),
        (matched & ~isolated, "C1", "in the catalogue, with a neighbour"),
        (~matched, "C0", "not in the catalogue"),
    )
    for sel, colour, label in groups:
        ax.scatter(
            reference["x"][sel],
            reference["y"][sel],
            s=40,
            facecolors="none",
            edgecolors=colour,
            linewidths=0.7,
            label=f"{label}: {int(sel.sum())}",
        )
    ax.set_xlim(0, nx)
    ax.set_ylim(0, ny)
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def _hours(mjd: np.ndarray) -> np.ndarray:
    """UTC hours since the night's first midnight (may exceed 24)."""
    mjd = np.asarray(mjd, float)
    return (mjd - np.floor(np.nanmin(mjd))) * 24.0


def _aperture_label(table: Table, aperture: str | float) -> str:
    """``4"`` for an aperture in arcsec, ``1.5 FWHM`` for an automatic one."""
    if isinstance(aperture, str) and aperture.endswith("fwhm"):
        return f"{aperture.removesuffix('fwhm')} FWHM"
    return f'{float(aperture):g}"'


def zeropoint_figure(
    zeropoints: Table, extinction: Table, aperture: str | float, path: str | Path
) -> None:
    """Zero point, seeing and aperture correction through the night; zero point vs airmass.

    Parameters
    ----------
    zeropoints : astropy.table.Table
        The night's zero points.
    extinction : astropy.table.Table
        `aifa_steps.photometry.magnitudes.fit_extinction` result (lines in the airmass panel).
    aperture : str or float
        Aperture shown (column suffix or radius in arcsec).
    path : path
        PNG file.
    """
    from aifa_steps.photometry.zeropoints import aperture_rows

    table = zeropoints[aperture_rows(zeropoints, aperture)]
    name = _aperture_label(table, aperture)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    (ax_time, ax_air), (ax_seeing, ax_frac) = axes
    if len(table):
        hours = _hours(table["mjd"])
        one_second = np.asarray(table["zeropoint"], float) - 2.5 * np.log10(
            np.asarray(table["exptime"], float)
        )
        markers = dict(zip(sorted(set(table["object"])), "osD^v<>", strict=False))
        for k, band in enumerate(sorted(set(table["filter"]))):
            for obj, marker in markers.items():
                part = (table["filter"] == band) & (table["object"] == obj)
                if not part.any():
                    continue
                label = f"{band}, {obj}"
                kw = dict(marker=marker, ls="none", ms=4, color=f"C{k}")
                ax_time.errorbar(
                    hours[part], one_second[part], yerr=table["zeropoint_err"][part], **kw
                )
                ax_air.plot(table["airmass"][part], one_second[part], label=label, **kw)
                ax_seeing.plot(hours[part], table["seeing_arcsec"][part], **kw)
                ax_frac.plot(hours[part], table["aperture_fraction"][part], **kw)
            fit = extinction[extinction["filter"] == band] if len(extinction) else []
            if len(fit) and np.isfinite(fit["k"][0]):
                x = np.linspace(np.nanmin(table["airmass"]), np.nanmax(table["airmass"]), 10)
                ax_air.plot(
                    x,
                    fit["zeropoint_1s_airmass0"][0] - fit["k"][0] * x,
                    color=f"C{k}",
                    lw=1,
                    label=f"{band}: k = {fit['k'][0]:.3f} ± {fit['k_err'][0]:.3f} mag/airmass",
                )
        ax_air.legend(fontsize=7)
    ax_time.set_ylabel("zero point of 1 s [mag]")
    ax_time.set_xlabel("UTC [h]")
    ax_time.set_title(f"zero point ({name} aperture, total flux)", fontsize=10)
    ax_air.set_xlabel("airmass")
    ax_air.set_ylabel("zero point of 1 s [mag]")
    ax_air.set_title("extinction: zero point against airmass", fontsize=10)
    ax_seeing.set_xlabel("UTC [h]")
    ax_seeing.set_ylabel("seeing FWHM [arcsec]")
    ax_frac.set_xlabel("UTC [h]")
    ax_frac.set_ylabel(f"flux fraction in {name}")
    ax_frac.set_title("aperture correction (curve of growth)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def zeropoint_residual_figure(stars: Table, aperture: str | float, path: str | Path) -> None:
    """Residuals of the zero-point stars against catalogue magnitude and colour, per filter.

    Parameters
    ----------
    stars : astropy.table.Table
        `aifa_steps.photometry.zeropoints.frame_zeropoints` star rows of all frames.
    aperture : str or float
        Aperture shown (column suffix or radius in arcsec).
    path : path
        PNG file.
    """
    from aifa_steps.photometry.zeropoints import aperture_rows

    table = stars[aperture_rows(stars, aperture)] if len(stars) else stars
    bands = sorted(set(table["filter"])) if len(table) else []
    fig, axes = plt.subplots(
        max(len(bands), 1), 2, figsize=(11, 2.8 * max(len(bands), 1)), squeeze=False
    )
    for row, band in enumerate(bands):
        part = table[table["filter"] == band]
        used = np.asarray(part["used"], bool)
        for col, (name, label) in enumerate(
            (("catalogue_mag", f"catalogue {band} [mag]"), ("colour", "catalogue colour [mag]"))
        ):
            ax = axes[row, col]
            ax.plot(part[name][used], part["residual"][used], ".", ms=2, alpha=0.3, color="C0")
            ax.plot(part[name][~used], part["residual"][~used], "x", ms=3, color="C3", alpha=0.5)
            ax.axhline(0, color="k", lw=0.8)
            values = np.asarray(part["residual"][used], float)
            spread = np.nanstd(values) if values.size else 0.1
            ax.set_ylim(-max(5 * spread, 0.05), max(5 * spread, 0.05))
            ax.set_xlabel(label)
            ax.set_ylabel("catalogue - calibrated [mag]")
            if col == 0:
                n_frames = len(set(part["stem"]))
                ax.set_title(
                    f"{band}: {used.sum()} star measurements in {n_frames} frames, "
                    f"scatter {spread:.3f} mag (crosses: rejected)",
                    fontsize=9,
                )
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
