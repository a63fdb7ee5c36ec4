"""Master flats: each flat judged by its level, bias and scaled dark removed, combined.

Flats that are saturated, too bright (non-linear) or too faint are rejected with the reason;
each used flat is normalised by its median and the master to median 1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.table import Table

from aifa_steps.calibration.masters import (
    ClipParameters,
    _describe_readout,
    _exptime,
    _includes_bias,
    _master,
    dark_for_exposure,
)
from aifa_steps.calibration.settings import FlatLevels
from aifa_steps.core.provenance import add_provenance
from aifa_steps.inventory.rawio import read_raw_header
from aifa_steps.inventory.readout import ReadoutSettings
from aifa_steps.inventory.rowbands import open_image_rows

__all__ = [
    "FlatLevels",
    "NoUsableFlat",
    "FLAT_FRAME_COLUMNS",
    "make_master_flat",
    "failed_flats_table",
]

#: Columns of the table of a filter's flats (``qc/flat_frames_<filter>.ecsv``).
FLAT_FRAME_COLUMNS = ("path", "exptime", "level", "saturated_fraction", "used", "reason")

log = logging.getLogger(__name__)

_DEFAULT_CLIP = ClipParameters()


class NoUsableFlat(ValueError):
    """Every flat of a filter was rejected; ``frames`` lists them with their reasons."""

    def __init__(self, message: str, frames: Table):
        super().__init__(message)
        self.frames = frames


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
    clip: ClipParameters = _DEFAULT_CLIP,
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
    readout, threads
        Overscan and trim settings and threads, as for
        `aifa_steps.calibration.masters.make_master_bias`.

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

    result = clip.combine(list(used["path"]), correct, readout, threads)
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
