"""Astrometry for every frame with stars: solved frames hand their WCS on to their neighbours.

``solve-field`` fails on part of some nights (sparse index files, a pointing that drifts out of
the indexed area) and costs seconds per frame. Frames of one target show the same stars, so a
frame without a ``solve-field`` solution gets its WCS from a solved frame close in time:

1. its own source list (Source Extractor's, written by the ``solve_field`` rule for every
   frame) is matched to the solved frame's by asterisms (triangles of the brightest stars,
   `astroalign`), which finds shifts of any size, rotations and flips;
2. with that transformation all sources of both lists are cross-identified, and a TAN(-SIP)
   WCS is fitted to the frame's pixel positions against the solved frame's sources on the sky
   (through the solved frame's WCS), then once more with every source that this WCS predicts
   within a pixel;
3. the frame is now solved and serves its own neighbours, so a pointing that drifts through
   the night is followed from frame to frame (`propagate_wcs`).

The per-frame refinement (`aifa_steps.astrometry.solve.refine_wcs`) then measures every frame
against the reference catalogue or, on a night without one, against the windowed centroids of
one solved frame's sources (`detection_catalogue`), so all frames of a target share one astrometric
reference either way.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy.spatial import cKDTree

from aifa_steps.astrometry.solve import _fit_best_order, refine_wcs

__all__ = [
    "MatchError",
    "SourceMatch",
    "ChainResult",
    "solve_field_selection",
    "read_sources",
    "match_sources",
    "wcs_from_sources",
    "propagate_wcs",
    "detection_catalogue",
    "corr_catalogue",
    "read_corr",
    "rms_limit_arcsec",
    "wcs_to_string",
    "wcs_from_string",
    "chain_table",
    "refine_with_fallback",
    "solve_source_list",
    "target_stars",
    "chain_start",
    "own_reference",
    "chain_failure",
]

log = logging.getLogger(__name__)

#: Fewest sources in each list for an asterism match (astroalign needs 3; a few more make it
#: unambiguous).
MIN_SOURCES = 5


class MatchError(ValueError):
    """Two source lists could not be matched; the message says why (one line)."""


@dataclass
class SourceMatch:
    """Cross-identified sources of two lists.

    Attributes
    ----------
    source, reference : numpy.ndarray
        Indices into the frame's and the reference frame's source lists, pair by pair.
    transform : numpy.ndarray
        3 x 3 matrix of the similarity transformation from the frame's pixels to the
        reference frame's pixels (homogeneous coordinates).
    rms_px : float
        RMS distance (pixels) of the pairs after the transformation.
    """

    source: np.ndarray
    reference: np.ndarray
    transform: np.ndarray
    rms_px: float


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


def read_sources(path: str | Path) -> Table:
    """A Source Extractor list as ``x``, ``y`` (0-based pixels) and ``flux``, brightest first.

    Reads ``X_IMAGE``, ``Y_IMAGE``, ``FLUX_AUTO``; the table is empty when the file is empty
    or missing (a frame whose sources could not be extracted).
    """
    path = Path(path)
    empty = Table(names=("x", "y", "flux"), dtype=(float, float, float))
    if not path.exists() or path.stat().st_size == 0:
        return empty
    with warnings.catch_warnings(), fits.open(path) as hdul:
        warnings.simplefilter("ignore", AstropyWarning)
        raw = Table(hdul[1].data) if len(hdul) > 1 and hdul[1].data is not None else None
    if raw is None or len(raw) == 0:
        return empty
    table = Table(
        {
            "x": np.asarray(raw["X_IMAGE"], float) - 1.0,
            "y": np.asarray(raw["Y_IMAGE"], float) - 1.0,
            "flux": np.asarray(raw["FLUX_AUTO"], float),
        }
    )
    table = table[np.isfinite(table["x"]) & np.isfinite(table["y"]) & (table["flux"] > 0)]
    table.sort("flux", reverse=True)
    return table


def _apply(matrix: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return xy @ matrix[:2, :2].T + matrix[:2, 2]


def _unique_pairs(distance: np.ndarray, index: np.ndarray, n_ref: int) -> np.ndarray:
    """Sources that are the closest of all sources choosing their nearest reference.

    So each reference pairs with one source at most.
    """
    found = index < n_ref
    best: dict[int, int] = {}
    for k in np.flatnonzero(found):
        j = int(index[k])
        if j not in best or distance[k] < distance[best[j]]:
            best[j] = int(k)
    return np.array(sorted(best.values()), dtype=int)


def match_sources(
    xy: np.ndarray,
    reference_xy: np.ndarray,
    max_control_points: int = 50,
    radius_px: float = 3.0,
    min_matches: int = 6,
) -> SourceMatch:
    """Match a frame's sources to a reference frame's by asterisms, then cross-identify all.

    Parameters
    ----------
    xy : numpy.ndarray
        ``(n, 2)`` pixel positions of the frame's sources, brightest first.
    reference_xy : numpy.ndarray
        ``(m, 2)`` positions in the reference frame, brightest first.
    max_control_points : int
        Brightest sources of each list used for the asterisms.
    radius_px : float
        Largest distance of a pair after the transformation.
    min_matches : int
        Fewest pairs accepted.

    Returns
    -------
    SourceMatch
        The pairs and the similarity transformation (frame to reference pixels).

    Raises
    ------
    MatchError
        With too few sources in either list, when no transformation is found, or with too
        few pairs.
    """
    import astroalign

    xy = np.asarray(xy, float).reshape(-1, 2)
    reference_xy = np.asarray(reference_xy, float).reshape(-1, 2)
    for name, points in (("the frame", xy), ("the reference frame", reference_xy)):
        if len(points) < MIN_SOURCES:
            raise MatchError(f"only {len(points)} sources in {name} (< {MIN_SOURCES})")
    n = max(max_control_points, MIN_SOURCES)
    try:
        transform, _ = astroalign.find_transform(xy[:n], reference_xy[:n], max_control_points=n)
    except astroalign.MaxIterError:
        raise MatchError("no asterism of the frame matches the reference frame") from None
    except ValueError as exc:  # astroalign: too few stars or asterisms
        raise MatchError(f"asterism matching failed: {exc}") from None
    matrix = np.asarray(transform.params, float)
    tree = cKDTree(reference_xy)
    for _ in range(2):  # cross-identify, refit the similarity on all pairs, again
        distance, index = tree.query(_apply(matrix, xy), distance_upper_bound=radius_px)
        pairs = _unique_pairs(distance, index, len(reference_xy))
        if len(pairs) < 3:
            break
        matrix = _similarity(xy[pairs], reference_xy[index[pairs]])
    distance, index = tree.query(_apply(matrix, xy), distance_upper_bound=radius_px)
    pairs = _unique_pairs(distance, index, len(reference_xy))
    if len(pairs) < min_matches:
        raise MatchError(f"only {len(pairs)} sources matched the reference frame (< {min_matches})")
    rms = float(np.sqrt(np.mean(distance[pairs] ** 2)))
    return SourceMatch(pairs, index[pairs].astype(int), matrix, rms)


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transformation (scale, rotation, shift; a flip when needed)."""
    best, best_res = np.eye(3), np.inf
    for flip in (1.0, -1.0):
        x, y = src[:, 0], src[:, 1] * flip
        ones, zeros = np.ones(len(x)), np.zeros(len(x))
        # u = a x - b y + tx, v = b x + a y + ty
        design = np.vstack(
            [np.column_stack([x, -y, ones, zeros]), np.column_stack([y, x, zeros, ones])]
        )
        (a, b, tx, ty), *_ = np.linalg.lstsq(design, np.concatenate([dst[:, 0], dst[:, 1]]))
        matrix = np.array([[a, -b * flip, tx], [b, a * flip, ty], [0.0, 0.0, 1.0]])
        res = float(np.sum((_apply(matrix, src) - dst) ** 2))
        if res < best_res:
            best, best_res = matrix, res
    return best


