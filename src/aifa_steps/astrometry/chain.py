"""Astrometry for every frame with stars: solved frames hand their WCS on to their neighbours.

``solve-field`` fails on part of some nights (sparse index files, a pointing that drifts out of
the indexed area) and costs seconds per frame. Frames of one target show the same stars, so a
frame without a ``solve-field`` solution gets its WCS from a solved frame close in time:

1. its own source list (Source Extractor's, written by the ``solve_field`` rule for every
   frame) is matched to the solved frame's by asterisms (`aifa_steps.astrometry.match`);
2. with that transformation all sources of both lists are cross-identified, and a TAN(-SIP)
   WCS is fitted to the frame's pixel positions against the solved frame's sources on the sky
   (through the solved frame's WCS);
3. the frame is now solved and serves its own neighbours, so a pointing that drifts through
   the night is followed from frame to frame (`propagate_wcs`).

The per-frame refinement (`aifa_steps.astrometry.refine.refine_wcs`) then measures every frame
against the reference catalogue or, on a night without one, against the windowed centroids of
one solved frame's sources (`aifa_steps.astrometry.reference`), so all frames of a target share
one astrometric reference either way. The chain table (`chain_table`) hands the starting WCS to
the per-frame jobs (`chain_start`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from aifa_steps.astrometry.match import MatchError, SourceMatch, wcs_from_sources

__all__ = [
    "ChainResult",
    "solve_field_selection",
    "propagate_wcs",
    "wcs_to_string",
    "wcs_from_string",
    "chain_table",
    "chain_start",
    "chain_failure",
]

log = logging.getLogger(__name__)


@dataclass
class ChainResult:
    """How one frame got its starting WCS (a row of ``astrometry/chain/<target>/frames.ecsv``).

    Attributes
    ----------
    stem : str
        The frame.
    method : str
        ``solve-field``, ``header`` (the raw header's WCS, when solve-field solved none of
        the target's frames), ``matched`` (to the frame ``reference``) or ``none``.
    reference : str
        The solved frame whose sources this frame was matched to ('' otherwise).
    n_matched : int
        Sources matched (``solve-field``: stars in its ``.corr`` file).
    rms_px : float
        RMS residual (pixels) of the WCS fit to the matched sources.
    reason : str
        Why the frame has no WCS ('' when it has one).
    wcs : astropy.wcs.WCS or None
        The starting WCS.
    """

    stem: str
    method: str
    reference: str = ""
    n_matched: int = 0
    rms_px: float = float("nan")
    reason: str = ""
    wcs: WCS | None = field(default=None, repr=False)


def solve_field_selection(
    stems: Sequence[str], targets: Sequence[str], mjds: Sequence[float], mode: str | int
) -> set[str]:
    """The frames that ``solve-field`` runs on (``astrometry.solve_field``).

    Parameters
    ----------
    stems, targets, mjds : sequence
        The light frames: name, file-safe target, time (MJD).
    mode : str or int
        ``"all"``: every frame; ``"first"``: the first frame of each target in time; an integer
        N: every N-th frame of each target in time, the first included (1 is ``"all"``).

    Returns
    -------
    set of str
        Stems to solve; the others get their WCS from a solved neighbour.

    Raises
    ------
    ValueError
        For any other mode.
    """
    if mode == "all":
        return set(map(str, stems))
    if mode == "first":
        every = None
    elif isinstance(mode, int | np.integer) and not isinstance(mode, bool) and mode >= 1:
        every = int(mode)
    else:
        raise ValueError(f"astrometry.solve_field must be 'all', 'first' or N >= 1, not {mode!r}")
    chosen: set[str] = set()
    by_target: dict[str, list[tuple[float, str]]] = {}
    for stem, target, mjd in zip(stems, targets, mjds, strict=True):
        time = float(mjd) if np.isfinite(float(mjd)) else np.inf
        by_target.setdefault(str(target), []).append((time, str(stem)))
    for frames in by_target.values():
        frames.sort()
        picked = frames[:1] if every is None else frames[::every]
        chosen.update(stem for _, stem in picked)
    return chosen


def _pixel_scale(wcs: WCS) -> float:
    return float(np.mean(proj_plane_pixel_scales(wcs)) * 3600.0)


def propagate_wcs(
    stems: Sequence[str],
    mjds: Sequence[float],
    sources: dict[str, Table],
    solutions: dict[str, WCS | None],
    shape: tuple[int, int],
    pixel_scale: float,
    scale_tolerance: float = 0.02,
    sip_degree: int = 3,
    min_matches: int = 6,
    tries: int = 3,
    solve: Callable[[str], WCS | None] | None = None,
    max_solves: int = 3,
    header_solutions: dict[str, WCS] | None = None,
) -> list[ChainResult]:
    """Give every frame of one target a starting WCS: its own solution, or its neighbours'.

    Frames are taken in the order of their time distance to the nearest solved frame; each is
    matched to the nearest ``solve-field`` frame first (so errors of successive hand-overs do
    not add up), then to the solved frames nearest in time (up to ``tries`` in all) until one
    shares half the sources of the shorter list (else the match with the most pairs counts),
    and once solved serves the others: a pointing that drifts out of the solved frame's
    field is followed from frame to frame. A frame that cannot be matched (clouds, no stars)
    is skipped: the frames beyond it match across it. Frames with less than half the typical
    number of sources (clouds) are the last choice as references.

    Parameters
    ----------
    stems, mjds : sequence
        The target's light frames and their times.
    sources : dict
        Source list of each frame (`aifa_steps.astrometry.solve.read_sources`).
    solutions : dict
        ``solve-field``'s WCS of each frame it ran on (None: no solution); frames that it
        skipped are not keys.
    shape : tuple of int
        ``(ny, nx)`` of the frames.
    pixel_scale : float
        Configured pixel scale (arcsec); a ``solve-field`` solution off by more than
        ``scale_tolerance`` does not serve as a reference.
    scale_tolerance : float
        Accepted relative deviation of the pixel scale.
    sip_degree : int
        Highest SIP order of the fits.
    min_matches : int
        Fewest matched sources accepted.
    tries : int
        Solved frames tried per frame, nearest in time first.
    solve : callable, optional
        Runs ``solve-field`` on a frame it skipped and returns its WCS or None: used,
        for the frames with the most sources first (at most ``max_solves``), when none of the
        target's frames has a solution.
    max_solves : int
        Most frames handed to ``solve``.
    header_solutions : dict, optional
        WCS that raw headers carry (`aifa_steps.inventory.headers.celestial_wcs`), by frame. When
        ``solve-field`` solved no frame of the target, the one with the most sources among
        them becomes the reference (method ``header``), checked against the pixel scale.

    Returns
    -------
    list of ChainResult
        One per frame, in the order of ``stems``.
    """
    stems = [str(s) for s in stems]
    times = {s: float(t) for s, t in zip(stems, mjds, strict=True)}
    results: dict[str, ChainResult] = {}
    solved: dict[str, WCS] = {}

    def accept_solution(stem: str, wcs: WCS | None, method: str = "solve-field") -> bool:
        if wcs is None:
            return False
        scale = _pixel_scale(wcs)
        if abs(scale / pixel_scale - 1.0) > scale_tolerance:
            source = "solve-field's" if method == "solve-field" else "the header WCS's"
            results[stem] = ChainResult(
                stem,
                "none",
                reason=f"{source} pixel scale {scale:.4f} arcsec differs from the "
                f"configured {pixel_scale}",
            )
            return False
        solved[stem] = wcs
        results[stem] = ChainResult(stem, method, n_matched=-1, wcs=wcs)
        return True

    for stem in stems:
        accept_solution(stem, solutions.get(stem))
    if not solved and solve is not None:
        untried = [s for s in stems if s not in solutions]
        untried.sort(key=lambda s: -len(sources.get(s, ())))
        for stem in untried[:max_solves]:
            log.info("no solved frame of this target yet: solve-field on %s", stem)
            if accept_solution(stem, solve(stem)):
                break
    if not solved and header_solutions:
        candidates = [s for s in stems if header_solutions.get(s) is not None]
        candidates.sort(key=lambda s: -len(sources.get(s, ())))
        for stem in candidates:
            results.pop(stem, None)
            if accept_solution(stem, header_solutions[stem], "header"):
                log.info("no frame solved by solve-field: %s's header WCS is the reference", stem)
                break
    pending = [s for s in stems if s not in results]
    if not solved:
        for stem in pending:
            results[stem] = ChainResult(
                stem, "none", reason="no frame of this target was solved by solve-field"
            )
        return [results[s] for s in stems]

    # Time to the nearest solved frame, kept up to date as frames are solved.
    gap = {p: min(abs(times[p] - times[s]) for s in solved) for p in pending}

    # Frames with less than half the typical number of sources (clouds) serve others only
    # when no better frame is solved.
    typical = float(np.median([len(sources.get(s, ())) for s in stems]))

    def weak(stem: str) -> bool:
        return len(sources.get(stem, ())) < 0.5 * typical

    while pending:
        stem = min(pending, key=gap.__getitem__)
        pending.remove(stem)
        xy = np.column_stack([sources[stem]["x"], sources[stem]["y"]]) if stem in sources else []
        # The nearest solve-field frame first (no hand-over errors add up), then the solved
        # frames nearest in time (they follow a pointing that drifts out of its field).
        nearest = sorted(solved, key=lambda s: (weak(s), abs(times[stem] - times[s])))
        anchors = [s for s in nearest if results[s].method == "solve-field"]
        neighbours = list(dict.fromkeys(anchors[:1] + nearest))[:tries]
        reasons: list[str] = []
        best: tuple[str, WCS, SourceMatch] | None = None
        for ref in neighbours:
            ref_xy = np.column_stack([sources[ref]["x"], sources[ref]["y"]])
            try:
                wcs, match = wcs_from_sources(
                    np.asarray(xy), ref_xy, solved[ref], shape, sip_degree, min_matches
                )
            except MatchError as exc:
                reasons.append(f"{ref}: {exc}")
                continue
            if best is None or len(match.source) > len(best[2].source):
                best = (ref, wcs, match)
            # Half the sources of the shorter list in common: the frames overlap well.
            if len(match.source) >= 0.5 * min(len(xy), len(ref_xy)):
                break
        if best is None:
            reason = "no solved frame matched: " + "; ".join(reasons)
            results[stem] = ChainResult(stem, "none", reason=reason[:300])
            log.warning("%s: %s", stem, reason)
            continue
        ref, wcs, match = best
        solved[stem] = wcs
        for other in pending:
            gap[other] = min(gap[other], abs(times[other] - times[stem]))
        results[stem] = ChainResult(stem, "matched", ref, len(match.source), match.rms_px, wcs=wcs)
        log.info(
            "%s: matched to %s, %d sources, RMS %.3f px", stem, ref, len(match.source), match.rms_px
        )
    return [results[s] for s in stems]


def wcs_to_string(wcs: WCS | None) -> str:
    """A WCS as header text (SIP included); '' for None."""
    if wcs is None:
        return ""
    return wcs.to_header(relax=True).tostring()


def wcs_from_string(text: str) -> WCS | None:
    """The inverse of `wcs_to_string`."""
    if not text or not str(text).strip():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        return WCS(fits.Header.fromstring(str(text)))


def chain_table(results: list[ChainResult], shape: tuple[int, int]) -> Table:
    """The rows of ``astrometry/chain/<target>/frames.ecsv``.

    Columns ``stem``, ``method``, ``reference``, ``n_matched``, ``rms_px``, ``reason``,
    ``wcs`` (header text); meta ``NAXIS1``, ``NAXIS2``.
    """
    table = Table(
        rows=[
            (r.stem, r.method, r.reference, r.n_matched, r.rms_px, r.reason, wcs_to_string(r.wcs))
            for r in results
        ],
        names=("stem", "method", "reference", "n_matched", "rms_px", "reason", "wcs"),
        dtype=(str, str, str, int, float, str, str),
    )
    table.meta["NAXIS1"], table.meta["NAXIS2"] = int(shape[1]), int(shape[0])
    return table


def chain_start(chain: Table, stem: str) -> tuple[WCS | None, str]:
    """A frame's starting WCS from its target's chain table, and how it got it.

    The second value is ``solve-field``, ``matched to <stem>``, or '' without a WCS.
    """
    rows = chain[np.asarray(chain["stem"]) == stem]
    if len(rows) == 0:
        return None, ""
    row = rows[0]
    wcs = wcs_from_string(str(row["wcs"]))
    if wcs is None or row["method"] == "none":
        return None, ""
    if "NAXIS1" in chain.meta:
        wcs.pixel_shape = (int(chain.meta["NAXIS1"]), int(chain.meta["NAXIS2"]))
    method = str(row["method"])
    return wcs, (f"matched to {row['reference']}" if method == "matched" else method)


def chain_failure(chain: Table, stem: str, solve_field_ran: bool, problem: str = "") -> str:
    """Why a frame has no starting WCS, in one line.

    Parameters
    ----------
    chain : astropy.table.Table
        The target's chain table (`chain_table`).
    stem : str
        The frame.
    solve_field_ran : bool
        Whether ``solve-field`` ran on it (``astrometry.solve_field``).
    problem : str
        Why the solver configuration lacks index files ('' when it has them).
    """
    rows = chain[np.asarray(chain["stem"]) == stem]
    why = str(rows[0]["reason"]) if len(rows) else "not in the astrometry chain"
    if not solve_field_ran or why.startswith("solve-field"):
        return why
    text = "solve-field found no solution" + (f": {problem}" if problem else "")
    if why and not why.startswith("solve-field"):
        text += f"; {why}"
    return text
