"""Figures of the calibration stage: master previews, bad-pixel map, frames, photon transfer.

The only calibration module that uses matplotlib (Agg backend); the statistics it draws come
from `aifa_steps.calibration.qc` and `aifa_steps.calibration.camera`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.table import Table  # noqa: E402
from astropy.visualization import PercentileInterval, ZScaleInterval  # noqa: E402

from aifa_steps.core.atomic import save_figure  # noqa: E402
from aifa_steps.core.formats import HIGH_RESPONSE, HOT, LOW_RESPONSE  # noqa: E402

__all__ = ["preview_png", "bad_pixel_figure", "frames_figure", "photon_transfer_figure"]


def preview_png(
    data: np.ndarray,
    path: str | Path,
    title: str,
    interval: str = "zscale",
    cmap: str = "gray",
    label: str = "",
) -> None:
    """Save an image with a sensible grey scale (zscale or 0.5-99.5 percentiles) and colour bar."""
    data = np.asarray(data, dtype=np.float32)
    sample = data[:: max(1, data.shape[0] // 800), :: max(1, data.shape[1] // 800)]
    if interval == "zscale":
        vmin, vmax = ZScaleInterval().get_limits(sample)
    else:
        vmin, vmax = PercentileInterval(99.0).get_limits(sample)
    step = max(1, int(np.ceil(max(data.shape) / 1600)))
    fig, ax = plt.subplots(figsize=(8, 8 * data.shape[0] / data.shape[1] + 0.8))
    im = ax.imshow(
        data[::step, ::step],
        origin="lower",
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        extent=(0, data.shape[1], 0, data.shape[0]),
        interpolation="nearest",
    )
    fig.colorbar(im, ax=ax, label=label, shrink=0.8)
    ax.set_title(title)
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def bad_pixel_figure(mask: np.ndarray, path: str | Path) -> None:
    """Positions of hot and low/high-response pixels (single pixels are drawn as dots)."""
    fig, ax = plt.subplots(figsize=(8, 8 * mask.shape[0] / mask.shape[1] + 0.8))
    for bits, colour, name in (
        (HOT, "red", "hot"),
        (LOW_RESPONSE | HIGH_RESPONSE, "blue", "low/high response"),
    ):
        y, x = np.nonzero(mask & bits)
        ax.plot(x, y, ".", ms=2, color=colour, label=f"{name}: {len(x)}")
    ax.set_xlim(0, mask.shape[1])
    ax.set_ylim(0, mask.shape[0])
    ax.set_aspect("equal")
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    ax.set_title("Bad-pixel mask")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def frames_figure(table: Table, path: str | Path) -> None:
    """Sky level and noise (measured vs predicted by the CCD equation) through the night."""
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    if len(table):
        hours = (table["mjd"] - np.floor(table["mjd"].min())) * 24
        for (obj, band), idx in _groups(table):
            label = f"{obj} {band}"
            axes[0].plot(
                hours[idx], table["sky_median"][idx] / table["exptime"][idx], "o", ms=3, label=label
            )
            axes[1].plot(
                hours[idx],
                table["sky_std"][idx] / table["predicted_std"][idx],
                "o",
                ms=3,
                label=label,
            )
    axes[0].set_ylabel("sky [ADU/s/pixel]")
    axes[1].axhline(1.0, color="k", lw=0.8)
    axes[1].set_ylabel("sky noise / CCD equation")
    axes[1].set_xlabel("UT [hours]")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)


def _groups(table: Table):
    keys = sorted({(o, f) for o, f in zip(table["object"], table["filter"], strict=True)})
    for key in keys:
        yield key, np.flatnonzero((table["object"] == key[0]) & (table["filter"] == key[1]))


def photon_transfer_figure(summary: Table, pairs: Table, path: str | Path) -> None:
    """Half the variance of flat-pair differences against level, with the measured gain."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    gain_row = summary[summary["quantity"] == "gain"][0]
    rn_row = summary[summary["quantity"] == "read_noise"][0]
    if len(pairs):
        for band in sorted(set(pairs["filter"])):
            sel = pairs["filter"] == band
            ax.plot(
                pairs["level"][sel], pairs["half_variance"][sel], "o", label=f"flat pairs {band}"
            )
        x = np.linspace(0, 1.1 * max(pairs["level"]), 50)
        rn_adu = (
            rn_row["measured"] / gain_row["measured"] if np.isfinite(gain_row["measured"]) else 0
        )
        for g, style, label in (
            (gain_row["measured"], "-", "measured"),
            (gain_row["configured"], "--", "configured"),
        ):
            if np.isfinite(g):
                ax.plot(x, x / g + rn_adu**2, style, label=f"{label}: g = {g:.3f} e-/ADU")
    else:
        # No curve to draw: say why, and what the calibration used instead.
        reason = str(gain_row["reason"]) if "reason" in summary.colnames else ""
        lines = [
            "No photon-transfer curve for this night:",
            textwrap.fill(reason or "no unsaturated pairs of flats at one level", 60),
            "",
            "The calibration used the configured values:",
            f"gain {gain_row['configured']:.3f} e-/ADU, read noise {rn_row['configured']:.2f} e-",
            "(instrument.gain and instrument.read_noise; `auto` measures them",
            "from pairs of flats and biases, or from the lights' sky).",
        ]
        ax.axis("off")
        ax.text(0.5, 0.5, "\n".join(lines), transform=ax.transAxes, ha="center", va="center")
        ax.set_title("Photon transfer")
        fig.tight_layout()
        save_figure(fig, path, dpi=100)
        plt.close(fig)
        return
    ax.set_xlabel("mean level [ADU]")
    ax.set_ylabel("variance of difference / 2 [ADU$^2$]")
    ax.set_title(
        f"Photon transfer; read noise {rn_row['measured']:.2f} e- "
        f"(configured {rn_row['configured']:.2f})"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
