"""Astrometry: index files for astrometry.net, and what follows a ``solve-field`` run.

``solve-field`` itself runs in a shell rule of the workflow (two passes: a blind solve with scale
and position hints, then a refinement with SIP distortion of order 3 that verifies the first
solution with all stars). This module builds index files from a catalogue, writes the
astrometry.net configuration, reads the solutions, refines them against the reference catalogue
with windowed centroids of all unsaturated reference stars (a linear TAN-SIP fit of up to
order 3, the order chosen by the Bayesian information criterion), judges their quality, and
attaches them to the calibrated frames.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.stats import mad_std
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, Sip
from astropy.wcs.utils import proj_plane_pixel_scales

from aifa_steps.core.atomic import atomic_path, save_figure, write_table, write_text
from aifa_steps.core.centroids import half_max_fwhm, windowed_centroids
from aifa_steps.core.images import coarse_background
from aifa_steps.photometry.refcat import select_around

__all__ = [
    "index_scales",
    "verify_index_scale",
    "build_indexes",
    "write_solver_config",
    "solver_problem",
    "read_solution",
    "refine_wcs",
    "fit_tan_sip",
    "SolveStatus",
    "judge_solution",
    "attach_wcs",
    "matches_from_corr",
    "residual_figure",
    "astrometry_report",
    "residual_plots",
    "solve_field_passes",
]

log = logging.getLogger(__name__)


def index_scales(width_arcmin: float, height_arcmin: float) -> list[int]:
    """astrometry.net index scale numbers (``-P``) for a field of this size.

    Scale P suits fields of about 6 * 2**(P/2) arcmin; quads from a fifth of the shorter side to
    the longer side are covered.
    """
    small, large = sorted((width_arcmin, height_arcmin))
    low = int(np.floor(2 * np.log2(max(small / 5.0, 1e-3) / 6.0)))
    high = int(np.ceil(2 * np.log2(large / 6.0)))
    return list(range(max(low, -5), max(high, low) + 1))


def verify_index_scale(width_arcmin: float, height_arcmin: float, scales: list[int]) -> int:
    """The densest of ``scales`` that the second (verifying) ``solve-field`` pass uses.

    ``solve-field`` verifies with indexes whose largest quads (``2 * sqrt(2)**(P + 1)`` arcmin)
    reach a tenth of the field's shorter side; the finest such index holds the most stars. Pass
    2 with this one index matches as many stars as with all of them, at a third of the time.
    """
    small = min(width_arcmin, height_arcmin)
    finest = int(np.ceil(2 * np.log2(max(small / 20.0, 1e-6)) - 1))
    usable = [s for s in scales if s >= finest]
    return min(usable) if usable else max(scales)


def build_indexes(
    catalogue: Table,
    outdir: str | Path,
    scales: list[int],
    mag_column: str = "rmag",
    ra_column: str = "RA_ICRS",
    dec_column: str = "DE_ICRS",
    id_base: int = 7000,
) -> list[Path]:
    """Build astrometry.net index files from a catalogue with ``build-astrometry-index``.

    Parameters
    ----------
    catalogue : astropy.table.Table
        Stars with positions and a magnitude (brighter stars are preferred for quads).
    outdir : path
        Folder for the index files.
    scales : list of int
        Scale numbers (``-P``), see `index_scales`.
    mag_column, ra_column, dec_column : str
        Columns of the catalogue.
    id_base : int
        Unique index id of the first scale.

    Returns
    -------
    list of pathlib.Path
        The index files.

    Raises
    ------
    RuntimeError
        If ``build-astrometry-index`` fails.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    good = np.isfinite(np.asarray(catalogue[mag_column], dtype=float))
    table = Table(
        {
            "RA": np.asarray(catalogue[ra_column][good], dtype=float),
            "DEC": np.asarray(catalogue[dec_column][good], dtype=float),
            "MAG": np.asarray(catalogue[mag_column][good], dtype=float),
        }
    )
    files = []
    # The input table stays out of the index folder, where autoindex would try to load it.
    with tempfile.TemporaryDirectory(prefix="aifa-index-") as scratch:
        source = Path(scratch) / "index_catalogue.fits"
        write_table(table, source)
        for k, scale in enumerate(scales):
            out = outdir / f"index-{scale:+d}.fits".replace("+", "p").replace("-", "m", 1)
            with atomic_path(out) as partial:
                _build_index(source, partial, scale, id_base + k)
            files.append(out)
    log.info("built %d index files from %d stars: scales %s", len(files), len(table), scales)
    return files


