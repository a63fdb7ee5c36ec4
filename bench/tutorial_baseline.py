"""A tutorial-style reduction of a night: the baseline that the workflow is measured against.

What a student's script following the lab-course tutorial does (see SCIENCE.md, steps 2-9),
one step after the other and one frame at a time, on one core:

1. **masters**: master bias (``ccdproc.combine``, sigma-clipped average), master dark (bias
   subtracted, 5 sigma clipping around the median with the MAD std), master flat per filter
   (bias and exposure-scaled dark subtracted, each flat scaled by 1 / median, 5 sigma);
2. **calibration**: ``subtract_bias``, ``subtract_dark`` (scaled by exposure time),
   ``flat_correct``, float32, one calibrated FITS file per light frame;
3. **astrometry**: two ``solve-field`` passes per frame, called directly: pass 1 with scale
   and pointing hints, ``--downsample 4 --crpix-center --no-verify --tweak-order 2
   --resort``; pass 2 ``--verify`` pass 1's WCS, ``--no-verify-uniformize --objs 1000000
   --tweak-order 3``; frames that fail are skipped;
4. **photometry** of the transit target only: ``Background2D`` (box 300, filter 3, median),
   aperture sums of 4, 6, 8, 10 arcsec (``CircularAperture`` from sky positions, with
   ``aperture_photometry``) at the catalogue positions of the target and of comparison stars
   around it, plus the background in the same apertures; one table for the night.

No stacks, no quality control, no bad-pixel masks, no uncertainty planes beyond ccdproc's.
Each stage's wall time is measured with ``time.perf_counter``.

The index files: a folder given with ``--index-dir`` (e.g. ``<work>/astrometry/index`` of a
workflow run on the same night, so both use the same indexes), else the configuration's
``astrometry.index_dirs``.

Usage::

    python bench/tutorial_baseline.py NIGHT/config.yaml WORK --index-dir OTHER_WORK/astrometry/index
"""

from __future__ import annotations

import os

# One core, as a plain script on a laptop would mostly use: set before numpy is imported.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_name] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import astropy.units as u  # noqa: E402
import ccdproc  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from astropy.coordinates import SkyCoord  # noqa: E402
from astropy.io import fits  # noqa: E402
from astropy.nddata import CCDData  # noqa: E402
from astropy.stats import mad_std  # noqa: E402
from astropy.table import Table, vstack  # noqa: E402
from astropy.utils.exceptions import AstropyWarning  # noqa: E402
from astropy.wcs import WCS, FITSFixedWarning  # noqa: E402
from photutils.aperture import SkyCircularAperture, aperture_photometry  # noqa: E402
from photutils.background import Background2D, MedianBackground  # noqa: E402

STAGES = ("masters", "calibration", "astrometry", "photometry")
RADII_ARCSEC = (4.0, 6.0, 8.0, 10.0)
SIGMA = 5.0  # the tutorial's clipping of masters (low and high)
COMPARISON_RADIUS_ARCMIN = 5.0  # comparison stars around the transit target
COMPARISONS = 20  # the brightest this many


def _read(path: Path) -> CCDData:
    """A raw frame as CCDData in ADU."""
    return CCDData.read(path, unit="adu")


def _combine(frames: list[CCDData], scale: object = None) -> CCDData:
    """The tutorial's sigma-clipped average (5 sigma, median centre, MAD std)."""
    return ccdproc.combine(
        frames,
        method="average",
        scale=scale,
        sigma_clip=True,
        sigma_clip_low_thresh=SIGMA,
        sigma_clip_high_thresh=SIGMA,
        sigma_clip_func=np.ma.median,
        sigma_clip_dev_func=mad_std,
        mem_limit=2e9,
        dtype=np.float32,
    )


def _inv_median(data: np.ndarray) -> float:
    """Scale of one flat: 1 / median."""
    return 1.0 / np.ma.median(data)


def make_masters(raw: Path, work: Path) -> tuple[CCDData, CCDData, dict[str, CCDData]]:
    """Master bias, master dark (bias subtracted) and master flat per filter, written to disk.

    Parameters
    ----------
    raw : pathlib.Path
        The night folder (``BIAS/``, ``DARK/``, ``FLAT/``, ``LIGHT/``).
    work : pathlib.Path
        Output folder; the masters go to ``work/masters``.

    Returns
    -------
    tuple
        Master bias, master dark and a dict filter -> normalised master flat.
    """
    out = work / "masters"
    out.mkdir(parents=True, exist_ok=True)
    bias = _combine([_read(p) for p in sorted((raw / "BIAS").glob("*.fits"))])
    bias.write(out / "bias.fits", overwrite=True)
    darks = [ccdproc.subtract_bias(_read(p), bias) for p in sorted((raw / "DARK").glob("*.fits"))]
    dark = _combine(darks)
    dark.meta["EXPTIME"] = darks[0].header["EXPTIME"]
    dark.write(out / "dark.fits", overwrite=True)
    by_filter: dict[str, list[CCDData]] = defaultdict(list)
    for path in sorted((raw / "FLAT").glob("*.fits")):
        flat = ccdproc.subtract_bias(_read(path), bias)
        flat = ccdproc.subtract_dark(
            flat, dark, exposure_time="EXPTIME", exposure_unit=u.s, scale=True
        )
        by_filter[str(flat.header["FILTER"]).strip()].append(flat)
    flats = {}
    for band, frames in by_filter.items():
        flats[band] = _combine(frames, scale=_inv_median)
        flats[band].write(out / f"flat_{band}.fits", overwrite=True)
    return bias, dark, flats


