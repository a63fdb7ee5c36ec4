"""Solve time of one frame: the source list, both solve-field passes, the SIP refinement.

The source list and the passes run through workflow/scripts/solve_field.sh, as in the workflow
(prints numbers).

Usage: .venv/bin/python bench/bench_astrometry.py [--preset full] [--object Qatar-1]
Renders one light frame of the preset with the simulator, calibrates it with the true masters,
builds index files from the simulated reference catalogue, then times each stage.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from aifa_steps.astrometry.index import (
    build_indexes,
    index_scales,
    verify_index_scale,
    write_solver_config,
)
from aifa_steps.astrometry.refine import refine_wcs
from aifa_steps.astrometry.solve import read_solution, run_solve_field, solve_field_command
from aifa_steps.simulate import get_preset, plan_night
from aifa_steps.simulate.detector import make_detector
from aifa_steps.simulate.headers import nina_header
from aifa_steps.simulate.night import render_light
from aifa_steps.simulate.sky import make_catalogue, make_refcat

#: The one solve-field implementation (the workflow's rule solve_field runs it too).
SOLVE_FIELD_SH = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "solve_field.sh"


def separation(a, b, shape):
    ny, nx = shape
    xs, ys = np.meshgrid(np.linspace(0, nx - 1, 25), np.linspace(0, ny - 1, 25))
    sep = a.pixel_to_world(xs.ravel(), ys.ravel()).separation(
        b.pixel_to_world(xs.ravel(), ys.ravel())
    )
    return float(np.sqrt(np.mean(sep.arcsec**2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="full")
    parser.add_argument("--object", default="Qatar-1")
    args = parser.parse_args()
    preset = get_preset(args.preset)
    plans, transit = plan_night(preset, 1)
    plan = next(p for p in plans if p.object == args.object)
    catalogue = make_catalogue(np.random.default_rng(1), preset)
    refcat = make_refcat(np.random.default_rng(2), catalogue, preset.refcat_limit_r)
    det = make_detector(np.random.default_rng(3), preset.shape, preset.instrument, ("g", "r", "i"))
    host = int(catalogue["id"][catalogue["role"] == "target"][0])
    raw, truth = render_light(plan, preset, det, catalogue, transit, host, np.random.default_rng(4))
    data = (raw - det.bias - det.dark_rate * plan.exptime) / det.flats[plan.filter]
    ny, nx = preset.shape
    scale = preset.instrument.pixel_scale
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frame = tmp / "frame.fits"
        fits.PrimaryHDU(data.astype(np.float32), nina_header(plan, preset)).writeto(frame)
        t = time.perf_counter()
        scales = index_scales(nx * scale / 60, ny * scale / 60)
        files = build_indexes(refcat, tmp / "index", scales)
        t_index = time.perf_counter() - t
        write_solver_config(tmp / "solver.cfg", [tmp / "index"])
        fine = verify_index_scale(nx * scale / 60, ny * scale / 60, scales)
        write_solver_config(tmp / "verify.cfg", [], index_files=[files[scales.index(fine)]])
        outputs = (tmp / "frame.wcs", tmp / "frame.corr", tmp / "frame.xyls")
        hint = f"--ra {plan.ra_header:.6f} --dec {plan.dec_header:.6f} --radius 1.0"

        def command(**kwargs):
            return solve_field_command(
                SOLVE_FIELD_SH,
                frame,
                tmp / "solver.cfg",
                tmp / "verify.cfg",
                outputs,
                (ny, nx),
                scale,
                hint=hint,
                **kwargs,
            )

        t = time.perf_counter()
        run_solve_field(command(solve=False))  # the source list only
        t0 = time.perf_counter() - t
        t = time.perf_counter()
        said = run_solve_field(command(sources=outputs[2]))  # both passes on that list
        t12 = time.perf_counter() - t
        passes = [line for line in said.splitlines() if line.startswith("solution")]
        solution = read_solution(outputs[0])
        # Floor: reading the frame (any solution must look at every pixel once).
        t = time.perf_counter()
        float(np.sum(fits.getdata(frame, memmap=False)))
        t_floor = time.perf_counter() - t
        t = time.perf_counter()
        refined, matched = refine_wcs(data, solution, refcat, mag_column=f"{plan.filter}mag")
        t3 = time.perf_counter() - t
    truth_wcs: WCS = truth
    print(
        f"{args.preset} frame {nx} x {ny} of {args.object}: index build {t_index:.1f} s "
        f"(once per night)"
    )
    print(
        f"  sources {t0:.1f} s, solve-field passes 1 and 2 {t12:.1f} s, refinement "
        f"{t3:.1f} s ({len(matched)} stars); total {t0 + t12 + t3:.1f} s per frame"
    )
    print(
        f"  both passes with their source list {t0 + t12:.1f} s (goal <= 5 s); floor: "
        f"reading the frame {t_floor:.2f} s"
    )
    print(
        f"  accuracy against the true WCS: {passes[-1] if passes else 'solution: ?'} "
        f"{separation(solution, truth_wcs, (ny, nx)):.3f} arcsec RMS, refined "
        f"{separation(refined, truth_wcs, (ny, nx)):.3f} arcsec RMS"
    )


if __name__ == "__main__":
    main()
