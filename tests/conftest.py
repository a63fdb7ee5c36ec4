"""Shared fixtures (fixtures only: helpers live in tests/helpers.py): one simulated tiny night
per test session, demo-night frames calibrated perfectly and their photometry."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.table import Table

from aifa_steps.simulate import get_preset, simulate_night

from .helpers import TINY_SEED


@pytest.fixture(scope="session")
def tiny_night(tmp_path_factory) -> Path:
    """A simulated tiny night (read-only for tests: copy before changing anything)."""
    out = tmp_path_factory.mktemp("nights") / "tiny"
    simulate_night(
        out, get_preset("tiny"), seed=TINY_SEED, jobs=2, work_dir=str(out.parent / "tiny_reduced")
    )
    return out


@pytest.fixture(scope="session")
def tiny_frames(tiny_night) -> Table:
    return Table.read(tiny_night / "truth" / "frames.ecsv")


@pytest.fixture(scope="session")
def tiny_stars(tiny_night) -> Table:
    return Table.read(tiny_night / "truth" / "stars.ecsv")


@pytest.fixture(scope="session")
def demo_frames():
    """Demo-night frames (1596 x 1064) as a perfect calibration leaves them: the noiseless
    light of the simulator plus photon and read noise, saturation flagged, the true WCS.
    Six NGC 7789 frames (g, r, i) and six Qatar-1 frames spread over the series.

    Returns ``({object: [(plan, ccd, light), ...]}, catalogue, refcat)``.
    """
    import numpy as np
    from astropy.nddata import CCDData, StdDevUncertainty

    from aifa_steps.simulate import get_preset, plan_night
    from aifa_steps.simulate.night import expected_light
    from aifa_steps.simulate.sky import make_catalogue, make_refcat

    seed = 2025
    preset = get_preset("demo")
    inst = preset.instrument
    plans, transit = plan_night(preset, seed)
    catalogue = make_catalogue(np.random.default_rng([seed, 3]), preset)
    refcat = make_refcat(np.random.default_rng([seed, 4]), catalogue, preset.refcat_limit_r)
    refcat = refcat[np.isfinite(np.asarray(refcat["rmag"], float))]
    host = int(catalogue["id"][catalogue["role"] == "target"][0])
    lights = [p for p in plans if p.imagetyp == "LIGHT" and not p.cloudy and p.defect == "none"]
    chosen = [p for p in lights if p.object == "NGC7789"][:6]
    series = [p for p in lights if p.object == "Qatar-1"]
    chosen += series[:: max(1, len(series) // 6)]
    rng = np.random.default_rng(11)
    frames = {}
    for plan in chosen:
        light, wcs = expected_light(
            plan, preset, catalogue, transit, host, np.random.default_rng(plan.seed)
        )
        variance = light / inst.gain + (inst.read_noise / inst.gain) ** 2
        data = light + rng.normal(0.0, 1.0, light.shape) * np.sqrt(variance)
        saturated = data >= inst.saturation - 1000.0  # the bias eats into the range
        ccd = CCDData(
            np.minimum(data, inst.saturation - 1000.0).astype(np.float32),
            unit="adu",
            uncertainty=StdDevUncertainty(np.sqrt(variance).astype(np.float32)),
            wcs=wcs,
        )
        ccd.flags = np.where(saturated, 8, 0).astype(np.uint8)
        frames.setdefault(plan.object, []).append((plan, ccd, light))
    return frames, catalogue, refcat


@pytest.fixture(scope="session")
def demo_photometry(demo_frames):
    """Reference detection on one r frame per target of `demo_frames`, forced photometry of
    each frame.

    Returns ``{object: (reference, [(plan, table), ...])}`` and the true star catalogue.
    """
    import numpy as np

    from aifa_steps.core.observing import Site
    from aifa_steps.photometry.apertures import forced_photometry
    from aifa_steps.photometry.background import estimate_background
    from aifa_steps.photometry.frame import FrameInfo, measure_frame
    from aifa_steps.photometry.reference import reference_sources

    site = Site("test", 50.7275, 7.0863, 60.0)
    frames, catalogue, refcat = demo_frames
    results = {}
    for obj, items in frames.items():
        plan, ccd, _ = next(item for item in items if item[0].filter == "r")
        bad = ccd.flags > 0
        background, rms = estimate_background(ccd.data, bad)
        reference = reference_sources(
            ccd.data, background, rms, ccd.wcs, refcat, bad, ccd.uncertainty.array
        )
        measured = []
        for plan, ccd, light in items:
            stem = plan.file.split("/")[-1].removesuffix(".fits")
            info = FrameInfo(stem, obj, plan.filter, plan.exptime, plan.mjd)
            table = measure_frame(ccd, reference, info, site, tuple(ccd.wcs.wcs.crval))
            # The same apertures on the noiseless frame minus the background estimated on the
            # noisy one: what the measurement would give without the noise of the pixels in
            # the aperture (neighbours' light and the background's definition as measured).
            noiseless_sky, _ = estimate_background(ccd.data, ccd.flags > 0)
            noiseless = forced_photometry(
                light,
                ccd.uncertainty.array,
                ccd.wcs,
                reference["ra"],
                reference["dec"],
                (4.0,),
                background=noiseless_sky,
                background_rms=np.ones(light.shape, np.float32),
            )
            table["noiseless_flux_4"] = noiseless["flux_4"]
            measured.append((plan, table))
        results[obj] = (reference, measured)
    return results, catalogue