def _build_index(source: Path, out: Path, scale: int, index_id: int) -> None:
    """Run ``build-astrometry-index`` for one scale."""
    cmd = [
        "build-astrometry-index",
        "-i",
        str(source),
        "-e",
        "1",
        "-o",
        str(out),
        "-P",
        str(scale),
        "-S",
        "MAG",
        "-E",
        "-I",
        str(index_id),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"build-astrometry-index failed for scale {scale}: {proc.stderr[-2000:]}"
        )


def write_solver_config(
    path: str | Path,
    index_dirs: list[str | Path],
    cpulimit: float = 60.0,
    parallel: bool = True,
    index_files: list[str | Path] | None = None,
    problem: str = "",
) -> None:
    """Write an astrometry.net configuration (``--config``).

    Parameters
    ----------
    path : path
        The configuration file.
    index_dirs : list of path
        Folders whose index files are all loaded (``add_path`` and ``autoindex``).
    cpulimit : float
        CPU seconds per field.
    parallel : bool
        Load the indexes in parallel (``inparallel``).
    index_files : list of path, optional
        Single index files to load (``index``), besides the folders.
    problem : str, optional
        Why the configuration lacks index files (kept as a comment; see `solver_problem`).
    """
    lines = ["# astrometry.net configuration written by aifa-steps"]
    if problem:
        lines.append(f"{_PROBLEM} {' '.join(problem.split())}")
    if parallel:
        lines.append("inparallel")
    lines.append(f"cpulimit {int(cpulimit)}")
    lines += [f"index {Path(f).resolve()}" for f in index_files or []]
    lines += [f"add_path {Path(d).resolve()}" for d in index_dirs]
    if index_dirs:
        lines.append("autoindex")
    write_text(path, "\n".join(lines) + "\n")


_PROBLEM = "# problem:"


def solver_problem(path: str | Path) -> str:
    """Why a solver configuration has no index files ('' when it has them)."""
    for line in Path(path).read_text().splitlines():
        if line.startswith(_PROBLEM):
            return line[len(_PROBLEM) :].strip()
    return ""


