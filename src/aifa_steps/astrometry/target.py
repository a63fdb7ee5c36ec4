"""One target's chain (rule ``astrometry_chain``): every frame gets a starting WCS.

Reads the ``solve_field`` outputs of the target's frames, hands solutions on to the frames
without one (`aifa_steps.astrometry.chain.propagate_wcs`; ``solve-field`` runs again through
``solve_field.sh`` on skipped frames when none of the target's was solved), and measures the
stars of one solved frame for nights without a reference catalogue
(`aifa_steps.astrometry.reference.target_stars`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from aifa_steps.astrometry.chain import chain_table, propagate_wcs
from aifa_steps.astrometry.reference import target_stars
from aifa_steps.astrometry.settings import ChainSettings
from aifa_steps.astrometry.solve import read_corr, read_solution, read_sources, solve_source_list
from aifa_steps.core.failures import fits_failure
from aifa_steps.core.frames import read_ccd
from aifa_steps.inventory.headers import celestial_wcs
from aifa_steps.inventory.rawio import read_raw_header

__all__ = ["TargetFiles", "chain_target", "header_solutions"]

log = logging.getLogger(__name__)


@dataclass
class TargetFiles:
    """The files of one target's frames, by stem.

    Attributes
    ----------
    frames, wcs, corr, xyls : dict
        Calibrated frames and the ``solve_field`` outputs (``astrometry/solve/<stem>.*``).
    solver, verifier : path
        astrometry.net configurations of pass 1 and pass 2.
    script : path
        ``workflow/scripts/solve_field.sh``.
    """

    frames: dict[str, Path]
    wcs: dict[str, Path]
    corr: dict[str, Path]
    xyls: dict[str, Path]
    solver: Path
    verifier: Path
    script: Path

    @classmethod
    def from_lists(
        cls,
        stems: Sequence[str],
        lists: Mapping[str, Sequence[str | Path]],
        solver: str | Path,
        verifier: str | Path,
        script: str | Path,
    ) -> TargetFiles:
        """From lists in the order of ``stems`` (as the rule's inputs are)."""
        by_stem = {
            kind: {s: Path(p) for s, p in zip(stems, lists[kind], strict=True)}
            for kind in ("frames", "wcs", "corr", "xyls")
        }
        return cls(**by_stem, solver=Path(solver), verifier=Path(verifier), script=Path(script))


def header_solutions(frames: Sequence[Mapping], calibrated: Mapping[str, Path]) -> dict[str, WCS]:
    """The celestial WCS of each frame's raw header, moved to the trimmed frame.

    Parameters
    ----------
    frames : sequence of mapping
        ``stem`` and ``path`` (the raw file) of each frame.
    calibrated : mapping
        Calibrated frame of each usable stem (its ``TRIMMED`` card).
    """
    found = {}
    for f in frames:
        if f["stem"] in calibrated:
            trim = str(fits.getheader(calibrated[f["stem"]]).get("TRIMMED", ""))
            found[f["stem"]] = celestial_wcs(read_raw_header(f["path"])[0], trim)
    return found


def chain_target(
    frames: Sequence[Mapping],
    files: TargetFiles,
    pixel_scale: float,
    settings: ChainSettings | None = None,
) -> tuple[Table, Table]:
    """Starting WCS of every frame of one target, and the stars of one solved frame.

    Parameters
    ----------
    frames : sequence of mapping
        One per frame: ``stem``, ``path`` (raw file), ``mjd``, ``hint`` (``solve-field``'s
        position hint) and ``solve`` (``yes`` when ``solve-field`` ran on it).
    files : TargetFiles
        The frames' files.
    pixel_scale : float
        Configured pixel scale (arcsec).
    settings : ChainSettings, optional
        The step's settings (the defaults without).

    Returns
    -------
    chain : astropy.table.Table
        ``astrometry/chain/<target>/frames.ecsv`` (`aifa_steps.astrometry.chain.chain_table`).
    stars : astropy.table.Table
        ``astrometry/chain/<target>/stars.ecsv``.
    """
    settings = settings or ChainSettings()
    stems = [f["stem"] for f in frames]
    usable = [s for s in stems if fits_failure(files.frames[s]) is None]
    wanted = {f["stem"]: f["solve"] == "yes" for f in frames}
    hints = {f["stem"]: f["hint"] for f in frames}
    sources = {s: read_sources(files.xyls[s]) for s in usable}
    solutions = {s: read_solution(files.wcs[s]) for s in usable if wanted[s]}
    corrs = {s: read_corr(files.corr[s]) for s, w in solutions.items() if w is not None}
    corrs = {s: c for s, c in corrs.items() if c is not None}
    shape = (0, 0)
    if usable:
        header = fits.getheader(files.frames[usable[0]])
        shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))

    def solve(stem: str) -> WCS | None:
        wcs, corr = solve_source_list(
            files.script,
            files.frames[stem],
            files.xyls[stem],
            files.solver,
            files.verifier,
            pixel_scale,
            shape,
            hints[stem],
            settings.solve,
        )
        if corr is not None:
            corrs[stem] = corr
        return wcs

    def read_frame(stem: str) -> tuple[np.ndarray, np.ndarray | None]:
        ccd = read_ccd(files.frames[stem])
        return ccd.data, ccd.mask

    headers = {}
    if settings.header_wcs:
        headers = header_solutions(frames, {s: files.frames[s] for s in usable})
    results = propagate_wcs(
        usable,
        [f["mjd"] for f in frames if f["stem"] in usable],
        sources,
        solutions,
        shape,
        pixel_scale,
        settings.scale_tolerance,
        settings.sip_order,
        solve=solve,
        max_solves=settings.max_extra_solves,
        header_solutions=headers,
    )
    for r in results:
        log.info("%s: %s %s %s", r.stem, r.method, r.reference, r.reason)
    stars = target_stars(results, corrs, sources, read_frame, settings.sip_order)
    return chain_table(results, shape), stars
