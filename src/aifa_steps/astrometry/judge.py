"""Whether a frame's solution is good: pixel scale, number of reference stars, RMS residual."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from aifa_steps.astrometry.settings import rms_limit_arcsec

__all__ = ["SolveStatus", "judge_solution", "rms_limit_arcsec", "wcs_separation"]


@dataclass
class SolveStatus:
    """Outcome of the astrometry of one frame (a row of ``astrometry/status.ecsv``)."""

    stem: str
    solved: bool
    reason: str
    n_matches: int
    rms_arcsec: float
    pixel_scale: float = float("nan")
    rotation_deg: float = float("nan")
    fwhm_arcsec: float = float("nan")
    #: How the frame got its starting WCS: ``solve-field``, ``matched to <stem>`` or ''.
    method: str = ""
    #: What the WCS was refined against: ``refcat``, ``stars of <stem>``, ``solve-field``
    #: (its matched index stars, without refinement) or ''.
    reference: str = ""

    def as_dict(self) -> dict:
        """The status as a table row."""
        return dict(self.__dict__)


def judge_solution(
    stem: str,
    wcs: WCS | None,
    matched: Table | None,
    pixel_scale: float,
    scale_tolerance: float = 0.02,
    max_rms_arcsec: float = 0.5,
    min_matches: int = 10,
    failure: str = "",
) -> SolveStatus:
    """Decide whether a solution is good: pixel scale, number of matched stars, RMS residual."""
    if wcs is None:
        return SolveStatus(stem, False, failure or "solve-field found no solution", 0, np.nan)
    scale = float(np.mean(proj_plane_pixel_scales(wcs)) * 3600.0)
    cd = wcs.pixel_scale_matrix
    rotation = float(np.degrees(np.arctan2(cd[0, 1], cd[1, 1])))
    n = len(matched) if matched is not None else 0
    rms = float(np.sqrt(np.mean(np.square(matched["residual_arcsec"])))) if n else np.nan
    reason = failure
    if abs(scale / pixel_scale - 1.0) > scale_tolerance:
        reason = f"pixel scale {scale:.4f} arcsec differs from the configured {pixel_scale}"
    elif n < min_matches:
        reason = f"only {n} matched stars (< {min_matches})"
    elif not rms <= max_rms_arcsec:
        reason = f"RMS residual {rms:.3f} arcsec > {max_rms_arcsec}"
    fwhm = float(matched.meta.get("FWHM_ARCSEC", np.nan)) if matched is not None else np.nan
    return SolveStatus(stem, not reason, reason, n, rms, scale, rotation, fwhm)


def wcs_separation(a: WCS, b: WCS, shape: tuple[int, int], n: int = 25) -> tuple[float, float]:
    """RMS and largest separation (arcsec) of two WCS over an n x n grid with the corners.

    Parameters
    ----------
    a, b : astropy.wcs.WCS
        The two solutions (e.g. a frame's and the simulator's true one).
    shape : tuple of int
        The image's ``(ny, nx)``.
    n : int
        Grid points per axis.
    """
    ny, nx = shape
    xs, ys = np.meshgrid(np.linspace(0, nx - 1, n), np.linspace(0, ny - 1, n))
    sep = (
        a.pixel_to_world(xs.ravel(), ys.ravel())
        .separation(b.pixel_to_world(xs.ravel(), ys.ravel()))
        .arcsec
    )
    return float(np.sqrt(np.mean(sep**2))), float(sep.max())
