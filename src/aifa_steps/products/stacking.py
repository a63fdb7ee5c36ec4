"""Stacks: calibrated frames on one WCS grid, averaged with sigma clipping.

Each solved frame is background-subtracted (the photometry's `estimate_background`), its bad
pixels (hot, low and high response, cosmic rays) set to NaN, scaled to one photometric scale,
and reprojected onto the WCS of one reference frame
(`aifa_steps.products.resample.reproject_frame`). The
frames are then averaged pixel by pixel after a 3-sigma clip around the median (sigma from
each frame's sky noise and a fraction of the signal, see `clipped_keep`), a band of rows at a
time. Saturated pixels are kept: the cores of saturated stars
stay flat-topped instead of becoming holes.

Photometric scale: with the zero points of the frames (``mag = zp - 2.5 log10(flux)`` for the
total flux of one exposure in ADU), frame ``k`` is multiplied by
``10**(0.4 (Z - zp_k)) / t_k`` where ``zp_k - 2.5 log10 t_k`` is its zero point for one second
and ``Z`` the median of these over the stacked frames. The stack is then in ADU/s at the median
transparency and airmass, and ``MAGZPT = Z`` turns a total flux in it into a magnitude. Without
zero points the frames are only divided by their exposure times.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.nddata import CCDData
from astropy.wcs import WCS

from aifa_steps.calibration.combine import nanmedian_of_frames
from aifa_steps.core.formats import COSMIC_RAY, HIGH_RESPONSE, HOT, LOW_RESPONSE, NO_DATA
from aifa_steps.photometry.background import estimate_background
from aifa_steps.products.frame_cube import FrameCube
from aifa_steps.products.resample import reproject_frame
from aifa_steps.products.settings import BackgroundSettings, StackParameters

__all__ = [
    "STACK_MASK_BITS",
    "Stack",
    "StackFrame",
    "StackParameters",
    "BackgroundSettings",
    "background_subtracted",
    "clipped_keep",
    "photometric_scales",
    "stack_frames",
]

log = logging.getLogger(__name__)

# Flag bits whose pixels are left out of a stack (saturated pixels stay in).
STACK_MASK_BITS = HOT | LOW_RESPONSE | HIGH_RESPONSE | COSMIC_RAY | NO_DATA


@dataclass
class StackFrame:
    """One frame to stack.

    Attributes
    ----------
    stem : str
        Frame name (for the log and the provenance).
    ccd : astropy.nddata.CCDData, path or (path, path)
        The calibrated frame with its WCS and bit flags, its file, or its calibrated file and
        its solution (`aifa_steps.core.frames.read_solved`); files are read when the frame is
        stacked, so only one frame at a time is in memory.
    exptime : float
        Exposure time in seconds.
    zeropoint : float
        Magnitude zero point of the frame's total flux in one exposure (NaN: unknown).
    """

    stem: str
    ccd: CCDData | str | Path | tuple[str | Path, str | Path]
    exptime: float
    zeropoint: float = np.nan

    def load(self) -> CCDData:
        """The frame (read from its file when given as a path)."""
        if isinstance(self.ccd, CCDData):
            return self.ccd
        from aifa_steps.core.frames import read_ccd, read_solved

        if isinstance(self.ccd, tuple | list):
            return read_solved(*self.ccd)
        return read_ccd(self.ccd)


@dataclass
class Stack:
    """A stacked image on the reference grid.

    Attributes
    ----------
    image : numpy.ndarray
        Sigma-clipped mean, float32, ADU/s on the stack's photometric scale; NaN where no
        frame contributes.
    exposure : numpy.ndarray
        Exposure map: seconds of exposure kept per pixel (float32).
    count : numpy.ndarray
        Frames kept per pixel (int16).
    wcs : astropy.wcs.WCS
        The reference grid.
    stems : list of str
        Frames stacked, in input order.
    scales : list of float
        Factor that brought each frame to the stack's scale.
    zeropoint : float
        ``MAGZPT``: magnitude of a total flux of 1 ADU/s in the stack (NaN without zero points).
    """

    image: np.ndarray
    exposure: np.ndarray
    count: np.ndarray
    wcs: WCS
    stems: list[str]
    scales: list[float]
    zeropoint: float


def photometric_scales(
    exptimes: Sequence[float], zeropoints: Sequence[float]
) -> tuple[np.ndarray, float]:
    """Factors that bring frames to one photometric scale, and the zero point of that scale.

    Parameters
    ----------
    exptimes : sequence of float
        Exposure times in seconds.
    zeropoints : sequence of float
        Zero points of one exposure's total flux in ADU (NaN: unknown).

    Returns
    -------
    scales : numpy.ndarray
        Multiply frame ``k`` by ``scales[k]`` to get ADU/s on the common scale. When some
        frames have zero points, those without one get NaN (leave them out: a frame without
        a zero point is usually clouded).
    zeropoint : float
        Magnitude of 1 ADU/s on the common scale; NaN when no frame has a zero point (the
        scales are then ``1 / exptime``).
    """
    t = np.asarray(exptimes, float)
    zp = np.asarray(zeropoints, float)
    if np.any(t <= 0):
        raise ValueError("exposure times must be positive")
    per_second = zp - 2.5 * np.log10(t)
    known = np.isfinite(per_second)
    if not known.any():
        return 1.0 / t, float("nan")
    common = float(np.median(per_second[known]))
    scales = np.where(known, 10.0 ** (0.4 * (common - per_second)) / t, np.nan)
    return scales, common


def background_subtracted(
    ccd: CCDData, background: BackgroundSettings | None = None
) -> tuple[np.ndarray, float]:
    """A frame minus its background, and its sky noise.

    Parameters
    ----------
    ccd : astropy.nddata.CCDData
        A calibrated frame with its bit flags.
    background : BackgroundSettings, optional
        The background mesh.

    Returns
    -------
    data : numpy.ndarray
        float32, NaN on pixels flagged with one of `STACK_MASK_BITS`.
    noise : float
        Median background RMS.
    """
    background = background or BackgroundSettings()
    data = np.asarray(ccd.data, np.float32)
    flags = ccd.flags if isinstance(ccd.flags, np.ndarray) else None
    bad = np.zeros(data.shape, bool) if flags is None else flags > 0
    if ccd.mask is not None:
        bad |= np.asarray(ccd.mask, bool)
    level, rms = estimate_background(
        data, bad, background.background_box, background.background_filter
    )
    out = data - level
    if flags is not None:
        out[(flags & STACK_MASK_BITS) > 0] = np.nan
    return out, float(np.median(rms))


def clipped_keep(
    values: np.ndarray,
    noise: np.ndarray,
    sigma: float = 3.0,
    amplitude_fraction: float = 0.3,
    maxiters: int = 3,
) -> np.ndarray:
    """Which values to keep: within ``sigma`` of the median, in units of the expected scatter.

    The expected scatter of frame ``k`` at a pixel is ``sqrt(noise_k**2 + (f * median)**2)``:
    its sky noise plus a fraction ``f`` of the signal, which covers seeing and tracking
    differences between frames in star images (SWarp's CLIPPED combination, Gruen et al.
    2014). Known noise instead of the scatter of the values themselves keeps clipping sane
    with a handful of frames, where a MAD of four values is itself very noisy.

    Parameters
    ----------
    values : numpy.ndarray
        ``(n_frames, ...)``; NaN marks pixels a frame does not cover.
    noise : numpy.ndarray
        ``(n_frames,)`` sky noise of each frame on the stack's scale.
    sigma : float
        Rejection threshold.
    amplitude_fraction : float
        Fraction of the signal allowed as scatter between frames.
    maxiters : int
        Iterations (the median is recomputed from the kept values).

    Returns
    -------
    numpy.ndarray
        Boolean mask of the kept values, the shape of ``values``.
    """
    valid = np.isfinite(values)
    keep = valid
    variance = (np.asarray(noise, np.float32) ** 2).reshape((-1,) + (1,) * (values.ndim - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels off the frames
        centre = nanmedian_of_frames(values)
        for _ in range(max(1, maxiters)):
            limit = sigma * np.sqrt(variance + (amplitude_fraction * centre) ** 2)
            new = valid & (np.abs(values - centre) <= limit)
            if np.array_equal(new, keep):
                break
            keep = new
            centre = nanmedian_of_frames(np.where(keep, values, np.nan))
    return keep


def stack_frames(
    frames: Sequence[StackFrame],
    wcs: WCS,
    shape: tuple[int, int],
    params: StackParameters | None = None,
    background: BackgroundSettings | None = None,
    scratch_dir: str | Path | None = None,
) -> Stack:
    """Background-subtract, scale, reproject and average frames with sigma clipping.

    Parameters
    ----------
    frames : sequence of StackFrame
        Frames of one target and filter, each with its own WCS.
    wcs : astropy.wcs.WCS
        The output grid (the WCS of the reference frame).
    shape : tuple of int
        ``(rows, columns)`` of the output.
    params : StackParameters, optional
        Clipping parameters.
    background : BackgroundSettings, optional
        The background mesh.
    scratch_dir : path, optional
        Folder of the scratch file when the frames exceed ``params.frames_in_memory_mb``.

    Returns
    -------
    Stack
        The stack with its exposure map.

    Raises
    ------
    ValueError
        If no frame is given or none can be scaled.
    """
    params = params or StackParameters()
    if not frames:
        raise ValueError("no frames to stack")
    scales, zeropoint = photometric_scales(
        [f.exptime for f in frames], [f.zeropoint for f in frames]
    )
    usable = [k for k in range(len(frames)) if np.isfinite(scales[k])]
    for k in set(range(len(frames))) - set(usable):
        log.warning("%s: no zero point, left out of the stack", frames[k].stem)
    if not usable:
        raise ValueError("no frame can be scaled")
    ny, nx = shape
    in_memory = 4 * len(usable) * ny * nx <= params.frames_in_memory_mb * 2**20
    cube = FrameCube(len(usable), shape, in_memory, scratch_dir)
    try:
        return _stack_cube(frames, usable, scales, zeropoint, cube, wcs, params, background)
    finally:
        cube.close()


def _stack_cube(
    frames: Sequence[StackFrame],
    usable: list[int],
    scales: np.ndarray,
    zeropoint: float,
    cube: FrameCube,
    wcs: WCS,
    params: StackParameters,
    background: BackgroundSettings | None,
) -> Stack:
    shape = cube.shape
    ny, nx = shape
    noise = np.empty(len(usable), np.float32)
    for slot, k in enumerate(usable):
        frame = frames[k]
        ccd = frame.load()
        if ccd.wcs is None:
            raise ValueError(f"{frame.stem}: no WCS, cannot reproject")
        data, sky_noise = background_subtracted(ccd, background)
        data *= np.float32(scales[k])
        noise[slot] = sky_noise * scales[k]
        cube.put(slot, reproject_frame(data, ccd.wcs, wcs, shape, params.interpolation))
        del ccd, data
        log.info("%s: scale %.4g, reprojected", frame.stem, scales[k])

    exptimes = np.array([frames[k].exptime for k in usable], np.float32)
    image = np.full(shape, np.nan, np.float32)
    exposure = np.zeros(shape, np.float32)
    count = np.zeros(shape, np.int16)
    # The clipping holds about six float32 copies of a band.
    rows = max(1, int(params.memory_limit_mb * 2**20 / (6 * 4 * len(usable) * nx)))
    for start in range(0, ny, rows):
        band = slice(start, min(start + rows, ny))
        values = cube.band(band)
        keep = clipped_keep(
            values, noise, params.sigma, params.amplitude_fraction, params.max_iterations
        )
        n = keep.sum(axis=0)
        total = np.where(keep, values, 0.0).sum(axis=0, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            image[band] = np.where(n > 0, total / n, np.nan)
        exposure[band] = np.tensordot(exptimes, keep, axes=1)
        count[band] = n
    return Stack(
        image=image,
        exposure=exposure,
        count=count,
        wcs=wcs,
        stems=[frames[k].stem for k in usable],
        scales=[float(scales[k]) for k in usable],
        zeropoint=zeropoint,
    )
