"""The files of a stack: which frames go in, the grid it is on, the FITS file it becomes.

`make_stack` is the ``stack`` rule's step: the frames of one target and filter (chosen by
`select_stack_frames`) with their exposure times and zero points (`stack_inputs`) stacked on
their reference frame's grid (`grid_of`) by `aifa_steps.products.stacking.stack_frames`, and
written with `write_stack`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from aifa_steps.core.atomic import write_hdul
from aifa_steps.core.formats import frame_stem
from aifa_steps.core.provenance import add_provenance
from aifa_steps.products.stacking import (
    BackgroundSettings,
    Stack,
    StackFrame,
    StackParameters,
    stack_frames,
)

__all__ = [
    "grid_of",
    "make_stack",
    "select_stack_frames",
    "stack_inputs",
    "write_stack",
]

#: A stack input: a solved frame's file, or a calibrated frame and its solution.
StackSource = str | Path | tuple[str | Path, str | Path]


def select_stack_frames(frames: Table, filter_name: str, max_frames: int) -> Table:
    """The frames of one filter to stack: the ``max_frames`` with the best seeing.

    Parameters
    ----------
    frames : astropy.table.Table
        Solved frames of one target with ``stem``, ``filter`` and ``fwhm_arcsec`` (seeing
        measured by the astrometry; NaN or missing counts as worst).
    filter_name : str
        The filter.
    max_frames : int
        At most this many frames.

    Returns
    -------
    astropy.table.Table
        The chosen rows, in the order of their stems (time order for NINA's names).
    """
    rows = frames[np.asarray(frames["filter"]).astype(str) == filter_name]
    if "fwhm_arcsec" in rows.colnames:
        seeing = np.asarray(rows["fwhm_arcsec"], float)
    else:
        seeing = np.full(len(rows), np.nan)
    order = np.argsort(np.where(np.isfinite(seeing), seeing, np.inf), kind="stable")
    chosen = rows[order[: max(1, int(max_frames))]]
    chosen.sort("stem")
    return chosen


def stack_inputs(
    paths: Sequence[StackSource],
    frames: Table,
    zeropoints: Table | None,
    aperture: str | float,
) -> list[StackFrame]:
    """Frames to stack with their exposure times and zero points, read lazily from files.

    Parameters
    ----------
    paths : sequence of path or of (path, path)
        Calibrated, solved frames, or calibrated frames with their solutions
        (``astrometry/<stem>.fits``); the file name without ``.fits`` is the stem.
    frames : astropy.table.Table
        ``stem`` and ``exptime`` of (at least) these frames.
    zeropoints : astropy.table.Table or None
        The night's zero points (``stem``, ``aperture_arcsec``, ``zeropoint``); frames without
        one get NaN.
    aperture : str or float
        Aperture whose (total-flux) zero points to use: its column suffix (``4``,
        ``1fwhm``) or radius in arcsec (see `aifa_steps.photometry.zeropoints.aperture_rows`).
    """
    from aifa_steps.photometry.zeropoints import aperture_rows

    exptime = {str(r["stem"]): float(r["exptime"]) for r in frames}
    zp = {}
    if zeropoints is not None and len(zeropoints):
        rows = zeropoints[aperture_rows(zeropoints, aperture)]
        zp = {str(r["stem"]): float(r["zeropoint"]) for r in rows}
    out = []
    for path in paths:
        stem = frame_stem(_pixel_file(path))
        if stem not in exptime:
            raise ValueError(f"{path}: not in the frame table (no exposure time)")
        source = path if isinstance(path, str | Path) else (path[0], path[1])
        out.append(StackFrame(stem, source, exptime[stem], zp.get(stem, np.nan)))
    return out


def _pixel_file(path: StackSource) -> str | Path:
    """The calibrated frame of a stack input (a path, or a (frame, solution) pair)."""
    return path if isinstance(path, str | Path) else path[0]


def grid_of(path: str | Path) -> tuple[WCS, tuple[int, int]]:
    """The WCS and shape of a solved frame, the grid of its target's stacks.

    ``path`` is a solution (header-only, ``IMAGEW``/``IMAGEH``) or a frame with a WCS.
    """
    from aifa_steps.core.frames import solution_wcs

    header = fits.getheader(path)
    wcs = solution_wcs(header)
    if not wcs.has_celestial:
        raise ValueError(f"{path}: no celestial WCS in the header")
    if "IMAGEW" in header and "IMAGEH" in header:
        return wcs.celestial, (int(header["IMAGEH"]), int(header["IMAGEW"]))
    return wcs.celestial, (int(header["NAXIS2"]), int(header["NAXIS1"]))


def write_stack(
    stack: Stack,
    path: str | Path,
    meta: Mapping[str, object] | None = None,
    inputs: Sequence[str | Path] = (),
    parameters: StackParameters | None = None,
    background: BackgroundSettings | None = None,
) -> None:
    """Write a stack as FITS: the image with its WCS, then ``EXPOSURE`` and ``NCOMBINE`` maps.

    Parameters
    ----------
    stack : Stack
        The stack.
    path : path
        Output file.
    meta : mapping, optional
        Extra header cards (e.g. ``OBJECT``, ``FILTER``).
    inputs : sequence of path
        Frames read (recorded in the HISTORY, with each frame's scale).
    parameters : StackParameters, optional
        Parameters recorded in the HISTORY.
    background : BackgroundSettings, optional
        The background mesh, recorded with the parameters.
    """
    wcs_header = stack.wcs.to_header(relax=True)
    header = wcs_header.copy()
    for key, value in (meta or {}).items():
        header[key] = value
    header["BUNIT"] = ("adu/s", "ADU per second on the stack's photometric scale")
    header["NCOMBINE"] = (len(stack.stems), "frames stacked")
    header["EXPTIME"] = (float(np.nanmax(stack.exposure)), "[s] largest exposure of a pixel")
    if np.isfinite(stack.zeropoint):
        header["MAGZPT"] = (round(stack.zeropoint, 5), "mag of total flux of 1 ADU/s")
    settings = {"scales": "zero points" if np.isfinite(stack.zeropoint) else "exposure time"}
    if parameters is not None:
        settings.update(
            sigma=parameters.sigma,
            amplitude_fraction=parameters.amplitude_fraction,
            max_iterations=parameters.max_iterations,
            interpolation=parameters.interpolation,
            background_box=(background or BackgroundSettings()).background_box,
        )
    add_provenance(header, "stack (background-subtracted, reprojected)", inputs, settings)
    for stem, scale in zip(stack.stems, stack.scales, strict=True):
        header.add_history(f"  scale {scale:.6g} {stem}")
    exposure = fits.ImageHDU(stack.exposure, wcs_header.copy(), name="EXPOSURE")
    exposure.header["BUNIT"] = "s"
    count = fits.ImageHDU(stack.count, wcs_header.copy(), name="NCOMBINE")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_hdul(fits.HDUList([fits.PrimaryHDU(stack.image, header), exposure, count]), path)


def make_stack(
    paths: Sequence[StackSource],
    frames: Table | Sequence[Sequence],
    zeropoints: Table | None,
    aperture: str | float,
    grid: str | Path,
    output: str | Path,
    meta: Mapping[str, object],
    params: StackParameters | None = None,
    background: BackgroundSettings | None = None,
) -> tuple[Stack, str]:
    """Stack frames of one target and filter on a reference frame's grid and write the stack.

    Parameters
    ----------
    paths : sequence of path or of (path, path)
        Calibrated, solved frames, or calibrated frames with their solutions.
    frames : astropy.table.Table or sequence of rows
        ``stem`` and ``exptime`` of (at least) these frames (rows as ``(stem, exptime)``).
    zeropoints : astropy.table.Table or None
        The night's zero points (see `stack_inputs`).
    aperture : str or float
        Aperture whose zero points scale the frames.
    grid : path
        The solution (or solved frame) whose WCS and shape the stack takes (its stem is
        ``GRIDFRAM``).
    output : path
        The stack file.
    meta : mapping
        Extra header cards (``OBJECT``, ``FILTER``).
    params : StackParameters, optional
        Clipping parameters.
    background : BackgroundSettings, optional
        The background mesh.

    Returns
    -------
    stack : Stack
        The stack.
    message : str
        One line for the log: frames used, zero point, longest exposure.
    """
    if not isinstance(frames, Table):
        frames = Table(rows=list(frames), names=("stem", "exptime"))
    inputs = stack_inputs(paths, frames, zeropoints, aperture)
    wcs, shape = grid_of(grid)
    Path(output).parent.mkdir(parents=True, exist_ok=True)  # also the scratch file's folder
    stack = stack_frames(inputs, wcs, shape, params, background, Path(output).parent)
    cards = {**meta, "GRIDFRAM": frame_stem(grid)[:68]}  # the frame whose grid it is on
    write_stack(stack, output, cards, [_pixel_file(p) for p in paths], params, background)
    name = " ".join(str(meta[k]) for k in ("OBJECT", "FILTER") if k in meta)
    message = (
        f"{name}: {len(stack.stems)} of {len(inputs)} frames, MAGZPT {stack.zeropoint:.3f}, "
        f"exposure up to {float(stack.exposure.max()):.0f} s"
    )
    return stack, message
