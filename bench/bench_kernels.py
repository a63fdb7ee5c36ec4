"""Hot kernels on one full-size frame (4788 x 3194): time and memory against a floor.

Renders one Qatar-1 light frame with the simulator (true bias, dark, flat), then times:

- calibration with uncertainty (`calibrate_frame` + `write_ccd`); floor: reading the raw frame
  and plain float32 numpy ``(raw - bias - dark t) / flat``;
- background (`estimate_background`, two Background2D passes); floor: one numpy median of the
  frame;
- forced photometry of 1000 stars x 4 radii (`forced_photometry`, background given); floor:
  photutils ``aperture_photometry`` sums of the same apertures;
- a whole photometry job's science (`measure_frame`: background, photometry, aperture
  corrections, seeing);
- reprojection of the frame onto a shifted grid (`aifa_steps.products.resample.reproject_frame`,
  bilinear, as the stacks do; and ``reproject_interp`` for comparison); floor:
  ``scipy.ndimage.map_coordinates`` with the pixel mapping computed beforehand.

Master combination and solve-field have their own scripts (``bench_combine.py``,
``bench_astrometry.py``). Peak memory is the largest numpy allocation during the kernel
(tracemalloc), not the process.

Usage: .venv/bin/python bench/bench_kernels.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from aifa_steps.calibration.calibrate import calibrate_frame
from aifa_steps.calibration.detector import FrameDetector
from aifa_steps.calibration.masterset import Masters
from aifa_steps.core.frames import write_ccd
from aifa_steps.simulate import get_preset, plan_night
from aifa_steps.simulate.detector import make_detector
from aifa_steps.simulate.headers import nina_header
from aifa_steps.simulate.night import render_light
from aifa_steps.simulate.sky import make_catalogue, make_refcat


def timed(function: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """Best wall time of ``repeat`` runs, the peak traced memory (MB) and the last result."""
    best, peak, result = np.inf, 0.0, None
    for _ in range(repeat):
        tracemalloc.start()
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
        peak = max(peak, tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    return best, peak, result


def report(name: str, kernel: tuple, floor: tuple, goal: str = "") -> None:
    goal = f"  goal {goal}" if goal else ""
    print(
        f"{name:44s} {kernel[0]:7.2f} s {kernel[1]:7.0f} MB   floor {floor[0]:6.2f} s "
        f"({kernel[0] / floor[0]:5.1f} x){goal}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    preset = get_preset("full")
    inst = preset.instrument
    plans, transit = plan_night(preset, 1)
    plan = next(p for p in plans if p.object == "Qatar-1" and p.imagetyp == "LIGHT")
    catalogue = make_catalogue(np.random.default_rng(1), preset)
    refcat = make_refcat(np.random.default_rng(2), catalogue, preset.refcat_limit_r)
    det = make_detector(np.random.default_rng(3), preset.shape, inst, ("r",))
    host = int(catalogue["id"][catalogue["role"] == "target"][0])
    raw, wcs = render_light(plan, preset, det, catalogue, transit, host, np.random.default_rng(4))
    shape = raw.shape
    print(f"frame {shape[1]} x {shape[0]}, best of {args.repeat}; peak = traced numpy memory\n")

    def master(data: np.ndarray) -> CCDData:
        error = np.full(shape, 0.01, np.float32) * np.float32(np.median(data) or 1.0)
        return CCDData(data.astype(np.float32), unit="adu", uncertainty=StdDevUncertainty(error))

    dark = master(det.dark_rate * 60.0)
    dark.meta["EXPTIME"] = 60.0
    masters = Masters(
        bias=master(det.bias), darks={60.0: dark}, flats={"r": master(det.flats["r"])}
    )
    params = FrameDetector(gain=inst.gain, read_noise=inst.read_noise)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "raw.fits"
        header = nina_header(plan, preset)
        fits.PrimaryHDU(raw, header).writeto(path)  # uint16: BZERO 32768, as NINA writes
        bias32 = det.bias.astype(np.float32)
        rate32 = (det.dark_rate * plan.exptime).astype(np.float32)
        flat32 = det.flats["r"].astype(np.float32)

        def calibrate() -> CCDData:
            ccd = calibrate_frame(path, masters, "r", params)
            write_ccd(ccd, Path(tmp) / "calibrated.fits")
            return ccd

        def plain_calibration() -> np.ndarray:
            data = fits.getdata(path).astype(np.float32)
            return (data - bias32 - rate32) / flat32

        kernel = timed(calibrate, args.repeat)
        report(
            "calibration with uncertainty (+ write)",
            kernel,
            timed(plain_calibration, 3),
            "<= 0.5 s",
        )
        ccd = kernel[2]
    from aifa_steps.photometry.apertures import forced_photometry
    from aifa_steps.photometry.background import estimate_background

    data = np.asarray(ccd.data, np.float32)
    bad = ccd.flags > 0
    kernel = timed(lambda: estimate_background(data, bad), args.repeat)
    report("background (2 x Background2D)", kernel, timed(lambda: np.median(data), 3))
    background, rms = kernel[2]

    # The 1000 brightest reference stars on the frame.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # catalogue stars far off the frame do not converge
        x, y = wcs.world_to_pixel_values(refcat["RA_ICRS"], refcat["DE_ICRS"])
    inside = (x > 20) & (x < shape[1] - 20) & (y > 20) & (y < shape[0] - 20)
    stars = refcat[inside]
    stars = stars[np.argsort(np.asarray(stars["rmag"], float))[:1000]]
    ra, dec = np.asarray(stars["RA_ICRS"], float), np.asarray(stars["DE_ICRS"], float)
    unc = np.asarray(ccd.uncertainty.array, np.float32)
    radii = (4.0, 6.0, 8.0, 10.0)

    def photometry():
        return forced_photometry(
            data,
            unc,
            wcs,
            ra,
            dec,
            radii,
            background=background,
            background_rms=rms,
            flags=ccd.flags,
        )

    def plain_sums():
        from photutils.aperture import CircularAperture, aperture_photometry

        xy = np.column_stack(wcs.world_to_pixel_values(ra, dec))
        apertures = [CircularAperture(xy, r / inst.pixel_scale) for r in radii]
        return aperture_photometry(data - background, apertures)

    report(
        f"forced photometry {len(stars)} stars x 4 radii",
        timed(photometry, args.repeat),
        timed(plain_sums, 3),
    )

    from aifa_steps.core.observing import Site
    from aifa_steps.photometry.frame import FrameInfo, measure_frame

    ccd.wcs = wcs
    reference = stars.copy()
    reference.rename_columns(["RA_ICRS", "DE_ICRS"], ["ra", "dec"])
    reference["id"] = np.arange(1, len(reference) + 1)
    reference["isolated"] = np.ones(len(reference), bool)
    info = FrameInfo("bench", "Qatar-1", "r", plan.exptime, plan.mjd)
    site = Site("bench", 50.7275, 7.0863, 60.0)
    centre = (float(plan.ra_axis), float(plan.dec_axis))
    kernel = timed(lambda: measure_frame(ccd, reference, info, site, centre), args.repeat)
    report(
        "photometry job science (measure_frame)",
        kernel,
        timed(lambda: np.median(data), 3),
        "<= 1.5 s with background",
    )

    from reproject import reproject_interp
    from scipy.ndimage import map_coordinates

    from aifa_steps.products.resample import reproject_frame

    grid = wcs.deepcopy()
    grid.wcs.crpix = grid.wcs.crpix + np.array([3.37, -2.61])

    def reprojection():
        return reproject_frame(data, wcs, grid, shape, "bilinear")

    def reproject_package():
        return reproject_interp((data, wcs), grid, shape_out=shape, roundtrip_coords=False)

    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    src_x, src_y = wcs.world_to_pixel_values(*grid.pixel_to_world_values(xx, yy))
    coords = np.array([src_y, src_x], np.float32)
    del yy, xx, src_x, src_y
    floor = timed(lambda: map_coordinates(data, coords, order=1), 3)
    report("reprojection onto a shifted grid", timed(reprojection, args.repeat), floor)
    report("  the same with reproject_interp", timed(reproject_package, 1), floor)


if __name__ == "__main__":
    main()
