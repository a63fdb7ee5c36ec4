"""The night's conditions in one figure: seeing, sky brightness and airmass against time."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.table import Table  # noqa: E402

from aifa_steps.core.atomic import save_figure  # noqa: E402

__all__ = ["conditions_figure"]


def conditions_figure(calibrated: Table | None, zeropoints: Table | None, path: str | Path) -> None:
    """Seeing, sky (ADU/s per pixel) and airmass of every light frame against UTC.

    Parameters
    ----------
    calibrated : astropy.table.Table or None
        ``qc/calibrated_frames.ecsv``: ``mjd``, ``object``, ``filter``, ``exptime``,
        ``sky_median`` and ``airmass`` of every calibrated light (None: no light was
        calibrated; the figure says so).
    zeropoints : astropy.table.Table or None
        ``zeropoints.ecsv``: ``stem`` and ``seeing_arcsec`` of the measured frames.
    path : path
        PNG file.
    """
    if calibrated is None or not len(calibrated):
        fig, ax = plt.subplots(figsize=(8, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "No light frame was calibrated.", ha="center", va="center")
        save_figure(fig, path, dpi=90)
        plt.close(fig)
        return
    mjd = np.asarray(calibrated["mjd"], float)
    start = np.floor(np.nanmin(mjd))
    hours = (mjd - start) * 24.0
    seeing_of = {}
    if zeropoints is not None and "seeing_arcsec" in zeropoints.colnames:
        seeing_of = {str(r["stem"]): float(r["seeing_arcsec"]) for r in zeropoints}
    seeing = np.array([seeing_of.get(str(s), np.nan) for s in calibrated["stem"]])
    sky = np.asarray(calibrated["sky_median"], float) / np.asarray(calibrated["exptime"], float)
    objects = np.asarray(calibrated["object"]).astype(str)
    bands = np.asarray(calibrated["filter"]).astype(str)
    groups = sorted(set(zip(objects, bands, strict=True)))
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    for k, (obj, band) in enumerate(groups):
        sel = (objects == obj) & (bands == band)
        style = {"color": f"C{k % 10}", "ms": 4, "label": f"{obj} {band}"}
        axes[0].plot(hours[sel], seeing[sel], "o", **style)
        axes[1].plot(hours[sel], sky[sel], "o", **style)
        axes[2].plot(hours[sel], np.asarray(calibrated["airmass"], float)[sel], "o", **style)
    axes[0].set_ylabel("seeing FWHM [arcsec]")
    axes[1].set_ylabel("sky [ADU/s per pixel]")
    axes[1].set_yscale("log")
    axes[2].set_ylabel("airmass")
    axes[2].set_xlabel(f"UTC [h from MJD {start:.0f}]")
    axes[0].set_title("Conditions through the night (every calibrated light frame)", fontsize=10)
    if groups:
        axes[0].legend(fontsize=7, ncol=min(4, len(groups)), loc="upper left")
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
    plt.close(fig)
