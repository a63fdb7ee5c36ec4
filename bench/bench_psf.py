"""PSF photometry of one cluster frame: its cost against aperture photometry, and its accuracy.

Renders one NGC 7789 r frame with the simulator (``--preset full``: 4788 x 3194, or ``demo``)
as a perfect calibration leaves it (photon and read noise, saturation flagged, the true WCS),
detects the reference sources on it, and times

- the aperture photometry job's science (`aifa_steps.photometry.frame.measure_frame`);
- the PSF photometry job's science (`aifa_steps.photometry.psf_frame.psf_frame_photometry`:
  background, ePSF, grouped fits, companions from the residual, groups fitted again with
  their neighbours subtracted, aperture correction).

Peak memory is the process's peak resident size after each step (the frame, its truth and
the catalogues included). Then both are scored
against the true magnitudes of the stars brighter than ``--faint`` (offset removed: the
zero point), all of them and those with a neighbour adding 10 % of their flux within 1.5-3
FWHM.

Usage: .venv/bin/python bench/bench_psf.py [--preset full] [--seed 2025]
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import Table

from aifa_steps.core.observing import Site
from aifa_steps.photometry.background import estimate_background
from aifa_steps.photometry.frame import FrameInfo, measure_frame
from aifa_steps.photometry.psf_frame import psf_frame_photometry, psf_summary
from aifa_steps.photometry.refcat import crossmatch
from aifa_steps.photometry.reference import reference_sources
from aifa_steps.photometry.settings import PhotometryParameters
from aifa_steps.simulate import get_preset, plan_night
from aifa_steps.simulate.night import expected_light
from aifa_steps.simulate.sky import make_catalogue, make_refcat
from aifa_steps.simulate.truth import closest_bright_neighbour


def cluster_frame(preset_name: str, seed: int):
    """One noisy NGC 7789 r frame, its true catalogue and the reference catalogue."""
    preset = get_preset(preset_name)
    inst = preset.instrument
    plans, transit = plan_night(preset, seed)
    catalogue = make_catalogue(np.random.default_rng([seed, 3]), preset)
    refcat = make_refcat(np.random.default_rng([seed, 4]), catalogue, preset.refcat_limit_r)
    refcat = refcat[np.isfinite(np.asarray(refcat["rmag"], float))]
    host = int(catalogue["id"][catalogue["role"] == "target"][0])
    plan = next(
        p
        for p in plans
        if p.imagetyp == "LIGHT" and p.object == "NGC7789" and p.filter == "r" and not p.cloudy
    )
    light, wcs = expected_light(plan, preset, catalogue, transit, host, np.random.default_rng(1))
    variance = light / inst.gain + (inst.read_noise / inst.gain) ** 2
    data = light + np.random.default_rng(2).normal(0.0, 1.0, light.shape) * np.sqrt(variance)
    saturation = inst.saturation - 1000.0
    ccd = CCDData(
        np.minimum(data, saturation).astype(np.float32),
        unit="adu",
        uncertainty=StdDevUncertainty(np.sqrt(variance).astype(np.float32)),
        wcs=wcs,
    )
    ccd.flags = np.where(data >= saturation, 8, 0).astype(np.uint8)
    return plan, ccd, catalogue, refcat, saturation


def timed(label: str, work):
    """Run ``work``; print its wall time and the process's peak resident memory so far."""
    start = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{label:38s} {seconds:7.1f} s   peak RSS {peak:6.0f} MB")
    return result


def score(label, mags, true, neighbour, faint):
    """RMS of magnitudes minus truth (median removed) of all and of blended stars."""
    bright = np.isfinite(true) & (true < faint)
    measured = bright & np.isfinite(mags)
    d = mags - true
    offset = np.median(d[measured & (neighbour >= 3)])
    resolved = measured & (neighbour >= 0.5)
    pairs = measured & (neighbour >= 1.5) & (neighbour < 3)
    rms = np.sqrt(np.mean((d[resolved] - offset) ** 2))
    pair_rms = np.sqrt(np.mean((d[pairs] - offset) ** 2)) if pairs.any() else np.nan
    print(
        f"{label:10s} {measured.sum():5d} of {bright.sum():5d} measured, RMS {rms:.4f} "
        f"(separations >= 0.5 FWHM), pairs 1.5-3 FWHM: {pair_rms:.4f} ({pairs.sum()})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="full", choices=("demo", "full"))
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--faint", type=float, default=15.0)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    plan, ccd, catalogue, refcat, saturation = cluster_frame(args.preset, args.seed)
    ny, nx = ccd.data.shape
    print(f"NGC 7789 {plan.filter} frame {nx} x {ny}, seeing {plan.fwhm_arcsec:.2f} arcsec")
    bad = ccd.flags > 0
    background, rms = estimate_background(ccd.data, bad)
    reference = timed(
        "reference detection",
        lambda: reference_sources(
            ccd.data, background, rms, ccd.wcs, refcat, bad, ccd.uncertainty.array
        ),
    )
    print(f"{len(reference)} reference sources")
    stem = plan.file.split("/")[-1].removesuffix(".fits")
    info = FrameInfo(stem, "NGC7789", plan.filter, plan.exptime, plan.mjd)
    site = Site("bench", 50.7275, 7.0863, 60.0)
    params = PhotometryParameters(apertures=[4.0, 6.0, 8.0])
    apertures = timed(
        "aperture photometry (measure_frame)",
        lambda: measure_frame(
            ccd, reference, info, site, tuple(ccd.wcs.wcs.crval), params, saturation
        ),
    )
    psf = timed(
        "PSF photometry (psf_frame_photometry)",
        lambda: psf_frame_photometry(
            ccd, reference, apertures, photometry=params, saturation=saturation, catalogue_key="4"
        ),
    )
    print(psf_summary(psf))

    positions = Table({"RA_ICRS": catalogue["ra"], "DE_ICRS": catalogue["dec"]})
    row = np.asarray(crossmatch(reference, positions, 0.5)["refcat_row"])
    ok = row >= 0
    ok[ok] = ~np.asarray(catalogue["variable"], bool)[row[ok]]
    true = np.full(len(reference), np.nan)
    true[ok] = np.asarray(catalogue["r"], float)[row[ok]]
    closest = closest_bright_neighbour(catalogue, "r", plan.fwhm_arcsec)
    neighbour = np.full(len(reference), np.inf)
    neighbour[ok] = closest[row[ok]]
    with np.errstate(invalid="ignore", divide="ignore"):
        aperture_mag = -2.5 * np.log10(apertures["flux_4"] / apertures.meta["APFRAC_4"])
        aperture_mag[np.asarray(apertures["flag_4"]) > 0] = np.nan
        psf_mag = -2.5 * np.log10(psf["flux_psf"] / psf.meta["APFRAC_psf"])
        psf_mag[(np.asarray(psf["flag_psf"]) & 1) > 0] = np.nan
    print(f"\nstars brighter than r = {args.faint} against the truth (one frame)")
    score("aperture", aperture_mag, true, neighbour, args.faint)
    score("PSF", psf_mag, true, neighbour, args.faint)


if __name__ == "__main__":
    main()