def calibrate(
    raw: Path, work: Path, bias: CCDData, dark: CCDData, flats: dict[str, CCDData]
) -> list[Path]:
    """Calibrate every light frame with ccdproc and write it (float32); return the files."""
    out = work / "calibrated"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted((raw / "LIGHT").glob("*.fits")):
        ccd = _read(path)
        band = str(ccd.header["FILTER"]).strip()
        if band not in flats:
            continue
        ccd = ccdproc.subtract_bias(ccd, bias)
        ccd = ccdproc.subtract_dark(
            ccd, dark, exposure_time="EXPTIME", exposure_unit=u.s, scale=True
        )
        ccd = ccdproc.flat_correct(ccd, flats[band])
        ccd.data = ccd.data.astype(np.float32)
        target = out / path.name
        ccd.write(target, overwrite=True)
        written.append(target)
    return written


def solver_config(path: Path, index_dirs: list[Path], cpulimit: int) -> Path:
    """An astrometry.net configuration with the index folders (0.93 has no --index-dir)."""
    lines = [f"cpulimit {cpulimit}"] + [f"add_path {Path(d).resolve()}" for d in index_dirs]
    path.write_text("\n".join([*lines, "autoindex", ""]))
    return path


def solve(
    frame: Path, out: Path, cfg: Path, scale: tuple[float, float], radius: float
) -> Path | None:
    """Both solve-field passes on one calibrated frame; return the best WCS file or None."""
    header = fits.getheader(frame)
    stem = frame.stem
    common = [
        "solve-field",
        "--config",
        str(cfg),
        "--dir",
        str(out),
        "--overwrite",
        "--no-plots",
        "--new-fits",
        "none",
        "--scale-units",
        "arcsecperpix",
        "--scale-low",
        f"{scale[0]}",
        "--scale-high",
        f"{scale[1]}",
        "--ra",
        f"{float(header['RA'])}",
        "--dec",
        f"{float(header['DEC'])}",
        "--radius",
        f"{radius}",
        "--downsample",
        "4",
        "--crpix-center",
        "--resort",
    ]
    pass1 = out / f"{stem}_pass1.wcs"
    subprocess.run(
        [*common, "--out", f"{stem}_pass1", "--no-verify", "--tweak-order", "2", str(frame)],
        capture_output=True,
    )
    if not pass1.exists():
        return None
    pass2 = out / f"{stem}_pass2.wcs"
    subprocess.run(
        [
            *common,
            "--out",
            f"{stem}_pass2",
            "--verify",
            str(pass1),
            "--no-verify-uniformize",
            "--objs",
            "1000000",
            "--tweak-order",
            "3",
            str(frame),
        ],
        capture_output=True,
    )
    return pass2 if pass2.exists() else pass1


def astrometry(
    frames: list[Path], work: Path, index_dirs: list[Path], config: dict
) -> dict[Path, Path]:
    """Solve every calibrated frame (two passes); return frame -> WCS file of the solved ones."""
    out = work / "astrometry"
    out.mkdir(parents=True, exist_ok=True)
    astro = config.get("astrometry", {})
    cfg = solver_config(out / "astrometry.cfg", index_dirs, int(astro.get("cpulimit", 60)))
    pixel = float(config["instrument"]["pixel_scale"])
    tolerance = float(astro.get("scale_tolerance", 0.02))
    scale = (round(pixel * (1 - tolerance), 4), round(pixel * (1 + tolerance), 4))
    radius = float(astro.get("search_radius_deg", 1.0))
    solved = {}
    for frame in frames:
        wcs = solve(frame, out, cfg, scale, radius)
        if wcs is not None:
            solved[frame] = wcs
    return solved