def wcs_from_sources(
    xy: np.ndarray,
    reference_xy: np.ndarray,
    reference_wcs: WCS,
    shape: tuple[int, int],
    sip_degree: int = 3,
    min_matches: int = 6,
    max_rms_px: float = 1.0,
) -> tuple[WCS, SourceMatch]:
    """A frame's WCS from its sources matched to those of a solved frame.

    Parameters
    ----------
    xy : numpy.ndarray
        ``(n, 2)`` 0-based positions of the frame's sources, brightest first.
    reference_xy : numpy.ndarray
        ``(m, 2)`` positions of the solved frame's sources, brightest first.
    reference_wcs : astropy.wcs.WCS
        The solved frame's WCS.
    shape : tuple of int
        ``(ny, nx)`` of the frame.
    sip_degree : int
        Highest SIP order (the fit keeps the order the pairs support).
    min_matches : int
        Fewest pairs accepted.
    max_rms_px : float
        Largest accepted RMS residual (pixels) of the fit.

    Returns
    -------
    wcs : astropy.wcs.WCS
        TAN(-SIP) solution, reference pixel at the image centre.
    match : SourceMatch
        The pairs used in the last fit, with its RMS residual.

    Raises
    ------
    MatchError
        When the lists do not match or the fit's residuals are too large.
    """
    xy = np.asarray(xy, float).reshape(-1, 2)
    reference_xy = np.asarray(reference_xy, float).reshape(-1, 2)
    match = match_sources(xy, reference_xy, min_matches=min_matches)
    ra, dec = reference_wcs.all_pix2world(reference_xy[:, 0], reference_xy[:, 1], 0)
    source, reference = match.source, match.reference
    for iteration in range(2):
        sky = SkyCoord(ra[reference] * u.deg, dec[reference] * u.deg)
        try:
            wcs = _fit_best_order(
                (xy[source, 0], xy[source, 1]), sky, sip_degree, shape, np.ones(len(source))
            )
        except ValueError as exc:
            raise MatchError(str(exc)) from None
        if iteration == 1:
            break
        # Refit with every reference source that this fit predicts within a pixel of a source.
        px, py = wcs.all_world2pix(ra, dec, 0, quiet=True)
        distance, index = cKDTree(xy).query(np.column_stack([px, py]), distance_upper_bound=1.0)
        pairs = _unique_pairs(distance, index, len(xy))
        if len(pairs) < min_matches:
            break
        source, reference = index[pairs].astype(int), pairs
    px, py = wcs.all_world2pix(ra[reference], dec[reference], 0, quiet=True)
    rms = float(np.sqrt(np.mean((px - xy[source, 0]) ** 2 + (py - xy[source, 1]) ** 2)))
    if not rms <= max_rms_px:
        raise MatchError(f"matched sources fit with an RMS of {rms:.2f} px (> {max_rms_px})")
    wcs.pixel_shape = (shape[1], shape[0])
    return wcs, SourceMatch(source, reference, match.transform, rms)


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
        Source list of each frame (`read_sources`).
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