def read_solution(path: str | Path) -> WCS | None:
    """The WCS in a ``solve-field`` ``.wcs`` file, or None when the file is empty or missing."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        header = fits.getheader(path)
        return WCS(header)


def _gnomonic(ra, dec, ra0, dec0):
    """Tangent-plane coordinates (deg) of (ra, dec) about (ra0, dec0)."""
    a, d, a0, d0 = map(np.radians, (ra, dec, ra0, dec0))
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return np.degrees(xi), np.degrees(eta)


def _inverse_gnomonic(xi, eta, ra0, dec0):
    x, y, d0 = np.radians(xi), np.radians(eta), np.radians(dec0)
    rho = np.hypot(x, y)
    c = np.arctan(rho)
    if rho == 0:
        return ra0, dec0
    dec = np.arcsin(np.cos(c) * np.sin(d0) + y * np.sin(c) * np.cos(d0) / rho)
    ra = np.radians(ra0) + np.arctan2(
        x * np.sin(c), rho * np.cos(d0) * np.cos(c) - y * np.sin(d0) * np.sin(c)
    )
    return float(np.degrees(ra) % 360.0), float(np.degrees(dec))


def _terms(degree: int):
    return [
        (p, q) for total in range(degree + 1) for p in range(total, -1, -1) for q in [total - p]
    ]


def fit_tan_sip(
    x: np.ndarray,
    y: np.ndarray,
    ra: np.ndarray,
    dec: np.ndarray,
    shape: tuple[int, int],
    degree: int = 3,
    weights: np.ndarray | None = None,
) -> WCS:
    """Least-squares TAN(-SIP) solution with the reference pixel at the image centre.

    The tangent-plane coordinates of the stars are fitted as polynomials of degree ``degree`` in
    the pixel offsets from the reference pixel (a linear problem); the linear terms give the CD
    matrix, the higher ones the SIP ``A`` and ``B`` coefficients, the constant terms move the
    tangent point (iterated).

    Parameters
    ----------
    x, y : numpy.ndarray
        0-based pixel positions.
    ra, dec : numpy.ndarray
        Catalogue positions (deg).
    shape : tuple of int
        ``(ny, nx)`` of the image.
    degree : int
        1 for a plain TAN projection, 2 or more for SIP distortion of that order.
    weights : numpy.ndarray, optional
        Weights of the stars (inverse variance of their positions).
    """
    ny, nx = shape
    crpix = np.array([(nx + 1) / 2.0, (ny + 1) / 2.0])
    u = np.asarray(x, float) + 1.0 - crpix[0]
    v = np.asarray(y, float) + 1.0 - crpix[1]
    scale = max(nx, ny) / 2.0
    terms = _terms(max(degree, 1))
    design = np.column_stack([(u / scale) ** p * (v / scale) ** q for p, q in terms])
    root_w = np.sqrt(np.ones(len(u)) if weights is None else np.asarray(weights, float))
    design = design * root_w[:, None]
    ra0, dec0 = float(np.median(ra)), float(np.median(dec))
    for _ in range(4):
        xi, eta = _gnomonic(np.asarray(ra, float), np.asarray(dec, float), ra0, dec0)
        a, *_ = np.linalg.lstsq(design, xi * root_w, rcond=None)
        b, *_ = np.linalg.lstsq(design, eta * root_w, rcond=None)
        ra0, dec0 = _inverse_gnomonic(a[0], b[0], ra0, dec0)
    xi, eta = _gnomonic(np.asarray(ra, float), np.asarray(dec, float), ra0, dec0)
    a, *_ = np.linalg.lstsq(design, xi * root_w, rcond=None)
    b, *_ = np.linalg.lstsq(design, eta * root_w, rcond=None)
    coeff = {t: (a[k] / scale ** sum(t), b[k] / scale ** sum(t)) for k, t in enumerate(terms)}
    cd = np.array([[coeff[(1, 0)][0], coeff[(0, 1)][0]], [coeff[(1, 0)][1], coeff[(0, 1)][1]]])
    w = WCS(naxis=2)
    w.wcs.crpix = crpix
    w.wcs.crval = [ra0, dec0]
    w.wcs.cd = cd
    w.wcs.radesys = "ICRS"
    w.wcs.cunit = ["deg", "deg"]
    if degree >= 2:
        inv = np.linalg.inv(cd)
        sip_a = np.zeros((degree + 1, degree + 1))
        sip_b = np.zeros((degree + 1, degree + 1))
        for (p, q), (ca, cb) in coeff.items():
            if p + q >= 2:
                sip_a[p, q] = inv[0, 0] * ca + inv[0, 1] * cb
                sip_b[p, q] = inv[1, 0] * ca + inv[1, 1] * cb
        w.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
        w.sip = Sip(sip_a, sip_b, None, None, crpix)
    else:
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.pixel_shape = (nx, ny)
    w.wcs.set()
    return w


def _fit_best_order(
    xy, sky: SkyCoord, max_degree: int, shape: tuple[int, int], weights: np.ndarray
) -> WCS:
    """TAN or TAN-SIP fit whose distortion order the data support (Bayesian information).

    Few stars with noisy centroids cannot constrain an order-3 distortion: the fit would bend
    the corners. BIC = 2 n ln(mean squared residual) + k ln(2 n) with k = 6 + SIP terms.
    """
    n = len(sky)
    best, best_bic = None, np.inf
    for degree in range(1, max_degree + 1):
        k = 2 * len(_terms(degree))
        if 2 * n < 2 * k:
            break
        wcs = fit_tan_sip(xy[0], xy[1], sky.ra.deg, sky.dec.deg, shape, degree, weights)
        px, py = wcs.all_world2pix(sky.ra.deg, sky.dec.deg, 0)
        mse = np.sum(weights * ((px - xy[0]) ** 2 + (py - xy[1]) ** 2)) / (2.0 * weights.sum())
        bic = 2 * n * np.log(max(mse, 1e-12)) + k * np.log(2 * n)
        if bic < best_bic:
            best, best_bic = wcs, bic
    if best is None:
        raise ValueError(f"only {n} stars: too few for a TAN fit")
    return best


def _nearest_neighbour_distance(x: np.ndarray, y: np.ndarray, within: float) -> np.ndarray:
    """Distance from each point to its nearest other point; infinite beyond ``within``.

    A sweep along x: after sorting, the k-th following point is compared for k = 1, 2, ...
    until no pair is closer than ``within`` in x. Cost grows with the number of points per
    strip of width ``within``, not with the square of the number of points.
    """
    n = len(x)
    order = np.argsort(x)
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    best = np.full(n, np.inf)
    for k in range(1, n):
        dx = xs[k:] - xs[:-k]
        close = dx <= within
        if not close.any():
            break
        d = np.where(close, np.hypot(dx, ys[k:] - ys[:-k]), np.inf)
        np.minimum(best[:-k], d, out=best[:-k])
        np.minimum(best[k:], d, out=best[k:])
    best[best > within] = np.inf
    distance = np.empty(n)
    distance[order] = best
    return distance


def refine_wcs(
    data: np.ndarray,
    wcs: WCS,
    catalogue: Table,
    mask: np.ndarray | None = None,
    mag_column: str = "rmag",
    mag_range: tuple[float, float] = (8.0, 18.0),
    box_size: int = 15,
    isolation_px: float = 12.0,
    sip_degree: int = 3,
) -> tuple[WCS, Table]:
    """Refine a WCS with centroids of every isolated, unmasked reference star in the frame.

    Parameters
    ----------
    data : numpy.ndarray
        Calibrated image.
    wcs : astropy.wcs.WCS
        Starting solution (``solve-field``'s).
    catalogue : astropy.table.Table
        Reference stars (``RA_ICRS``, ``DE_ICRS`` and ``mag_column``).
    mask : numpy.ndarray, optional
        Pixels not to use (saturated, hot).
    mag_column : str
        Magnitude used to select stars within ``mag_range``.
    mag_range : tuple of float
        Brightest and faintest magnitude used (saturated stars are masked anyway).
    box_size : int
        Search box (pixels): windowed centroids (SExtractor's XWIN) that wander further than a
        third of it from the predicted position are discarded.
    isolation_px : float
        Reference stars closer than this to another are skipped.
    sip_degree : int
        Highest order of the SIP distortion; a lower one (or none) is used when the stars do not
        support it (Bayesian information criterion).

    Returns
    -------
    wcs : astropy.wcs.WCS
        Refined TAN-SIP solution, reference pixel at the image centre.
    matched : astropy.table.Table
        ``x``, ``y`` (measured, 0-based), ``ra``, ``dec`` (catalogue), ``dx``, ``dy`` (fit
        residuals in pixels), ``residual_arcsec``.
    """
    ny, nx = data.shape
    centre = wcs.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
    radius = 0.6 * np.hypot(nx, ny) * np.mean(proj_plane_pixel_scales(wcs))
    stars = select_around(catalogue, centre.ra.deg, centre.dec.deg, radius)
    mags = np.asarray(stars[mag_column], dtype=float)
    stars = stars[(mags > mag_range[0]) & (mags < mag_range[1])]
    x, y = wcs.all_world2pix(
        np.asarray(stars["RA_ICRS"]), np.asarray(stars["DE_ICRS"]), 0, quiet=True
    )
    edge = box_size
    inside = (x > edge) & (x < nx - 1 - edge) & (y > edge) & (y < ny - 1 - edge)
    stars, x, y = stars[inside], x[inside], y[inside]
    if len(stars) < 6:
        raise ValueError(f"only {len(stars)} reference stars in the frame")
    iso = _nearest_neighbour_distance(x, y, isolation_px) > isolation_px
    stars, x, y = stars[iso], x[iso], y[iso]
    if mask is not None:
        half = box_size // 2
        clean = np.array(
            [
                not mask[
                    int(round(yy)) - half : int(round(yy)) + half + 1,
                    int(round(xx)) - half : int(round(xx)) + half + 1,
                ].any()
                for xx, yy in zip(x, y, strict=True)
            ],
            dtype=bool,
        )
        stars, x, y = stars[clean], x[clean], y[clean]
    # A coarse background (block medians of every 4th pixel) is enough for centroids.
    step = 4
    box = max(32, min(nx, ny) // 8) // step
    sample = np.asarray(data[::step, ::step], dtype=np.float32)
    if mask is not None:
        sample = np.where(mask[::step, ::step], np.float32(np.nan), sample)
    sample = np.nan_to_num(sample, nan=float(np.nanmedian(sample)))
    coarse = coarse_background(sample, box)
    residual = data - np.repeat(np.repeat(coarse, step, axis=0), step, axis=1)[:ny, :nx]
    sky_rms = float(mad_std(residual[::step, ::step], ignore_nan=True))
    brightest = np.argsort(np.asarray(stars[mag_column], dtype=float))[:30]
    fwhm = half_max_fwhm(residual, x[brightest], y[brightest])
    if not np.isfinite(fwhm):
        raise ValueError("no star to measure the FWHM on")
    cx, cy = windowed_centroids(residual, x, y, fwhm)
    good = np.isfinite(cx) & np.isfinite(cy) & (np.hypot(cx - x, cy - y) < box_size / 3)
    if good.sum() < 3 * (sip_degree + 1):
        raise ValueError(f"only {good.sum()} reference stars could be centroided")
    sky = SkyCoord(
        np.asarray(stars["RA_ICRS"][good]) * u.deg, np.asarray(stars["DE_ICRS"][good]) * u.deg
    )
    xy = (cx[good], cy[good])
    # Centroid error ~ (FWHM / 2.355) / (signal-to-noise), sky-limited, with a floor.
    flux = np.array(
        [
            residual[
                int(round(yy)) - 2 : int(round(yy)) + 3, int(round(xx)) - 2 : int(round(xx)) + 3
            ].sum()
            for xx, yy in zip(*xy, strict=True)
        ]
    ) * (np.pi * fwhm**2 / 25.0)
    noise = sky_rms * np.sqrt(np.pi) * fwhm
    snr = np.clip(flux / noise, 1.0, None)
    weights = 1.0 / ((fwhm / 2.355 / snr) ** 2 + 0.005**2)
    refined = _fit_best_order(xy, sky, sip_degree, (ny, nx), weights)
    # One round of 3-sigma outlier rejection (blends, cosmic rays, proper motion).
    px, py = refined.world_to_pixel(sky)
    res = np.hypot(px - xy[0], py - xy[1])
    keep = res < max(3.0 * np.sqrt(np.mean(res**2)), 0.05)
    if (~keep).any() and keep.sum() >= 12:
        sky, xy, weights = sky[keep], (xy[0][keep], xy[1][keep]), weights[keep]
        refined = _fit_best_order(xy, sky, sip_degree, (ny, nx), weights)
    refined.pixel_shape = (nx, ny)
    px, py = refined.world_to_pixel(sky)
    scale = np.mean(proj_plane_pixel_scales(refined)) * 3600.0
    matched = Table(
        {
            "x": xy[0],
            "y": xy[1],
            "ra": sky.ra.deg,
            "dec": sky.dec.deg,
            "dx": xy[0] - px,
            "dy": xy[1] - py,
        }
    )
    matched["residual_arcsec"] = np.hypot(matched["dx"], matched["dy"]) * scale
    matched.meta["FWHM_ARCSEC"] = float(fwhm * scale)
    return refined, matched


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


def matches_from_corr(corr: Table, wcs: WCS, pixel_scale: float) -> Table:
    """The matched stars of solve-field's ``.corr`` file with their residuals in ``wcs``.

    Parameters
    ----------
    corr : astropy.table.Table
        solve-field's correspondences (``field_x/y`` 1-based, ``index_ra/dec``).
    wcs : astropy.wcs.WCS
        The solution.
    pixel_scale : float
        Arcsec per pixel, for ``residual_arcsec``.

    Returns
    -------
    astropy.table.Table
        ``x``, ``y`` (0-based), ``ra``, ``dec``, ``dx``, ``dy``, ``residual_arcsec``.
    """
    matched = Table(
        {
            "x": np.asarray(corr["field_x"], float) - 1,
            "y": np.asarray(corr["field_y"], float) - 1,
            "ra": np.asarray(corr["index_ra"], float),
            "dec": np.asarray(corr["index_dec"], float),
        }
    )
    px, py = wcs.all_world2pix(matched["ra"], matched["dec"], 0)
    matched["dx"], matched["dy"] = matched["x"] - px, matched["y"] - py
    matched["residual_arcsec"] = np.hypot(matched["dx"], matched["dy"]) * pixel_scale
    return matched


def attach_wcs(ccd: CCDData, wcs: WCS, status: SolveStatus) -> CCDData:
    """The frame with its WCS in the header (and ``.wcs``) and the astrometry's QC keywords."""
    header = ccd.meta.copy() if isinstance(ccd.meta, fits.Header) else fits.Header(ccd.meta)
    for key in list(header):
        if key.startswith(
            (
                "A_",
                "B_",
                "AP_",
                "BP_",
                "PV",
                "CD",
                "PC",
                "CRPIX",
                "CRVAL",
                "CTYPE",
                "CUNIT",
                "CDELT",
                "WCSAXES",
                "LONPOLE",
                "LATPOLE",
            )
        ):
            header.remove(key, ignore_missing=True, remove_all=True)
    header.update(wcs.to_header(relax=True))
    header["ASTRMS"] = (round(status.rms_arcsec, 4), "[arcsec] RMS residual of reference stars")
    header["ASTNMAT"] = (status.n_matches, "reference stars in the astrometric fit")
    header["ASTSCALE"] = (round(status.pixel_scale, 5), "[arcsec/px] solved pixel scale")
    header.add_history("aifa-steps: astrometry (solve-field 2 passes, SIP refinement)")
    return CCDData(
        ccd.data,
        unit=ccd.unit,
        meta=header,
        wcs=wcs,
        mask=ccd.mask,
        uncertainty=ccd.uncertainty,
        flags=ccd.flags,
    )


def residual_figure(
    matched: Table, shape: tuple[int, int], path: str | Path, title: str = "", scale: float = 200.0
) -> None:
    """Residual vectors of the reference stars over the field, coloured by size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ny, nx = shape
    fig, ax = plt.subplots(figsize=(8, 8 * ny / nx + 1))
    if len(matched):
        q = ax.quiver(
            matched["x"],
            matched["y"],
            matched["dx"] * scale,
            matched["dy"] * scale,
            matched["residual_arcsec"],
            angles="xy",
            scale_units="xy",
            scale=1,
            cmap="viridis",
            width=0.003,
        )
        fig.colorbar(q, ax=ax, label="residual [arcsec]", shrink=0.8)
        rms = np.sqrt(np.mean(np.square(matched["residual_arcsec"])))
        title = f"{title}  {len(matched)} stars, RMS {rms:.3f} arcsec (vectors x{scale:g})"
    ax.set_xlim(0, nx)
    ax.set_ylim(0, ny)
    ax.set_aspect("equal")
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
    plt.close(fig)


def _shape_of(matched: Table) -> tuple[int, int]:
    """Image shape recorded with the matched stars (or their extent)."""
    if "NAXIS1" in matched.meta:
        return int(matched.meta["NAXIS2"]), int(matched.meta["NAXIS1"])
    return (
        int(np.ceil(max(matched["y"].max(), 1))) + 1,
        int(np.ceil(max(matched["x"].max(), 1))) + 1,
    )


def astrometry_report(
    status: Table,
    match_files: list[str | Path],
    table_path: str | Path,
    figure_path: str | Path,
    residual_dir: str | Path,
) -> None:
    """Write the night's status table, the quality figure and a residual plot per target.

    Parameters
    ----------
    status : astropy.table.Table
        One row per frame (see `SolveStatus`).
    match_files : list of path
        Matched-star tables, named ``<stem>.ecsv``, in any order.
    table_path, figure_path : path
        Outputs: ``astrometry/status.ecsv`` and the figure.
    residual_dir : path
        Folder for one residual plot per object (the frame with the median RMS).

    See Also
    --------
    residual_plots : the residual plot of every solved frame.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    status.sort("stem")
    write_table(status, table_path)
    fig, axes = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    index = np.arange(len(status))
    solved = np.asarray(status["solved"], dtype=bool)
    axes[0].plot(index[solved], status["rms_arcsec"][solved], "o", ms=3, label="solved")
    axes[0].set_ylabel("RMS residual [arcsec]")
    axes[1].plot(index[solved], status["n_matches"][solved], "o", ms=3)
    axes[1].plot(index[~solved], np.zeros((~solved).sum()), "rx", ms=8, label="failed")
    axes[1].set_ylabel("reference stars")
    axes[1].set_xlabel("frame (in order of name)")
    axes[1].legend(fontsize=8)
    axes[0].set_title(f"{solved.sum()} of {len(status)} frames solved")
    failed = [f"failed: {r['stem']}: {r['reason']}" for r in status[~solved]]
    if failed:
        fig.text(0.01, 0.005, "\n".join(failed[:8]), fontsize=7, va="bottom", color="C3")
        fig.tight_layout(rect=(0, 0.03 * min(len(failed), 8) + 0.02, 1, 1))
    else:
        fig.tight_layout()
    save_figure(fig, figure_path, dpi=100)
    plt.close(fig)

    residual_dir = Path(residual_dir)
    residual_dir.mkdir(parents=True, exist_ok=True)
    files = _match_files_by_stem(match_files)
    objects: dict[str, list] = {}
    name = "target" if "target" in status.colnames else "object"
    for row in status[solved]:
        key = str(row[name]) if name in status.colnames else "frames"
        objects.setdefault(key, []).append(row)
    for obj, rows in objects.items():
        rows.sort(key=lambda r: r["rms_arcsec"])
        typical = rows[len(rows) // 2]
        matched = Table.read(files[typical["stem"]])
        residual_figure(
            matched, _shape_of(matched), residual_dir / f"{obj}.png", title=typical["stem"]
        )


def _match_files_by_stem(match_files: list[str | Path]) -> dict[str, Path]:
    return {Path(p).name.removesuffix(".ecsv"): Path(p) for p in match_files}


def residual_plots(status: Table, match_files: list[str | Path], plot_dir: str | Path) -> int:
    """Write the residual-vector plot of every solved frame as ``<plot_dir>/<stem>.png``.

    Kept apart from `astrometry_report`, whose status table the later steps wait for: the
    plots of a long night take minutes and need not hold anything up.

    Parameters
    ----------
    status : astropy.table.Table
        One row per frame (see `SolveStatus`).
    match_files : list of path
        Matched-star tables, named ``<stem>.ecsv``, in any order.
    plot_dir : path
        Output folder (created).

    Returns
    -------
    int
        Number of plots written.
    """
    plot_dir = Path(plot_dir)
    plot_dir.mkdir(parents=True, exist_ok=True)
    files = _match_files_by_stem(match_files)
    solved = status[np.asarray(status["solved"], dtype=bool)]
    for row in solved:
        matched = Table.read(files[row["stem"]])
        residual_figure(
            matched, _shape_of(matched), plot_dir / f"{row['stem']}.png", title=row["stem"]
        )
    return len(solved)


#: Source Extractor output columns that ``solve-field`` reads from the source list.
SOURCE_COLUMNS = ("X_IMAGE", "Y_IMAGE", "MAG_AUTO", "FLUX_AUTO")
#: Source Extractor's default 3x3 detection filter (a Gaussian of FWHM 2 px).
DETECTION_FILTER = "CONV NORM\n1 2 1\n2 4 2\n1 2 1\n"


def solve_field_passes(
    frame: str | Path,
    config: str | Path,
    workdir: str | Path,
    pixel_scale: float,
    shape: tuple[int, int],
    scale_tolerance: float = 0.02,
    ra: float | None = None,
    dec: float | None = None,
    radius: float = 1.0,
    sip_order: int = 3,
    cpulimit: float = 60.0,
    verify_config: str | Path | None = None,
) -> tuple[list[str], list[str], list[str]]:
    """Commands of one frame's astrometry: source list, then two ``solve-field`` passes.

    The workflow's shell rule ``solve_field`` runs the same commands.

    1. Source Extractor runs once on the science plane (``frame[0]``; the uncertainty, mask and
       flag planes of a calibrated frame are not images of the sky) and writes ``sources.fits``.
    2. Pass 1 solves that list blindly with scale and position hints.
    3. Pass 2 verifies pass 1's ``p1.wcs`` with all sources and tweaks a SIP distortion of
       ``sip_order``.

    Both passes read the same source list, so the frame is searched for stars once.

    Parameters
    ----------
    frame : path
        Calibrated frame; its primary HDU holds the image.
    config : path
        astrometry.net configuration of pass 1 (`write_solver_config`).
    workdir : path
        Folder for the source list and the solutions ``p1.wcs``/``p1.corr`` and
        ``p2.wcs``/``p2.corr``. The Source Extractor parameter and filter files are written
        here now.
    pixel_scale : float
        Expected pixel scale (arcsec).
    shape : tuple of int
        Image shape (ny, nx).
    scale_tolerance : float
        Accepted relative deviation of the pixel scale.
    ra, dec, radius : float, optional
        Pointing hint (deg); no hint when ra or dec is None or not finite.
    sip_order : int
        SIP order that pass 2 tweaks.
    cpulimit : float
        CPU seconds per pass.
    verify_config : path, optional
        Configuration of pass 2, e.g. with only the densest index (`write_solver_config`);
        ``config`` when not given.

    Returns
    -------
    sources, pass1, pass2 : list of str
        Argument lists (program first).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "xy.param").write_text("\n".join(SOURCE_COLUMNS) + "\n")
    (workdir / "xy.conv").write_text(DETECTION_FILTER)
    source_list = workdir / "sources.fits"
    sources = [
        "source-extractor",
        f"{frame}[0]",
        "-CATALOG_NAME",
        str(source_list),
        "-CATALOG_TYPE",
        "FITS_1.0",
        "-PARAMETERS_NAME",
        str(workdir / "xy.param"),
        "-FILTER_NAME",
        str(workdir / "xy.conv"),
        "-VERBOSE_TYPE",
        "QUIET",
    ]
    ny, nx = shape
    common = [
        "solve-field",
        "--dir",
        str(workdir),
        "--overwrite",
        "--no-plots",
        "--new-fits",
        "none",
        "--temp-axy",
        "--index-xyls",
        "none",
        "--rdls",
        "none",
        "--match",
        "none",
        "--width",
        str(nx),
        "--height",
        str(ny),
        "--x-column",
        "X_IMAGE",
        "--y-column",
        "Y_IMAGE",
        "--sort-column",
        "MAG_AUTO",
        "--sort-ascending",
        "--scale-units",
        "arcsecperpix",
        "--scale-low",
        f"{pixel_scale * (1 - scale_tolerance):.5f}",
        "--scale-high",
        f"{pixel_scale * (1 + scale_tolerance):.5f}",
        "--crpix-center",
        "--cpulimit",
        str(int(cpulimit)),
        "--no-remove-lines",
    ]
    if ra is not None and dec is not None and np.isfinite(ra) and np.isfinite(dec):
        common += ["--ra", f"{ra:.6f}", "--dec", f"{dec:.6f}", "--radius", str(radius)]
    pass1 = [
        *common,
        "--config",
        str(config),
        "--out",
        "p1",
        "--no-verify",
        "--uniformize",
        "0",
        "--tweak-order",
        "2",
        "--corr",
        str(workdir / "p1.corr"),
        "--wcs",
        str(workdir / "p1.wcs"),
        str(source_list),
    ]
    pass2 = [
        *common,
        "--config",
        str(verify_config or config),
        "--out",
        "p2",
        "--verify",
        str(workdir / "p1.wcs"),
        "--no-verify-uniformize",
        "--objs",
        "1000000",
        "--tweak-order",
        str(sip_order),
        "--corr",
        str(workdir / "p2.corr"),
        "--wcs",
        str(workdir / "p2.wcs"),
        str(source_list),
    ]
    return sources, pass1, pass2
