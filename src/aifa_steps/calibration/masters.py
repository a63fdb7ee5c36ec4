"""Master calibration frames: bias, dark and flat, combined block by block.

All masters are `~astropy.nddata.CCDData` (float32 data, standard-error uncertainty, and the
number of combined values per pixel in the header statistics). Darks are bias-subtracted and
refer to their own exposure time (``EXPTIME``); flats are bias- and dark-subtracted, each frame
normalised by its median, and the master normalised to median 1
(`aifa_steps.calibration.flats`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from aifa_steps.calibration.settings import ClipParameters, exptime_label
from aifa_steps.core.provenance import add_provenance
from aifa_steps.inventory.headers import header_float, keywords_for
from aifa_steps.inventory.rawio import read_raw_header
from aifa_steps.inventory.rowbands import open_image_rows
from aifa_steps.inventory.settings import ReadoutSettings

__all__ = [
    "ClipParameters",
    "make_master_bias",
    "make_master_dark",
    "dark_for_exposure",
    "exptime_label",
]


log = logging.getLogger(__name__)


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
    result = clip.combine(paths, None, readout, threads)
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

    result = clip.combine(paths, subtract_bias if bias is not None else None, readout, threads)
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
