"""Asterism matching of two source lists, and a frame's WCS from the sources of a solved frame.

Triangles of the brightest stars (`astroalign`) find the similarity transformation between two
frames of one target (shifts of any size, rotations, flips); with it all sources are
cross-identified, and a TAN(-SIP) WCS is fitted to the frame's pixel positions against the
solved frame's sources on the sky.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from aifa_steps.astrometry.tan_sip import fit_best_order

__all__ = ["MIN_SOURCES", "MatchError", "SourceMatch", "match_sources", "wcs_from_sources"]

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
            wcs = fit_best_order(
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