def transit_stars(config: dict) -> tuple[str, SkyCoord]:
    """The transit target and the brightest catalogue stars around it (target first)."""
    name, target = next((n, t) for n, t in config["targets"].items() if t["kind"] == "transit")
    centre = SkyCoord(target["ra"] * u.deg, target["dec"] * u.deg)
    cat = Table.read(config["reference_catalogue"]["path"])
    stars = SkyCoord(cat["RA_ICRS"], cat["DE_ICRS"], unit="deg")
    sep = centre.separation(stars)
    near = (sep > 3 * u.arcsec) & (sep < COMPARISON_RADIUS_ARCMIN * u.arcmin)
    order = np.argsort(np.asarray(cat["rmag"][near], dtype=float))[:COMPARISONS]
    comparisons = stars[near][order]
    ra = np.concatenate([[centre.ra.deg], comparisons.ra.deg])
    dec = np.concatenate([[centre.dec.deg], comparisons.dec.deg])
    return name, SkyCoord(ra * u.deg, dec * u.deg)


def photometry(solved: dict[Path, Path], work: Path, config: dict) -> Table:
    """Aperture photometry of the transit target and its comparison stars on every frame."""
    name, stars = transit_stars(config)
    apertures = [SkyCircularAperture(stars, r * u.arcsec) for r in RADII_ARCSEC]
    rows = []
    for frame, wcs_file in solved.items():
        header = fits.getheader(frame)
        if str(header.get("OBJECT", "")).strip() != name:
            continue
        data = fits.getdata(frame, ext=0).astype(np.float64)
        wcs = WCS(fits.getheader(wcs_file))
        bkg = Background2D(data, (300, 300), filter_size=(3, 3), bkg_estimator=MedianBackground())
        pixel = [a.to_pixel(wcs) for a in apertures]
        sums = aperture_photometry(data - bkg.background, pixel)
        sky = aperture_photometry(bkg.background, pixel)
        table = Table({"frame": [frame.stem] * len(stars), "star": np.arange(len(stars))})
        table["date_obs"] = str(header["DATE-OBS"])
        for k, radius in enumerate(RADII_ARCSEC):
            table[f"flux_{radius:g}"] = sums[f"aperture_sum_{k}"]
            table[f"bkg_{radius:g}"] = sky[f"aperture_sum_{k}"]
        rows.append(table)
    result = vstack(rows) if rows else Table()
    result.write(work / "photometry.ecsv", overwrite=True)
    return result


def run_tutorial(
    raw_dir: str | Path,
    work_dir: str | Path,
    config: dict,
    index_dirs: list[str | Path] | None = None,
) -> dict[str, float]:
    """Reduce a night the tutorial's way and time each stage.

    Parameters
    ----------
    raw_dir : path
        The raw night (``BIAS/``, ``DARK/``, ``FLAT/``, ``LIGHT/``).
    work_dir : path
        Output folder (emptied first).
    config : dict
        The night's workflow configuration (instrument, targets, reference catalogue,
        astrometry settings).
    index_dirs : list of path, optional
        Folders of astrometry.net index files; default the configuration's
        ``astrometry.index_dirs``.

    Returns
    -------
    dict
        Stage (``masters``, ``calibration``, ``astrometry``, ``photometry``, ``total``) ->
        wall seconds, plus ``lights``, ``solved`` and ``measured`` (frame counts).
    """
    raw, work = Path(raw_dir), Path(work_dir)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    dirs = [Path(d) for d in (index_dirs or config.get("astrometry", {}).get("index_dirs", []))]
    times: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        warnings.simplefilter("ignore", FITSFixedWarning)
        start = time.perf_counter()
        bias, dark, flats = make_masters(raw, work)
        times["masters"] = time.perf_counter() - start
        start = time.perf_counter()
        frames = calibrate(raw, work, bias, dark, flats)
        times["calibration"] = time.perf_counter() - start
        start = time.perf_counter()
        solved = astrometry(frames, work, dirs, config)
        times["astrometry"] = time.perf_counter() - start
        start = time.perf_counter()
        table = photometry(solved, work, config)
        times["photometry"] = time.perf_counter() - start
    times["total"] = sum(times[s] for s in STAGES)
    times["lights"] = len(frames)
    times["solved"] = len(solved)
    times["measured"] = len(set(table["frame"])) if len(table) else 0
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="the night's config.yaml (raw_dir, targets)")
    parser.add_argument("work", type=Path, help="output folder (emptied first)")
    parser.add_argument("--raw", type=Path, help="raw night folder (default: raw_dir)")
    parser.add_argument("--index-dir", type=Path, nargs="*", default=None)
    parser.add_argument("--json", type=Path, help="write the stage times here")
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    raw = args.raw or Path(config["raw_dir"])
    times = run_tutorial(raw, args.work, config, args.index_dir)
    for key, value in times.items():
        print(f"{key:12s} {value:9.1f}")
    if args.json:
        args.json.write_text(json.dumps(times, indent=1))


if __name__ == "__main__":
    main()