def read_corr(path: str | Path) -> Table | None:
    """solve-field's ``.corr`` file (its units warnings silenced), or None when empty."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        return Table.read(path)


def corr_catalogue(corr: Table) -> Table:
    """solve-field's matched index stars (``.corr``) as a reference catalogue.

    Columns ``RA_ICRS``, ``DE_ICRS`` and ``mag`` (instrumental, from the measured flux).
    """
    flux = np.asarray(corr["FLUX"], float) if "FLUX" in corr.colnames else np.ones(len(corr))
    return Table(
        {
            "RA_ICRS": np.asarray(corr["index_ra"], float),
            "DE_ICRS": np.asarray(corr["index_dec"], float),
            "mag": 25.0 - 2.5 * np.log10(np.clip(flux, 1e-3, None)),
        }
    )


def detection_catalogue(
    data: np.ndarray,
    wcs: WCS,
    sources: Table,
    mask: np.ndarray | None = None,
    sip_degree: int = 3,
) -> Table:
    """A reference catalogue from one solved frame: windowed centroids of its sources on the sky.

    For a night without a reference catalogue: every frame of the target is then refined
    against the same stars, so their WCS agree with each other to the centroids' precision (and
    with the sky to the solved frame's precision).

    Parameters
    ----------
    data : numpy.ndarray
        The solved frame's calibrated image.
    wcs : astropy.wcs.WCS
        Its WCS.
    sources : astropy.table.Table
        Its source list (`read_sources`).
    mask : numpy.ndarray, optional
        Pixels not to use.
    sip_degree : int
        Highest SIP order of the consistency fit.

    Returns
    -------
    astropy.table.Table
        ``RA_ICRS``, ``DE_ICRS``, ``mag`` (instrumental) of the isolated, unmasked sources
        that could be centroided.

    Raises
    ------
    ValueError
        When too few sources can be centroided.
    """
    ra, dec = wcs.all_pix2world(np.asarray(sources["x"]), np.asarray(sources["y"]), 0)
    rough = Table(
        {"RA_ICRS": ra, "DE_ICRS": dec, "mag": 25.0 - 2.5 * np.log10(np.asarray(sources["flux"]))}
    )
    # refine_wcs measures windowed centroids of every isolated source; their positions through
    # the frame's own WCS are the catalogue.
    _, matched = refine_wcs(
        data,
        wcs,
        rough,
        mask=mask,
        mag_column="mag",
        mag_range=(-np.inf, np.inf),
        sip_degree=sip_degree,
    )
    ra, dec = wcs.all_pix2world(np.asarray(matched["x"]), np.asarray(matched["y"]), 0)
    # Each centroided star's magnitude: the rough source it was measured for.
    cosd = np.cos(np.radians(np.median(dec)))
    tree = cKDTree(np.column_stack([rough["RA_ICRS"] * cosd, rough["DE_ICRS"]]))
    _, nearest = tree.query(np.column_stack([np.asarray(matched["ra"]) * cosd, matched["dec"]]))
    mags = np.asarray(rough["mag"], float)[nearest]
    return Table({"RA_ICRS": ra, "DE_ICRS": dec, "mag": mags})


def rms_limit_arcsec(pixel_scale: float, max_rms_arcsec: float, max_rms_pixels: float) -> float:
    """The largest accepted RMS residual (arcsec).

    ``max_rms_arcsec``, or ``max_rms_pixels`` pixels when that is larger: one configuration
    serves fine (0.6"/px) and coarse (5"/px) pixel scales.
    """
    return max(float(max_rms_arcsec or 0.0), float(max_rms_pixels or 0.0) * float(pixel_scale))


def refine_with_fallback(
    data: np.ndarray,
    wcs: WCS,
    refcat: Table | None,
    stars: Table | None,
    mask: np.ndarray | None = None,
    mag_column: str = "rmag",
    sip_degree: int = 3,
) -> tuple[WCS, Table, str]:
    """Refine a frame's WCS against the reference catalogue, or else a solved frame's stars.

    Parameters
    ----------
    data : numpy.ndarray
        The calibrated image.
    wcs : astropy.wcs.WCS
        Starting WCS (``solve-field``'s or handed on by `propagate_wcs`).
    refcat : astropy.table.Table or None
        The reference catalogue (``RA_ICRS``, ``DE_ICRS``, ``mag_column``); empty or None on a
        night without one.
    stars : astropy.table.Table or None
        `detection_catalogue` of the target (``mag`` instrumental); meta ``FRAME`` names the
        frame they were measured on.
    mask : numpy.ndarray, optional
        Pixels not to use.
    mag_column : str
        Magnitude of the reference catalogue that selects stars.
    sip_degree : int
        Highest SIP order.

    Returns
    -------
    wcs : astropy.wcs.WCS
        The refined WCS.
    matched : astropy.table.Table
        The stars of the fit (see `aifa_steps.astrometry.solve.refine_wcs`).
    reference : str
        ``refcat`` or ``stars of <stem>``: what the frame was refined against.

    Raises
    ------
    ValueError
        When neither reference gives a fit (the message says why for each).
    """
    problems = []
    if refcat is not None and len(refcat):
        try:
            refined, matched = refine_wcs(
                data, wcs, refcat, mask=mask, mag_column=mag_column, sip_degree=sip_degree
            )
            return refined, matched, "refcat"
        except ValueError as exc:
            problems.append(f"reference catalogue: {exc}")
    else:
        problems.append("the reference catalogue is empty")
    if stars is not None and len(stars):
        label = f"stars of {stars.meta.get('FRAME', 'a solved frame')}"
        try:
            refined, matched = refine_wcs(
                data,
                wcs,
                stars,
                mask=mask,
                mag_column="mag",
                mag_range=(-np.inf, np.inf),
                sip_degree=sip_degree,
            )
            return refined, matched, label
        except ValueError as exc:
            problems.append(f"{label}: {exc}")
    else:
        reason = stars.meta.get("REASON", "") if stars is not None else ""
        problems.append("no solved frame's stars" + (f" ({reason})" if reason else ""))
    raise ValueError("; ".join(problems))


def solve_source_list(
    frame: str | Path,
    source_list: str | Path,
    solver: str | Path,
    verifier: str | Path,
    pixel_scale: float,
    shape: tuple[int, int],
    hint: str = "",
    scale_tolerance: float = 0.02,
    radius: float = 1.0,
    sip_order: int = 3,
    cpulimit: float = 60.0,
) -> tuple[WCS | None, Table | None]:
    """Both ``solve-field`` passes on a frame's existing source list.

    As the ``solve_field`` rule runs them, for a frame that the rule skipped.

    Parameters
    ----------
    frame : path
        The calibrated frame.
    source_list : path
        Its Source Extractor list (``astrometry/solve/<stem>.xyls``).
    solver, verifier : path
        astrometry.net configurations of pass 1 and pass 2.
    pixel_scale : float
        Expected pixel scale (arcsec).
    shape : tuple of int
        ``(ny, nx)``.
    hint : str
        ``--ra R --dec D --radius r`` from the header pointing, or ''.
    scale_tolerance, radius, sip_order, cpulimit
        As for `aifa_steps.astrometry.solve.solve_field_passes`.

    Returns
    -------
    wcs, corr : WCS and Table, or None and None
        The best pass's solution and matched stars.
    """
    import shlex
    import subprocess
    import tempfile

    from aifa_steps.astrometry.solve import read_solution, solve_field_passes

    words = shlex.split(hint or "")
    ra = float(words[words.index("--ra") + 1]) if "--ra" in words else None
    dec = float(words[words.index("--dec") + 1]) if "--dec" in words else None
    with tempfile.TemporaryDirectory(prefix="aifa-solve-") as tmp:
        _, pass1, pass2 = solve_field_passes(
            frame,
            solver,
            tmp,
            pixel_scale,
            shape,
            scale_tolerance,
            ra,
            dec,
            radius,
            sip_order,
            cpulimit,
            verifier,
        )
        (Path(tmp) / "sources.fits").write_bytes(Path(source_list).read_bytes())
        for name, cmd in (("p1", pass1), ("p2", pass2)):
            proc = subprocess.run(cmd, capture_output=True, text=True)
            log.info("%s pass %s: exit %d", Path(frame).name, name, proc.returncode)
            if not (Path(tmp) / f"{name}.wcs").exists():
                break
        for name in ("p2", "p1"):
            wcs = read_solution(Path(tmp) / f"{name}.wcs")
            if wcs is not None:
                return wcs, read_corr(Path(tmp) / f"{name}.corr")
    return None, None


def target_stars(
    results: list[ChainResult],
    corrs: dict[str, Table],
    sources: dict[str, Table],
    read_frame: Callable[[str], tuple[np.ndarray, np.ndarray | None]],
    sip_degree: int = 3,
) -> Table:
    """The stars of one solved frame of a target on the sky.

    They are the reference of the target's frames on a night without a reference catalogue.

    The frame is the ``solve-field`` frame with the most matched index stars; its WCS is first
    refined against those index stars (windowed centroids), then its sources are measured
    through it (`detection_catalogue`).

    Parameters
    ----------
    results : list of ChainResult
        `propagate_wcs`'s results of the target.
    corrs : dict
        ``solve-field``'s matched stars (``.corr``) of the solved frames.
    sources : dict
        Source lists (`read_sources`).
    read_frame : callable
        ``stem -> (data, mask)`` of a calibrated frame.
    sip_degree : int
        Highest SIP order.

    Returns
    -------
    astropy.table.Table
        ``RA_ICRS``, ``DE_ICRS``, ``mag``; meta ``FRAME`` (the frame) or ``REASON`` (why the
        table is empty).
    """
    stars = Table(names=("RA_ICRS", "DE_ICRS", "mag"), dtype=(float, float, float))
    anchors = [r for r in results if r.method == "solve-field" and r.stem in corrs]
    header_anchors = [r for r in results if r.method == "header"]
    if not anchors and not header_anchors:
        stars.meta["REASON"] = "no frame of this target was solved by solve-field"
        return stars
    anchor = max(anchors, key=lambda r: len(corrs[r.stem])) if anchors else header_anchors[0]
    data, mask = read_frame(anchor.stem)
    wcs = anchor.wcs
    if not anchors:
        log.info("%s: its header WCS measures the stars (no solve-field solution)", anchor.stem)
    try:
        if not anchors:
            raise ValueError("no index stars to refine a header WCS against")
        wcs, matched = refine_wcs(
            data,
            wcs,
            corr_catalogue(corrs[anchor.stem]),
            mask=mask,
            mag_column="mag",
            mag_range=(-np.inf, np.inf),
            sip_degree=sip_degree,
        )
        log.info("%s: WCS refined against %d index stars", anchor.stem, len(matched))
    except ValueError as exc:
        log.info("%s: solve-field's WCS as it is (%s)", anchor.stem, exc)
    try:
        stars = detection_catalogue(data, wcs, sources[anchor.stem], mask, sip_degree)
    except ValueError as exc:
        stars.meta["REASON"] = f"the stars of {anchor.stem} could not be measured: {exc}"
        return stars
    stars.meta["FRAME"] = anchor.stem
    log.info("%d stars of %s", len(stars), anchor.stem)
    return stars


def own_reference(stars: Table, stem: str, corr: Table | None) -> Table:
    """The stars a frame is refined against on a night without a reference catalogue.

    The target's stars (`target_stars`), except for the frame they were measured on: that
    frame would only fit its own centroids, so it is refined against the index stars that
    ``solve-field`` matched (its ``.corr``), as its stars' WCS was.
    """
    if stars.meta.get("FRAME") != stem or corr is None or len(corr) == 0:
        return stars
    own = corr_catalogue(corr)
    own.meta["FRAME"] = f"{stem} (solve-field's index stars)"
    return own


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
