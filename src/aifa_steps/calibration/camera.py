"""Camera characterisation from the night's own calibration frames.

Read noise from pairs of biases: the difference of two biases removes the fixed pattern, and its
standard deviation is sqrt(2) times the read noise. Gain from pairs of flats (photon transfer):
the difference of two flats at the same level removes the flat-field structure; its variance
over two is ``level / g + RN^2`` (ADU), so ``g = level / (var / 2 - RN^2)`` in e-/ADU, and a line
through pairs at several levels gives the same as an inverse slope.

When the configuration says ``gain: auto`` or ``read_noise: auto``, `resolve_detector` picks
per frame the raw header's value, else the night's measurement (`night_detector`): photon
transfer of flat and bias pairs, else the lights' own sky (`sky_transfer`, `gain_from_sky`):
the sky's pixel-to-pixel variance against its level, faint stars masked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.stats import sigma_clipped_stats
from astropy.table import Table

from aifa_steps.core.atomic import save_figure
from aifa_steps.inventory.rawio import read_raw_header, read_raw_image

__all__ = [
    "DETECTOR_COLUMNS",
    "is_auto",
    "sky_noise",
    "sky_transfer",
    "gain_from_sky",
    "night_detector",
    "resolve_detector",
    "read_noise_from_biases",
    "photon_transfer",
    "characterise_camera",
    "photon_transfer_figure",
]

log = logging.getLogger(__name__)


def _central(data: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    ny, nx = data.shape
    dy, dx = int(ny * fraction / 2), int(nx * fraction / 2)
    return data[ny // 2 - dy : ny // 2 + dy, nx // 2 - dx : nx // 2 + dx]


def _load(path: str | Path) -> np.ndarray:
    return _central(read_raw_image(path)[0])


def read_noise_from_biases(paths: Sequence[str | Path]) -> tuple[float, float]:
    """Read noise in ADU from consecutive pairs of biases: median and scatter over pairs."""
    if len(paths) < 2:
        raise ValueError("at least two bias frames are needed")
    values = []
    for a, b in zip(paths[0::2], paths[1::2], strict=False):
        _, _, std = sigma_clipped_stats(_load(a) - _load(b), sigma=4.0)
        values.append(std / np.sqrt(2.0))
    return float(np.median(values)), float(np.std(values))


def photon_transfer(
    flat_paths: Sequence[str | Path], bias: np.ndarray, saturation: float = 65535.0
) -> Table:
    """Mean level and half the variance of the difference for pairs of flats.

    Flats of the same filter are paired in order of level when their levels agree within 10 %;
    the second of a pair is scaled to the level of the first before differencing. Flats with
    saturated pixels are skipped.

    Returns
    -------
    astropy.table.Table
        Columns ``file_1``, ``file_2``, ``filter``, ``level`` (ADU, the pair's effective level),
        ``half_variance`` (ADU^2): for flats of equal level, the mean level and half the
        variance of the difference.
    """
    bias_c = _central(bias)
    by_filter: dict[str, list[str]] = {}
    for p in flat_paths:
        by_filter.setdefault(str(read_raw_header(p)[0].get("FILTER", "")), []).append(str(p))
    rows = []
    for band, paths in by_filter.items():
        frames = []
        for p in paths:
            data = _load(p)
            if data.max() >= saturation:
                continue
            data -= bias_c
            frames.append((p, data, float(np.median(data))))
        # Pair flats in order of level among those within 10 % of each other.
        frames.sort(key=lambda f: f[2])
        k = 0
        while k + 1 < len(frames):
            (a, fa, ma), (b, fb, mb) = frames[k], frames[k + 1]
            if abs(ma / mb - 1.0) > 0.1:
                k += 1
                continue
            # var(fa - c fb) = (ma / g)(1 + c) + RN^2 (1 + c^2) for c = ma / mb, so with
            # L = ma (1 + c) / (1 + c^2) the "half variance" var / (1 + c^2) = L / g + RN^2.
            c = ma / mb
            _, _, std = sigma_clipped_stats(fa - fb * c, sigma=4.0)
            level = ma * (1.0 + c) / (1.0 + c**2)
            rows.append((Path(a).name, Path(b).name, band, level, float(std**2 / (1.0 + c**2))))
            k += 2
    return Table(
        rows=rows,
        names=("file_1", "file_2", "filter", "level", "half_variance"),
        dtype=(str, str, str, float, float),
    )


def characterise_camera(
    bias_paths: Sequence[str | Path],
    flat_paths: Sequence[str | Path],
    bias: np.ndarray | None,
    gain: float,
    read_noise: float,
    saturation: float = 65535.0,
    tolerance: float = 0.15,
) -> tuple[Table, Table]:
    """Measure gain and read noise and compare them with the configured values.

    What the night lacks is skipped with a reason: read noise needs two biases, the gain a
    master bias and pairs of unsaturated flats.

    Parameters
    ----------
    bias_paths, flat_paths : sequence of path
        Raw biases and flats of the night (either may be empty).
    bias : numpy.ndarray or None
        Master bias (None: the night has none).
    gain, read_noise : float
        Configured gain (e-/ADU) and read noise (e-).
    saturation : float
        Raw saturation level.
    tolerance : float
        Relative mismatch above which a warning is logged.

    Returns
    -------
    summary : astropy.table.Table
        Rows ``gain`` and ``read_noise`` with ``measured``, ``error``, ``configured``, ``unit``,
        ``n_pairs``, ``ok``, ``reason`` (why a value was not measured).
    pairs : astropy.table.Table
        The photon-transfer pairs (see `photon_transfer`).
    """
    rn_adu, rn_scatter, rn_reason = float("nan"), float("nan"), ""
    if len(bias_paths) >= 2:
        rn_adu, rn_scatter = read_noise_from_biases(bias_paths)
    else:
        rn_reason = f"not measured: {len(bias_paths)} bias frame(s), two are needed"
    pairs = photon_transfer(flat_paths, bias, saturation) if bias is not None else _no_pairs()
    rows = []
    if len(pairs) and np.isfinite(rn_adu):
        excess = pairs["half_variance"] - rn_adu**2
        gains = pairs["level"] / excess
        g = float(np.median(gains))
        g_err = float(np.std(gains) / np.sqrt(len(gains))) if len(gains) > 1 else float("nan")
        if len(np.unique(np.round(pairs["level"], -2))) >= 3:
            slope = np.polyfit(pairs["level"], pairs["half_variance"], 1)[0]
            log.info("photon-transfer slope gives gain %.3f e-/ADU", 1.0 / slope)
        rows.append(("gain", g, g_err, gain, "e-/adu", len(pairs), ""))
        rn_e = rn_adu * g
    else:
        if bias is None:
            reason = "not measured: no master bias (the flats' level needs it)"
        elif not np.isfinite(rn_adu):
            reason = "not measured: the read noise is needed and was not measured"
        else:
            reason = "not measured: no pair of unsaturated flats at one level"
        log.warning("gain %s", reason)
        rows.append(("gain", float("nan"), float("nan"), gain, "e-/adu", 0, reason))
        rn_e = rn_adu * gain
    if np.isfinite(rn_adu):
        rn_err = rn_scatter / max(np.sqrt(len(bias_paths) // 2), 1) * (rn_e / rn_adu)
    else:
        rn_err = float("nan")
        log.warning("read noise %s", rn_reason)
    rows.append(
        (
            "read_noise",
            float(rn_e),
            float(rn_err),
            read_noise,
            "e-",
            len(bias_paths) // 2,
            rn_reason,
        )
    )
    summary = Table(
        rows=rows,
        names=("quantity", "measured", "error", "configured", "unit", "n_pairs", "reason"),
        dtype=(str, float, float, float, str, int, str),
    )
    ok = []
    for row in summary:
        compared = np.isfinite(row["measured"]) and np.isfinite(row["configured"])
        good = compared and abs(row["measured"] / row["configured"] - 1) <= tolerance
        ok.append(bool(good))
        if compared and not good:
            log.warning(
                "measured %s %.3f %s differs from the configured %.3f by more than "
                "%d %%: check the instrument section of the configuration",
                row["quantity"],
                row["measured"],
                row["unit"],
                row["configured"],
                round(100 * tolerance),
            )
    summary["ok"] = ok
    summary.meta["RN_ADU"] = float(rn_adu)
    summary.meta["RN_ADU_ERR"] = float(rn_scatter / max(np.sqrt(len(bias_paths) // 2), 1))
    return summary, pairs


def _no_pairs() -> Table:
    return Table(
        names=("file_1", "file_2", "filter", "level", "half_variance"),
        dtype=(str, str, str, float, float),
    )


def photon_transfer_figure(summary: Table, pairs: Table, path: str | Path) -> None:
    """Half the variance of flat-pair differences against level, with the measured gain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        reason = str(gain_row["reason"]) if "reason" in summary.colnames else ""
        ax.text(
            0.5,
            0.5,
            f"gain {reason}" if reason else "no unsaturated flat pairs",
            transform=ax.transAxes,
            ha="center",
            wrap=True,
        )
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


# ---- gain and read noise: auto ----------------------------------------------------------------
DETECTOR_COLUMNS = ("quantity", "value", "error", "unit", "source", "reason")
# Header values outside these limits are not a gain in e-/ADU (NINA's GAIN is the camera's gain
# setting, e.g. 26, next to EGAIN in e-/ADU) or a read noise in e-.
GAIN_LIMITS = (0.02, 20.0)
READ_NOISE_LIMITS = (0.1, 100.0)


def is_auto(value) -> bool:
    """True for a configuration value ``auto`` (gain or read noise to be resolved)."""
    return isinstance(value, str) and value.strip().lower() == "auto"


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
        centre = _central(np.asarray(raw, np.float64))
        bad = ~np.isfinite(centre) | (centre >= saturation)
        if isinstance(bias, np.ndarray):
            if bias.shape != raw.shape:
                continue
            centre = centre - _central(np.asarray(bias, np.float64))
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


def night_detector(
    instrument: dict, summary: Table | None = None, sky: Table | None = None
) -> Table:
    """The night's gain and read noise: configured, or measured for ``auto``.

    Parameters
    ----------
    instrument : dict
        The configuration's ``instrument`` section (``gain``, ``read_noise``: numbers or
        ``auto``).
    summary : astropy.table.Table, optional
        `characterise_camera` output (photon transfer of flat pairs, read noise of bias pairs).
    sky : astropy.table.Table, optional
        `sky_transfer` output (the lights' sky).

    Returns
    -------
    astropy.table.Table
        Rows ``gain`` and ``read_noise``: ``value``, ``error``, ``unit``, ``source``
        (``configuration``, ``photon transfer``, ``bias pairs``, ``lights' sky ...``, or
        ``none``), ``reason`` (why a value is missing). Per frame, a raw header's value
        comes first (`resolve_detector`).
    """

    def measured(quantity):
        if summary is None or not len(summary):
            return float("nan"), float("nan"), "not measured (no calibration frames read)"
        row = summary[summary["quantity"] == quantity]
        if not len(row):
            return float("nan"), float("nan"), "not measured"
        return float(row["measured"][0]), float(row["error"][0]), str(row["reason"][0])

    rows = {}
    gain_cfg, rn_cfg = instrument.get("gain"), instrument.get("read_noise")
    if not is_auto(gain_cfg):
        rows["gain"] = (float(gain_cfg), 0.0, "configuration", "")
    else:
        value, error, reason = measured("gain")
        if np.isfinite(value):
            rows["gain"] = (value, error, "photon transfer (flat pairs)", "")
    rn_adu = float(summary.meta.get("RN_ADU", np.nan)) if summary is not None else np.nan
    rn_adu_err = float(summary.meta.get("RN_ADU_ERR", np.nan)) if summary is not None else np.nan
    if not is_auto(rn_cfg):
        rows["read_noise"] = (float(rn_cfg), 0.0, "configuration", "")
    elif np.isfinite(rn_adu) and "gain" in rows:
        g = rows["gain"][0]
        rows["read_noise"] = (rn_adu * g, rn_adu_err * g, "bias pairs", "")
    sky_result = None
    if "gain" not in rows or "read_noise" not in rows:
        rn_e = rows["read_noise"][0] if "read_noise" in rows else float("nan")
        sky_result = gain_from_sky(sky if sky is not None else Table(), rn_adu, rn_e)
        if "gain" not in rows:
            if np.isfinite(sky_result["gain"]):
                rows["gain"] = (
                    sky_result["gain"],
                    sky_result["gain_err"],
                    sky_result["method"],
                    "",
                )
            else:
                reason = measured("gain")[2]
                rows["gain"] = (
                    float("nan"),
                    float("nan"),
                    "none",
                    f"{reason}; {sky_result['reason']}".strip("; "),
                )
        if "read_noise" not in rows:
            g = rows["gain"][0]
            if np.isfinite(rn_adu) and np.isfinite(g):
                rows["read_noise"] = (rn_adu * g, rn_adu_err * g, "bias pairs", "")
            elif np.isfinite(sky_result["read_noise"]):
                rows["read_noise"] = (
                    sky_result["read_noise"],
                    sky_result["read_noise_err"],
                    "lights' sky (intercept of variance against level)",
                    "",
                )
            else:
                rows["read_noise"] = (
                    float("nan"),
                    float("nan"),
                    "none",
                    f"{measured('read_noise')[2]}; not measurable from the lights' sky".strip("; "),
                )
    table = Table(
        rows=[
            (name, *rows[name][:2], unit, *rows[name][2:])
            for name, unit in (("gain", "e-/adu"), ("read_noise", "e-"))
        ],
        names=DETECTOR_COLUMNS,
        dtype=(str, float, float, str, str, str),
    )
    return table


def _plausible(value, limits) -> bool:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return False
    return bool(np.isfinite(value) and limits[0] <= value <= limits[1])


def resolve_detector(
    instrument: dict,
    header_gain: float = float("nan"),
    header_read_noise: float = float("nan"),
    night: Table | None = None,
) -> tuple[float, float, str, str]:
    """Gain and read noise of one frame, and where each comes from.

    Order: a number in the configuration; for ``auto`` the raw header's value (inventory
    columns ``gain``, ``read_noise``; NaN or implausible values are ignored: a gain outside
    0.02-20 e-/ADU, a read noise outside 0.1-100 e-); else the night's measurement
    (`night_detector`, ``qc/detector.ecsv``).

    Parameters
    ----------
    instrument : dict
        The configuration's ``instrument`` section.
    header_gain, header_read_noise : float
        The frame's header values (NaN when absent).
    night : astropy.table.Table, optional
        `night_detector` output.

    Returns
    -------
    gain, read_noise : float
        e-/ADU and e-.
    gain_source, read_noise_source : str
        ``configuration``, ``header``, or the night's source.

    Raises
    ------
    ValueError
        When an ``auto`` value cannot be resolved (the message names the reason and the key).
    """
    values = []
    for key, header_value, limits in (
        ("gain", header_gain, GAIN_LIMITS),
        ("read_noise", header_read_noise, READ_NOISE_LIMITS),
    ):
        configured = instrument.get(key)
        if not is_auto(configured):
            values.append((float(configured), "configuration"))
        elif _plausible(header_value, limits):
            values.append((float(header_value), "header"))
        else:
            row = night[night["quantity"] == key] if night is not None and len(night) else []
            if len(row) and np.isfinite(float(row["value"][0])):
                values.append((float(row["value"][0]), str(row["source"][0])))
            else:
                reason = str(row["reason"][0]) if len(row) else "no measurement of the night"
                raise ValueError(
                    f"instrument.{key} is auto, but the raw header has no value and the night "
                    f"gives none ({reason}): set instrument.{key} in the configuration"
                )
    (gain, gain_source), (read_noise, rn_source) = values
    return gain, read_noise, gain_source, rn_source
