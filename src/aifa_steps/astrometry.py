"""Astrometry: index files for astrometry.net, and what follows a ``solve-field`` run.

``solve-field`` itself runs in a shell rule of the workflow (two passes: a blind solve with scale
and position hints, then a refinement with SIP distortion of order 3 that verifies the first
solution with all stars). This module builds index files from a catalogue, writes the
astrometry.net configuration, reads the solutions, refines them against the reference catalogue
with windowed 2-D Gaussian centroids of all unsaturated reference stars (a SIP fit of order 3,
`astropy.wcs.utils.fit_wcs_from_points`), judges their quality, and attaches them to the
calibrated frames.
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS
from astropy.wcs.utils import fit_wcs_from_points, proj_plane_pixel_scales

from .refcat import select_around

__all__ = [
    "index_scales",
    "build_indexes",
    "write_solver_config",
    "read_solution",
    "refine_wcs",
    "SolveStatus",
    "judge_solution",
    "attach_wcs",
    "residual_figure",
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
    source = outdir / "index_catalogue.fits"
    table.write(source, overwrite=True)
    files = []
    for k, scale in enumerate(scales):
        out = outdir / f"index-{scale:+d}.fits".replace("+", "p").replace("-", "m", 1)
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
            str(id_base + k),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(
                f"build-astrometry-index failed for scale {scale}: {proc.stderr[-2000:]}"
            )
        files.append(out)
    log.info("built %d index files from %d stars: scales %s", len(files), len(table), scales)
    return files


def write_solver_config(
    path: str | Path, index_dirs: list[str | Path], cpulimit: float = 60.0, parallel: bool = True
) -> None:
    """Write an astrometry.net configuration (``--config``) naming the index folders."""
    lines = ["# astrometry.net configuration written by aifa-steps"]
    if parallel:
        lines.append("inparallel")
    lines.append(f"cpulimit {int(cpulimit)}")
    lines += [f"add_path {Path(d).resolve()}" for d in index_dirs]
    lines.append("autoindex")
    Path(path).write_text("\n".join(lines) + "\n")


def read_solution(path: str | Path) -> WCS | None:
    """The WCS in a ``solve-field`` ``.wcs`` file, or None when the file is empty or missing."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        header = fits.getheader(path)
        return WCS(header)


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
        Centroiding box (pixels); the fit uses a 2-D Gaussian after removing a local background.
    isolation_px : float
        Reference stars closer than this to another are skipped.
    sip_degree : int
        Order of the SIP distortion fitted.

    Returns
    -------
    wcs : astropy.wcs.WCS
        Refined TAN-SIP solution, reference pixel at the image centre.
    matched : astropy.table.Table
        ``x``, ``y`` (measured, 0-based), ``ra``, ``dec`` (catalogue), ``dx``, ``dy`` (fit
        residuals in pixels), ``residual_arcsec``.
    """
    from photutils.background import Background2D
    from photutils.centroids import centroid_2dg, centroid_sources
    from scipy.spatial import cKDTree

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
    if len(stars) > 1:
        dist, _ = cKDTree(np.c_[x, y]).query(np.c_[x, y], k=2)
        iso = dist[:, 1] > isolation_px
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
    box = max(32, min(nx, ny) // 8)
    background = Background2D(data, (box, box), filter_size=3, mask=mask).background
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cx, cy = centroid_sources(
            data - background, x, y, box_size=box_size, centroid_func=centroid_2dg
        )
    good = np.isfinite(cx) & np.isfinite(cy) & (np.hypot(cx - x, cy - y) < box_size / 3)
    if good.sum() < 3 * (sip_degree + 1):
        raise ValueError(f"only {good.sum()} reference stars could be centroided")
    sky = SkyCoord(
        np.asarray(stars["RA_ICRS"][good]) * u.deg, np.asarray(stars["DE_ICRS"][good]) * u.deg
    )
    xy = (cx[good], cy[good])
    refined = fit_wcs_from_points(xy, sky, proj_point="center", sip_degree=sip_degree)
    # One round of 3-sigma outlier rejection (blends, cosmic rays, proper motion).
    px, py = refined.world_to_pixel(sky)
    res = np.hypot(px - xy[0], py - xy[1])
    keep = res < max(3.0 * np.sqrt(np.mean(res**2)), 0.05)
    if (~keep).any() and keep.sum() >= 3 * (sip_degree + 1):
        sky, xy = sky[keep], (xy[0][keep], xy[1][keep])
        refined = fit_wcs_from_points(xy, sky, proj_point="center", sip_degree=sip_degree)
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
    return SolveStatus(stem, not reason, reason, n, rms, scale, rotation)


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
    fig.savefig(path, dpi=90)
    plt.close(fig)
