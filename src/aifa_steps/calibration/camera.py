"""Camera characterisation from the night's own calibration frames (photon transfer).

Read noise from pairs of biases: the difference of two biases removes the fixed pattern, and its
standard deviation is sqrt(2) times the read noise. Gain from pairs of flats (photon transfer):
the difference of two flats at the same level removes the flat-field structure; its variance
over two is ``level / g + RN^2`` (ADU), so ``g = level / (var / 2 - RN^2)`` in e-/ADU, and a line
through pairs at several levels gives the same as an inverse slope.

Without flats, the lights' own sky gives the gain (`aifa_steps.calibration.skytransfer`); the
night's values for ``auto`` are chosen in `aifa_steps.calibration.detector`; the figure is in
`aifa_steps.calibration.plots`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.stats import sigma_clipped_stats
from astropy.table import Table

from aifa_steps.inventory.rawio import read_raw_header, read_raw_image

__all__ = [
    "central_part",
    "read_noise_from_biases",
    "photon_transfer",
    "characterise_camera",
]

log = logging.getLogger(__name__)


def central_part(data: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """The central ``fraction`` of an image in each axis (the central half by default)."""
    ny, nx = data.shape
    dy, dx = int(ny * fraction / 2), int(nx * fraction / 2)
    return data[ny // 2 - dy : ny // 2 + dy, nx // 2 - dx : nx // 2 + dx]


def _load(path: str | Path) -> np.ndarray:
    return central_part(read_raw_image(path)[0])


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
    bias_c = central_part(bias)
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
