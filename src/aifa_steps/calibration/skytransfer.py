"""Gain (and read noise) from the lights' own sky: photon transfer without flats.

The sky's pixel-to-pixel variance against its level, faint stars masked, gives the gain as the
inverse slope (or, with the bias level and the read noise known, frame by frame).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.table import Table

from aifa_steps.calibration.camera import central_part
from aifa_steps.inventory.rawio import read_raw_image

__all__ = ["sky_noise", "sky_transfer", "gain_from_sky"]

log = logging.getLogger(__name__)


def sky_noise(
    data: np.ndarray, saturation: float = np.inf, iterations: int = 2
) -> tuple[float, float, float]:
    """Sky level and pixel-to-pixel variance of an image, faint stars masked.

    The variance comes from differences of horizontal neighbours (their biweight scale squared
    over two), which smooth structure (gradients, vignetting, dust) cancels. Stars, down to
    those below any detection threshold, add variance: pixels whose 5 x 5 mean is more than
    one noise of that mean above the sky, grown by 3 pixels, are left out (on the simulated
    nights this brings the variance from 15-45 % above the CCD equation to within 3 %).

    Parameters
    ----------
    data : numpy.ndarray
        Image (ADU), e.g. the central half of a raw light minus the master bias.
    saturation : float
        Pixels at or above it are left out.
    iterations : int
        Passes of masking with the last noise estimate.

    Returns
    -------
    level : float
        Median of the unmasked pixels (ADU).
    variance : float
        Pixel variance (ADU^2); NaN when fewer than 100 pixel pairs remain.
    fraction : float
        Fraction of the pixel pairs used.
    """
    from astropy.stats import biweight_scale
    from scipy.ndimage import binary_dilation, uniform_filter

    image = np.asarray(data, np.float64)
    good = np.isfinite(image) & (image < saturation)
    image = np.where(good, image, np.median(image[good]) if good.any() else 0.0)
    diff = image[:, 1:] - image[:, :-1]
    pairs = good[:, 1:] & good[:, :-1]
    if pairs.sum() < 100:
        return float("nan"), float("nan"), 0.0
    step = max(1, int(pairs.sum()) // 1_000_000)
    variance = float(biweight_scale(diff[pairs][::step])) ** 2 / 2.0
    level = float(np.median(image[good]))
    use = pairs
    for _ in range(iterations):
        mean = uniform_filter(image, 5)
        stars = binary_dilation(mean > level + np.sqrt(variance) / 5.0, iterations=3)
        use = pairs & ~stars[:, 1:] & ~stars[:, :-1]
        if use.sum() < 100:
            break
        step = max(1, int(use.sum()) // 1_000_000)
        variance = float(biweight_scale(diff[use][::step])) ** 2 / 2.0
        level = float(np.median(image[good & ~stars]))
    return level, variance, float(use.sum() / pairs.size)


def sky_transfer(
    light_paths: Sequence[str | Path],
    bias: np.ndarray | float | None = None,
    saturation: float = 65535.0,
    max_frames: int = 40,
) -> Table:
    """Sky level and variance of the night's raw lights (photon transfer without flats).

    Parameters
    ----------
    light_paths : sequence of path
        Raw lights; at most ``max_frames`` of them, spread evenly over the list, are measured.
    bias : numpy.ndarray, float or None
        Master bias (full frame) or a constant bias level subtracted first; None: the raw
        level (then only the slope of variance against level gives the gain).
    saturation : float
        Raw saturation level.
    max_frames : int
        Largest number of frames read.

    Returns
    -------
    astropy.table.Table
        ``file``, ``level`` (ADU above the bias when known), ``variance`` (ADU^2),
        ``fraction`` (of the central half's pixels used); metadata ``PEDESTAL`` (True when
        the bias was subtracted).
    """
    paths = list(light_paths)
    if len(paths) > max_frames:
        paths = [paths[k] for k in np.linspace(0, len(paths) - 1, max_frames).round().astype(int)]
    rows = []
    for path in paths:
        try:
            raw = read_raw_image(path)[0]
        except Exception as error:  # noqa: BLE001 - an unreadable light is skipped here
            log.warning("%s: not used for the sky's photon transfer: %s", path, error)
            continue
        centre = central_part(np.asarray(raw, np.float64))
        bad = ~np.isfinite(centre) | (centre >= saturation)
        if isinstance(bias, np.ndarray):
            if bias.shape != raw.shape:
                continue
            centre = centre - central_part(np.asarray(bias, np.float64))
        elif bias is not None:
            centre = centre - float(bias)
        centre[bad] = np.nan
        level, variance, fraction = sky_noise(centre)
        if np.isfinite(variance):
            rows.append((Path(path).name, level, variance, fraction))
    table = Table(
        rows=rows,
        names=("file", "level", "variance", "fraction"),
        dtype=(str, float, float, float),
    )
    table.meta["PEDESTAL"] = bias is not None
    return table


def gain_from_sky(
    sky: Table,
    read_noise_adu: float = float("nan"),
    read_noise_e: float = float("nan"),
    max_slope_error: float = 0.05,
) -> dict:
    """Gain (and read noise) from the lights' sky variance against level.

    For a sky of S ADU above the bias, the variance is ``S / g + RN^2`` (ADU). With the bias
    subtracted and the read noise known, every frame gives ``g`` (the median is taken); else a
    straight line through variance against level gives ``g`` as its inverse slope, as long as
    the levels span enough (slope known to ``max_slope_error``), and, with the bias
    subtracted, the read noise from its intercept.

    Parameters
    ----------
    sky : astropy.table.Table
        `sky_transfer` output.
    read_noise_adu : float
        Known read noise in ADU, e.g. from bias pairs (NaN: unknown).
    read_noise_e : float
        Known read noise in e- (configured; used when the one in ADU is unknown).
    max_slope_error : float
        Largest relative error of the fitted slope.

    Returns
    -------
    dict
        ``gain``, ``gain_err`` (e-/ADU), ``read_noise``, ``read_noise_err`` (e-; NaN when
        not measured), ``method``, ``reason`` (why nothing was measured).
    """
    out = {
        "gain": float("nan"),
        "gain_err": float("nan"),
        "read_noise": float("nan"),
        "read_noise_err": float("nan"),
        "method": "",
        "reason": "",
    }
    level = np.asarray(sky["level"], float) if len(sky) else np.zeros(0)
    variance = np.asarray(sky["variance"], float) if len(sky) else np.zeros(0)
    pedestal = bool(sky.meta.get("PEDESTAL", False))
    ok = np.isfinite(level) & np.isfinite(variance) & (variance > 0)
    if pedestal:
        ok &= level > 0
    level, variance = level[ok], variance[ok]
    if level.size == 0:
        out["reason"] = "no light frame with a measurable sky"
        return out
    if pedestal and (np.isfinite(read_noise_adu) or np.isfinite(read_noise_e)):
        gains = level / variance
        for _ in range(1 if np.isfinite(read_noise_adu) else 5):
            # A read noise in e- needs the gain to be in ADU: iterate from RN = 0.
            rn = read_noise_adu if np.isfinite(read_noise_adu) else read_noise_e / np.median(gains)
            excess = variance - rn**2
            gains = level[excess > 0] / excess[excess > 0]
            if not gains.size:
                break
        if gains.size:
            out.update(
                gain=float(np.median(gains)),
                gain_err=float(1.2533 * np.std(gains) / np.sqrt(gains.size))
                if gains.size > 1
                else float("nan"),
                method=f"lights' sky, {gains.size} frames, read noise known",
            )
            return out
    if level.size >= 3 and np.ptp(level) > 0:
        keep = np.ones(level.size, bool)
        for _ in range(3):
            coef = np.polyfit(level[keep], variance[keep], 1)
            residual = variance - np.polyval(coef, level)
            spread = 1.4826 * np.median(np.abs(residual[keep] - np.median(residual[keep])))
            new = np.abs(residual) <= 4.0 * max(spread, 1e-9)
            if new.sum() < 3 or np.array_equal(new, keep):
                break
            keep = new
        coef, cov = (
            np.polyfit(level[keep], variance[keep], 1, cov=True)
            if keep.sum() > 3
            else (
                np.polyfit(level[keep], variance[keep], 1),
                np.full((2, 2), np.nan),
            )
        )
        slope, slope_err = float(coef[0]), float(np.sqrt(cov[0, 0]))
        if slope > 0 and np.isfinite(slope_err) and slope_err / slope <= max_slope_error:
            gain = 1.0 / slope
            out.update(
                gain=gain,
                gain_err=gain * slope_err / slope,
                method=f"lights' sky, slope of variance against level, {int(keep.sum())} frames",
            )
            if pedestal and coef[1] > 0:
                out["read_noise"] = float(np.sqrt(coef[1]) * gain)
                out["read_noise_err"] = float(0.5 * np.sqrt(cov[1, 1]) / np.sqrt(coef[1]) * gain)
            return out
        out["reason"] = (
            f"the lights' sky levels ({np.min(level):.0f}-{np.max(level):.0f} ADU) span too "
            "little for the slope of variance against level"
        )
    else:
        out["reason"] = "fewer than three lights with a measurable sky and no bias level"
    if pedestal:
        # Read noise unknown: the sky's photon noise dominates; the gain comes out low by
        # RN^2 / variance (a few per cent for a sky of a few hundred ADU).
        gains = level / variance
        out.update(
            gain=float(np.median(gains)),
            gain_err=float(np.std(gains) / np.sqrt(gains.size)) if gains.size > 1 else np.nan,
            method=f"lights' sky, {gains.size} frames, read noise neglected",
            reason="",
        )
    return out
