"""Quality control of calibrations: statistics tables and preview images."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.nddata import CCDData  # noqa: E402
from astropy.table import Table  # noqa: E402
from astropy.visualization import PercentileInterval, ZScaleInterval  # noqa: E402

from aifa_steps.core.atomic import save_figure, write_table  # noqa: E402
from aifa_steps.core.formats import HIGH_RESPONSE, HOT, LOW_RESPONSE
from aifa_steps.core.frames import read_ccd

__all__ = [
    "master_statistics",
    "preview_png",
    "frames_figure",
    "calibration_report",
    "bad_pixel_figure",
]


def master_statistics(
    kind: str,
    ccd: CCDData,
    name: str,
    read_noise_adu: float | None = None,
    mask: np.ndarray | None = None,
) -> dict:
    """One row of the masters' QC table.

    ``noise`` is the typical standard error of a pixel of the master, sqrt(mean(error^2)) of its
    uncertainty plane; for a bias, ``expected_noise`` is the read noise over sqrt(NCOMBINE).
    """
    data = np.asarray(ccd.data, dtype=np.float64)
    n = int(ccd.meta.get("NCOMBINE", 0))
    row = {
        "master": name,
        "kind": kind,
        "ncombine": n,
        "exptime": float(ccd.meta.get("EXPTIME", np.nan)),
        "filter": str(ccd.meta.get("FILTER", "")) if kind == "flat" else "",
        "level": float(np.median(data)),
        "noise": float("nan"),
        "expected_noise": float("nan"),
        "min": float(np.percentile(data, 0.1)),
        "max": float(np.percentile(data, 99.9)),
        "n_hot": -1,
        "n_low": -1,
    }
    if ccd.uncertainty is not None:
        row["noise"] = float(np.sqrt(np.mean(np.square(ccd.uncertainty.array, dtype=np.float64))))
    if kind == "bias" and read_noise_adu and n:
        row["expected_noise"] = read_noise_adu / np.sqrt(n)
    if mask is not None:
        row["n_hot"] = int(np.count_nonzero(mask & HOT))
        row["n_low"] = int(np.count_nonzero(mask & (LOW_RESPONSE | HIGH_RESPONSE)))
    return row


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


def _frames_table(paths: list[str | Path]) -> Table:
    from astropy.io import fits

    rows = []
    for path in paths:
        h = fits.getheader(path)
        if h.get("FRAMEOK", True) is False:  # failed: listed in the night summary instead
            continue
        rows.append(
            {
                "stem": Path(path).name.removesuffix(".fits"),
                "object": str(h.get("OBJECT", "")),
                "filter": str(h.get("FILTNAME", h.get("FILTER", ""))),
                "exptime": float(h.get("EXPTIME", np.nan)),
                "date_obs": str(h.get("DATE-OBS", "")),
                "airmass": float(h.get("AIRMASS", np.nan)),
                "sky_median": float(h.get("SKYMED", np.nan)),
                "sky_std": float(h.get("SKYSTD", np.nan)),
                "predicted_std": float(h.get("SKYPRED", np.nan)),
                "n_saturated": int(h.get("NSATUR", -1)),
                "n_masked": int(h.get("NMASKED", -1)),
                "bias": str(h.get("BIASCORR", "")),
                "dark": str(h.get("DARKCORR", "")),
                "flat": str(h.get("FLATCORR", "")),
                "mjd": _mjd(h.get("DATE-OBS", "")),
            }
        )
    table = Table(rows=rows) if rows else Table()
    if rows:
        table.sort("mjd")
    return table


def _mjd(date: object) -> float:
    """MJD of an ISO date (NaN when it cannot be read: the plot then leaves the frame out)."""
    from astropy.time import Time

    try:
        return float(Time(str(date).strip(), format="isot", scale="utc").mjd)
    except ValueError:
        return float("nan")


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


def _missing_master(kind: str, name: str, reason: str) -> dict:
    """A row of the masters' QC table for a master the night does not have."""
    return {
        "master": name,
        "kind": kind,
        "ncombine": 0,
        "exptime": float("nan"),
        "filter": "",
        "level": float("nan"),
        "noise": float("nan"),
        "expected_noise": float("nan"),
        "min": float("nan"),
        "max": float("nan"),
        "n_hot": -1,
        "n_low": -1,
        "reason": reason,
    }


def calibration_report(
    bias: str | Path | None,
    darks: list[str | Path],
    flats: list[str | Path],
    bad_pixels: str | Path | None,
    frames: list[str | Path],
    read_noise_adu: float,
    masters_table: str | Path,
    frames_table: str | Path,
    preview_dir: str | Path,
    frames_plot: str | Path,
) -> None:
    """Write the QC tables and previews of the calibration stage.

    Masters the night lacks, or that could not be made, get a row with the ``reason``;
    calibrated frames that failed are left out of the frame table (the night's status lists
    them).
    """
    from astropy.io import fits

    from aifa_steps.core.failures import fits_failure

    preview_dir = Path(preview_dir)
    preview_dir.mkdir(parents=True, exist_ok=True)
    mask_failure = fits_failure(bad_pixels) if bad_pixels else ("", "no bad-pixel mask")
    mask = None if mask_failure else fits.getdata(bad_pixels)
    rows = []
    bias_failure = fits_failure(bias) if bias else ("", "no bias frames in this night")
    if bias_failure:
        rows.append(_missing_master("bias", Path(bias or "bias.fits").name, bias_failure[1]))
    else:
        master_bias = read_ccd(bias)
        rows.append(master_statistics("bias", master_bias, Path(bias).name, read_noise_adu))
        preview_png(
            master_bias.data,
            preview_dir / "master_bias.png",
            f"Master bias ({master_bias.meta.get('NCOMBINE')} frames)",
            label="ADU",
        )
    if not darks:
        rows.append(_missing_master("dark", "dark", "no dark frames in this night"))
    for path in darks:
        failure = fits_failure(path)
        if failure:
            rows.append(_missing_master("dark", Path(path).name, failure[1]))
            continue
        dark = read_ccd(path)
        rows.append(master_statistics("dark", dark, Path(path).name, mask=mask))
        name = Path(path).name.removesuffix(".fits")
        preview_png(
            dark.data,
            preview_dir / f"master_{name}.png",
            f"Master dark, {dark.meta['EXPTIME']:g} s ({dark.meta.get('NCOMBINE')} frames, "
            + ("bias subtracted)" if not dark.meta.get("BIASINCL", False) else "bias included)"),
            label="ADU",
        )
    if not flats:
        rows.append(_missing_master("flat", "flat", "no flat frames in this night"))
    for path in flats:
        failure = fits_failure(path)
        if failure:
            rows.append(_missing_master("flat", Path(path).name, failure[1]))
            continue
        flat = read_ccd(path)
        rows.append(master_statistics("flat", flat, Path(path).name, mask=mask))
        name = Path(path).name.removesuffix(".fits")
        preview_png(
            flat.data,
            preview_dir / f"master_{name}.png",
            f"Master flat {flat.meta.get('FILTER', '')} ({flat.meta.get('NCOMBINE')} "
            "frames, normalised)",
            interval="percentile",
            label="relative response",
        )
    if mask is not None:
        bad_pixel_figure(mask, preview_dir / "bad_pixels.png")
    else:
        rows.append(_missing_master("bad_pixels", "bad_pixels.fits", mask_failure[1]))
    for row in rows:
        row.setdefault("reason", "")
    write_table(Table(rows=rows), masters_table)
    table = _frames_table(frames)
    write_table(table, frames_table)
    frames_figure(table, frames_plot)
