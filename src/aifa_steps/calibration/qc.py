"""Quality control of calibrations: statistics tables of the masters and calibrated frames.

The previews and figures are drawn by `aifa_steps.calibration.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.table import Table

from aifa_steps.core.atomic import write_table
from aifa_steps.core.fitsutil import set_card
from aifa_steps.core.formats import (
    COSMIC_RAY,
    HIGH_RESPONSE,
    HOT,
    LOW_RESPONSE,
    SATURATED,
    frame_stem,
)
from aifa_steps.core.frames import read_ccd

__all__ = [
    "QC_CARDS",
    "frame_statistics",
    "add_frame_statistics",
    "master_statistics",
    "calibrated_frames_table",
    "calibration_report",
]

#: Header cards of a calibrated frame's statistics (`frame_statistics` key -> card).
QC_CARDS = {
    "sky_median": "SKYMED",
    "sky_std": "SKYSTD",
    "predicted_std": "SKYPRED",
    "n_saturated": "NSATUR",
    "n_masked": "NMASKED",
}


def frame_statistics(ccd: CCDData) -> dict:
    """Sky level, noise and masked-pixel counts of a calibrated frame (for quality control)."""
    from astropy.stats import sigma_clipped_stats

    # Every 4th pixel of every 4th row: a million pixels of a full frame, plenty for a median.
    data = np.asarray(ccd.data)[::4, ::4]
    mask = np.asarray(ccd.mask)[::4, ::4] > 0 if ccd.mask is not None else None
    # The MAD is little affected by faint stars, unlike a clipped standard deviation.
    _, median, std = sigma_clipped_stats(data, mask=mask, sigma=3.0, maxiters=3, stdfunc="mad_std")
    flags = ccd.flags if isinstance(ccd.flags, np.ndarray) else None
    full_mask = np.asarray(flags) if flags is not None else np.zeros(ccd.shape, np.uint8)
    unc = np.asarray(ccd.uncertainty.array)[::4, ::4] if ccd.uncertainty is not None else None
    return {
        "sky_median": float(median),
        "sky_std": float(std),
        "predicted_std": float(np.median(unc)) if unc is not None else float("nan"),
        "n_saturated": int(np.count_nonzero(full_mask & SATURATED)),
        "n_cosmic": int(np.count_nonzero(full_mask & COSMIC_RAY)),
        "n_masked": int(np.count_nonzero(full_mask)),
    }


def add_frame_statistics(header: fits.Header, stats: Mapping[str, float]) -> None:
    """Write a frame's statistics (`frame_statistics`) into its header as `QC_CARDS`."""
    for key, card in QC_CARDS.items():
        set_card(header, card, stats[key], f"QC: {key.replace('_', ' ')}")


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


def calibrated_frames_table(paths: list[str | Path]) -> Table:
    """QC table of calibrated frames from their headers (failed frames are left out)."""
    rows = []
    for path in paths:
        h = fits.getheader(path)
        if h.get("FRAMEOK", True) is False:  # failed: listed in the night summary instead
            continue
        rows.append(
            {
                "stem": frame_stem(path),
                "object": str(h.get("OBJECT", "")),
                "filter": str(h.get("FILTNAME", h.get("FILTER", ""))),
                "exptime": float(h.get("EXPTIME", np.nan)),
                "date_obs": str(h.get("DATE-OBS", "")),
                "airmass": float(h.get("AIRMASS", np.nan)),
                "sky_median": float(h.get(QC_CARDS["sky_median"], np.nan)),
                "sky_std": float(h.get(QC_CARDS["sky_std"], np.nan)),
                "predicted_std": float(h.get(QC_CARDS["predicted_std"], np.nan)),
                "n_saturated": int(h.get(QC_CARDS["n_saturated"], -1)),
                "n_masked": int(h.get(QC_CARDS["n_masked"], -1)),
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
    from aifa_steps.calibration.plots import bad_pixel_figure, frames_figure, preview_png
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

    def dark_title(dark: CCDData) -> str:
        included = "bias included" if dark.meta.get("BIASINCL", False) else "bias subtracted"
        return (
            f"Master dark, {dark.meta['EXPTIME']:g} s ({dark.meta.get('NCOMBINE')} frames, "
            f"{included})"
        )

    def flat_title(flat: CCDData) -> str:
        return (
            f"Master flat {flat.meta.get('FILTER', '')} ({flat.meta.get('NCOMBINE')} "
            "frames, normalised)"
        )

    for kind, paths, title, preview in (
        ("dark", darks, dark_title, {"label": "ADU"}),
        ("flat", flats, flat_title, {"interval": "percentile", "label": "relative response"}),
    ):
        if not paths:
            rows.append(_missing_master(kind, kind, f"no {kind} frames in this night"))
        for path in paths:
            failure = fits_failure(path)
            if failure:
                rows.append(_missing_master(kind, Path(path).name, failure[1]))
                continue
            master = read_ccd(path)
            rows.append(master_statistics(kind, master, Path(path).name, mask=mask))
            preview_png(
                master.data,
                preview_dir / f"master_{frame_stem(path)}.png",
                title(master),
                **preview,
            )
    if mask is not None:
        bad_pixel_figure(mask, preview_dir / "bad_pixels.png")
    else:
        rows.append(_missing_master("bad_pixels", "bad_pixels.fits", mask_failure[1]))
    for row in rows:
        row.setdefault("reason", "")
    write_table(Table(rows=rows), masters_table)
    table = calibrated_frames_table(frames)
    write_table(table, frames_table)
    frames_figure(table, frames_plot)
