"""Master calibration frames: bias, dark and flat, combined block by block.

All masters are `~astropy.nddata.CCDData` (float32 data, standard-error uncertainty, and the
number of combined values per pixel in the header statistics). Darks are bias-subtracted and
refer to their own exposure time (``EXPTIME``); flats are bias- and dark-subtracted, each frame
normalised by its median, and the master normalised to median 1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import Table

from aifa_steps.calibration.combine import combine_files
from aifa_steps.core.config import StepSettings
from aifa_steps.core.provenance import add_provenance
from aifa_steps.inventory.headers import header_float, keywords_for
from aifa_steps.inventory.rawio import read_raw_header
from aifa_steps.inventory.readout import ReadoutSettings
from aifa_steps.inventory.rowbands import open_image_rows

__all__ = [
    "ClipParameters",
    "FlatLevels",
    "make_master_bias",
    "make_master_dark",
    "make_master_flat",
    "dark_for_exposure",
    "exptime_label",
    "NoUsableFlat",
    "FLAT_FRAME_COLUMNS",
    "failed_flats_table",
]

#: Columns of the table of a filter's flats (``qc/flat_frames_<filter>.ecsv``).
FLAT_FRAME_COLUMNS = ("path", "exptime", "level", "saturated_fraction", "used", "reason")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipParameters(StepSettings):
    """How frames are combined: sigma-clipped mean with median centre and MAD std.

    Config section ``calibration``; the number of threads is the job's, an argument of the
    ``make_master_*`` functions.
    """

    section: ClassVar[str] = "calibration"

    sigma_clip: float = 5.0
    max_iterations: int = 5
    memory_limit_mb: float = 1024.0

    def describe(self) -> dict:
        """Parameters as recorded in headers."""
        return {
            "combine": "sigma-clipped mean (median centre, MAD std)",
            "sigma": self.sigma_clip,
            "maxiters": self.max_iterations,
        }


@dataclass(frozen=True)
class FlatLevels(StepSettings):
    """Accepted median levels of flats after bias and dark (config section ``calibration``)."""

    section: ClassVar[str] = "calibration"

    flat_min_adu: float = 5000.0
    flat_max_adu: float = 55000.0


class NoUsableFlat(ValueError):
    """Every flat of a filter was rejected; ``frames`` lists them with their reasons."""

    def __init__(self, message: str, frames: Table):
        super().__init__(message)
        self.frames = frames


def exptime_label(exptime: float) -> str:
    """Compact text for an exposure time in file names (``60`` or ``2.5``)."""
    return f"{float(exptime):g}"


def _master(result, unit, header: fits.Header) -> CCDData:
    ccd = CCDData(result.mean, unit=unit, meta=header)
    ccd.uncertainty = StdDevUncertainty(result.error)
    return ccd


def _exptime(path: str | Path, keyword: str | Sequence[str] | None = None) -> float:
    """Exposure time of a raw file from its header (the configured or the usual keywords)."""
    header = read_raw_header(path)[0]
    value = header_float(header, "exptime", {"exptime": keyword} if keyword else None)
    if value is None:
        raise ValueError(f"{path}: no exposure time ({'/'.join(keywords_for('exptime'))})")
    return value


def _describe_readout(header: fits.Header, path: str | Path, readout) -> None:
    """Record the overscan and trim of the first frame (all share one geometry)."""
    with open_image_rows(path, readout) as image:
        if image.layout.active:
            image.layout.describe(header, image.overscan_level)


def make_master_bias(
    paths: Sequence[str | Path],
    clip: ClipParameters = ClipParameters(),
    readout: ReadoutSettings | Mapping[str, object] | None = None,
    threads: int = 1,
) -> CCDData:
    """Sigma-clipped mean of bias frames.

    Parameters
    ----------
    paths : sequence of path
        Raw bias frames.
    clip : ClipParameters
        Combination parameters.
    readout : mapping, optional
        Overscan and trim settings (`aifa_steps.inventory.readout.readout_for`): each frame is
        overscan-subtracted and trimmed before combining.
    threads : int
        Threads that combine blocks of rows.

    Returns
    -------
    astropy.nddata.CCDData
        Master bias in ADU with its standard error.
    """
    result = combine_files(
        paths,
        sigma_low=clip.sigma_clip,
        sigma_high=clip.sigma_clip,
        maxiters=clip.max_iterations,
        memory_limit_mb=clip.memory_limit_mb,
        threads=threads,
        readout=readout,
    )
    header = fits.Header()
    header["IMAGETYP"] = "MASTER BIAS"
    _describe_readout(header, paths[0], readout)
    header["NCOMBINE"] = (len(paths), "number of frames combined")
    header["EXPTIME"] = 0.0
    add_provenance(header, "master bias", paths, clip.describe())
    return _master(result, u.adu, header)


def make_master_dark(
    paths: Sequence[str | Path],
    master_bias: CCDData | None,
    clip: ClipParameters = ClipParameters(),
    exptime_keyword: str | Sequence[str] | None = None,
    readout: ReadoutSettings | Mapping[str, object] | None = None,
    threads: int = 1,
) -> CCDData:
    """Sigma-clipped mean of bias-subtracted darks of one exposure time.

    Parameters
    ----------
    paths : sequence of path
        Raw darks of one exposure time.
    master_bias : CCDData or None
        Master bias. Without one (a night without bias frames) the master dark keeps the
        bias level (header ``BIASINCL = T``) and is later subtracted unscaled, as bias and
        dark together.
    clip : ClipParameters
        Combination parameters.
    exptime_keyword : str or list of str, optional
        Header keyword(s) of the exposure time (default: the usual ones, EXPTIME first).
    readout : mapping, optional
        Overscan and trim settings, as for `make_master_bias`.
    threads : int
        Threads that combine blocks of rows.

    Returns
    -------
    astropy.nddata.CCDData
        Dark signal in ADU accumulated in ``EXPTIME`` seconds (the darks' exposure time).
    """
    times = {_exptime(p, exptime_keyword) for p in paths}
    if len(times) != 1:
        raise ValueError(f"darks of different exposure times cannot be combined: {sorted(times)}")
    bias = None if master_bias is None else np.asarray(master_bias.data, dtype=np.float32)

    def subtract_bias(block, rows, _k):
        return block - bias[rows]

    result = combine_files(
        paths,
        subtract_bias if bias is not None else None,
        clip.sigma_clip,
        clip.sigma_clip,
        clip.max_iterations,
        clip.memory_limit_mb,
        threads=threads,
        readout=readout,
    )
    header = fits.Header()
    header["IMAGETYP"] = "MASTER DARK"
    _describe_readout(header, paths[0], readout)
    header["EXPTIME"] = (times.pop(), "[s] exposure time of the combined darks")
    header["NCOMBINE"] = (len(paths), "number of frames combined")
    if master_bias is not None:
        header["BIASCORR"] = (str(master_bias.meta.get("FILENAME", "master bias")), "bias removed")
    else:
        header["BIASCORR"] = ("none", "no bias frames: the bias level is included")
    header["BIASINCL"] = (master_bias is None, "bias level included (use unscaled)")
    add_provenance(
        header,
        "master dark (bias subtracted)" if master_bias is not None else "master dark (with bias)",
        paths,
        clip.describe(),
    )
    return _master(result, u.adu, header)


def dark_for_exposure(darks: dict[float, CCDData], exptime: float) -> tuple[CCDData, float]:
    """The master dark to use for an exposure, and the factor to scale it by.

    A dark of the same exposure time is used as it is; otherwise the longest dark, scaled by the
    ratio of exposure times (dark current is linear in time). Darks that include the bias
    level (``BIASINCL``: the night had no bias frames) cannot be scaled: the one closest in
    exposure time is used unscaled.
    """
    if not darks:
        raise ValueError("no master dark available")
    for t, dark in darks.items():
        if abs(t - exptime) < 1e-3:
            return dark, 1.0
    if any(_includes_bias(d) for d in darks.values()):
        closest = min(darks, key=lambda t: abs(t - exptime))
        return darks[closest], 1.0
    longest = max(darks)
    return darks[longest], exptime / longest


def _includes_bias(dark: object) -> bool:
    meta = getattr(dark, "meta", None) or {}
    return bool(meta.get("BIASINCL", False))


def _flat_level(
    path: Path,
    bias: np.ndarray,
    dark: tuple[CCDData, float] | None,
    saturation: float,
    step: int = 4,
    readout: ReadoutSettings | Mapping[str, object] | None = None,
) -> tuple[float, float]:
    """Median bias/dark-corrected level and the fraction of saturated pixels (subsampled).

    Saturation is judged on the raw counts (before the overscan is subtracted).
    """
    with open_image_rows(path, readout) as image:
        raw = image.rows(slice(None, None, step))[:, ::step]
        offset = image.overscan_level
    corrected = raw - bias[::step, ::step]
    raw = raw + np.float32(offset)
    if dark is not None:
        corrected -= np.asarray(dark[0].data[::step, ::step], np.float32) * np.float32(dark[1])
    return float(np.median(corrected)), float(np.mean(raw >= saturation))


def make_master_flat(
    paths: Sequence[str | Path],
    master_bias: CCDData | None,
    darks: dict[float, CCDData] | None,
    min_level: float = 5000.0,
    max_level: float = 55000.0,
    saturation: float = 65535.0,
    clip: ClipParameters = ClipParameters(),
    exptime_keyword: str | Sequence[str] | None = None,
    filter_name: str = "",
    bias_level: float = 0.0,
    readout: ReadoutSettings | Mapping[str, object] | None = None,
    threads: int = 1,
) -> tuple[CCDData, Table]:
    """Master flat of one filter; flats that are too faint or saturated are rejected.

    Parameters
    ----------
    paths : sequence of path
        Raw flats of one filter.
    master_bias : CCDData or None
        Master bias; None for a night without bias frames (then a dark that includes the
        bias level is subtracted unscaled, or else the constant ``bias_level``).
    darks : dict of float to CCDData, optional
        Master darks by exposure time (scaled to each flat's exposure time).
    min_level, max_level : float
        Accepted range of each flat's median level after bias and dark subtraction (ADU).
    saturation : float
        Raw level of saturation; a flat with more than 0.1 % saturated pixels is rejected.
    clip : ClipParameters
        Combination parameters.
    exptime_keyword : str or list of str, optional
        Header keyword(s) of the exposure time (default: the usual ones, EXPTIME first).
    filter_name : str
        Canonical filter name written to the master's header.
    bias_level : float
        Constant bias level (ADU) subtracted when there is neither a master bias nor a dark
        that includes it.
    readout : mapping, optional
        Overscan and trim settings, as for `make_master_bias`.
    threads : int
        Threads that combine blocks of rows.

    Returns
    -------
    master : CCDData
        Normalised master flat (median 1, dimensionless) with its standard error.
    frames : astropy.table.Table
        Every input flat with ``path``, ``exptime``, ``level``, ``saturated_fraction``, ``used``
        and ``reason``.

    Raises
    ------
    NoUsableFlat
        If no flat survives the checks (its ``frames`` attribute holds the table).
    """
    bias_note = ""
    if master_bias is not None:
        bias = np.asarray(master_bias.data, dtype=np.float32)
    else:
        with_bias = bool(darks) and any(_includes_bias(d) for d in darks.values())
        bias = np.full((1, 1), 0.0 if with_bias else bias_level, np.float32)
        bias_note = "dark with bias" if with_bias else f"constant {bias_level:g} ADU"
    rows = []
    for path in paths:
        t = _exptime(path, exptime_keyword)
        dark = dark_for_exposure(darks, t) if darks else None
        level, sat = _flat_level(Path(path), bias, dark, saturation, readout=readout)
        reason = ""
        if sat > 1e-3:
            reason = f"saturated ({100 * sat:.1f} % of pixels at {saturation:g} ADU)"
        elif level > max_level:
            reason = f"too bright (median {level:.0f} ADU > {max_level:g})"
        elif level < min_level:
            reason = f"too faint (median {level:.0f} ADU < {min_level:g})"
        rows.append((str(path), t, level, sat, not reason, reason))
        if reason:
            log.warning("flat %s rejected: %s", path, reason)
    frames = Table(
        rows=rows,
        names=FLAT_FRAME_COLUMNS,
        dtype=(str, float, float, float, bool, str),
    )
    used = frames[frames["used"]]
    if len(used) == 0:
        raise NoUsableFlat(
            f"no usable flat among {len(paths)} frames: "
            + "; ".join(f"{Path(r['path']).name}: {r['reason']}" for r in frames),
            frames,
        )
    dark_of = [dark_for_exposure(darks, t) if darks else None for t in used["exptime"]]
    scales = [np.float32(1.0 / level) for level in used["level"]]

    def correct(block, rows_, k):
        block = block - (bias if bias.shape == (1, 1) else bias[rows_])
        if dark_of[k] is not None:
            dark, factor = dark_of[k]
            block -= np.asarray(dark.data[rows_], np.float32) * np.float32(factor)
        return block * scales[k]

    result = combine_files(
        list(used["path"]),
        correct,
        clip.sigma_clip,
        clip.sigma_clip,
        clip.max_iterations,
        clip.memory_limit_mb,
        threads=threads,
        readout=readout,
    )
    norm = np.float32(np.median(result.mean[::2, ::2]))
    result.mean /= norm
    result.error /= norm
    header = fits.Header()
    header["IMAGETYP"] = "MASTER FLAT"
    _describe_readout(header, used["path"][0], readout)
    header["FILTER"] = filter_name or str(read_raw_header(used["path"][0])[0].get("FILTER", ""))
    header["NCOMBINE"] = (len(used), "number of flats combined")
    header["NREJECT"] = (len(frames) - len(used), "flats rejected (level or saturation)")
    header["FLATLVL"] = (float(np.median(used["level"])), "[adu] median level of the used flats")
    if bias_note:
        header["BIASCORR"] = (bias_note, "no bias frames: how the bias level was removed")
    add_provenance(
        header,
        "master flat (bias, scaled dark removed; each / median)",
        used["path"],
        {**clip.describe(), "min_level": min_level, "max_level": max_level},
    )
    return _master(result, u.dimensionless_unscaled, header), frames


def failed_flats_table(paths: Sequence[str | Path], reason: str) -> Table:
    """The table of a filter's flats when its master flat failed before judging them.

    Every flat is listed as unused with the reason ``master flat failed: <reason>``.
    """
    n = len(paths)
    nan = [float("nan")] * n
    return Table(
        [
            [str(p) for p in paths],
            nan,
            nan,
            nan,
            [False] * n,
            [f"master flat failed: {reason}"] * n,
        ],
        names=FLAT_FRAME_COLUMNS,
        dtype=(str, float, float, float, bool, str),
    )
