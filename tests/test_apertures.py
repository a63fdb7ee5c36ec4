"""Apertures sized by the seeing: the configuration, and light curves against the truth.

The science test renders one time series of photons twice: once as a 0.607"/px camera with
2.5" seeing (the default instrument), once as a 5.2"/px camera with 21" seeing, where the
stars cover the same pixels. Fixed apertures of 4-10 arcsec suit the first and are far too
small for the second; automatic apertures (multiples of the FWHM) serve both.
"""

import numpy as np
import pytest
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import Table

from aifa_steps.core.observing import Site
from aifa_steps.photometry.aperture_plans import (
    aperture_plan,
    catalogue_aperture_key,
    set_reference_apertures,
    smallest_aperture_key,
    target_fwhm,
)
from aifa_steps.photometry.frame import FrameInfo, measure_frame
from aifa_steps.photometry.settings import PhotometryParameters, aperture_setting
from aifa_steps.photometry.zeropoints import frame_zeropoints
from aifa_steps.products.lightcurve import transit_light_curve
from aifa_steps.products.transit_model import TransitModel
from aifa_steps.simulate.optics import make_wcs
from aifa_steps.simulate.render import add_moffat_stars
from aifa_steps.summary.checks import config_problems

TRUTH = TransitModel(2460963.391, 1.4200242, 0.1455, 6.25, 84.26, (0.45, 0.2))
EPHEMERIS = {"t0_bjd_tdb": TRUTH.t0, "period_days": 1.4200242, "duration_hours": 1.68}
SITE = Site("test", 50.7275, 7.0863, 60.0)
GAIN, READ_NOISE = 0.376, 3.5


def test_explicit_and_automatic_apertures():
    radii, keys = aperture_plan([8, 4.0, 6], np.nan)
    assert radii == [4.0, 6.0, 8.0] and keys == ["4", "6", "8"]
    radii, keys = aperture_plan("auto", 2.4, (2.0, 1.0))
    assert radii == pytest.approx([2.4, 4.8]) and keys == ["1fwhm", "2fwhm"]
    with pytest.raises(ValueError, match="no measured FWHM"):
        aperture_plan("auto", np.nan)
    # An older configuration with apertures_arcsec keeps its radii; apertures: a list wins.
    assert aperture_setting({"apertures": "auto"}) == "auto"
    assert aperture_setting({"apertures": "auto", "apertures_arcsec": [4, 6]}) == [4.0, 6.0]
    assert aperture_setting({"apertures": [5], "apertures_arcsec": [4, 6]}) == [5.0]
    # The night's FWHM: the median over the target's frames, the reference's as fallback.
    assert target_fwhm([2.0, np.nan, 3.0, 2.5, 9.0], 1.0) == pytest.approx(2.75)
    assert target_fwhm([np.nan], 1.7) == 1.7


def test_catalogue_aperture_with_explicit_and_automatic_apertures():
    explicit = {"apertures": [4, 6, 8, 10]}
    assert catalogue_aperture_key(explicit, {"catalogue_aperture_arcsec": 6}) == "6"
    assert catalogue_aperture_key(explicit, {"catalogue_aperture_arcsec": "auto"}) == "4"
    assert catalogue_aperture_key({"apertures": "auto"}, {}) == "1.5fwhm"
    assert smallest_aperture_key({"apertures": "auto"}) == "1fwhm"
    assert smallest_aperture_key(explicit) == "4"
    auto = {"apertures": "auto", "aperture_fwhm": [1.0, 2.0]}
    assert catalogue_aperture_key(auto, {"catalogue_aperture_fwhm": 2}) == "2fwhm"
    # Contradictions stop the night before it starts, naming the keys.
    base = {"astrometry": {"build_index": True}, "reference_catalogue": {"source": "vizier"}}
    problems = config_problems(
        {**base, "photometry": auto, "zeropoints": {"catalogue_aperture_fwhm": 1.5}}
    )
    assert any("catalogue_aperture_fwhm is 1.5" in p and "[1.0, 2.0]" in p for p in problems)
    problems = config_problems({**base, "photometry": auto, "zeropoints": {}})
    assert any("catalogue_aperture_fwhm is 1.5" in p for p in problems)
    problems = config_problems(
        {
            **base,
            "photometry": {"apertures": "auto"},
            "zeropoints": {"catalogue_aperture_arcsec": 4},
        }
    )
    assert any("photometry.apertures is auto" in p for p in problems)
    assert not config_problems(
        {**base, "photometry": {"apertures": "auto"}, "zeropoints": {"catalogue_aperture_fwhm": 2}}
    )


def _fluxes(seed: int) -> np.ndarray:
    """Total fluxes (ADU) of the target and its eight comparison stars."""
    return np.concatenate([[1.2e6], np.random.default_rng(seed).uniform(1.2e6, 3.2e6, 8)])


def _series(pixel_scale: float, n_frames: int = 40, seed: int = 4):
    """A transit time series of a target and eight comparison stars, 200 x 200 px.

    The PSF is a Moffat profile (beta 3) of 4.1 px FWHM (varying by 10 % through the night):
    2.5" at 0.607"/px, 21" at 5.2"/px. Photon and read noise, a drift of 3 px, transparency
    changes common to all stars, no saturation (a deep well). The photons are the same for
    every ``pixel_scale``.
    """
    rng = np.random.default_rng(seed)
    shape = (200, 200)
    wcs = make_wcs(shape, 303.38175, 65.16194, pixel_scale, 0.0)
    grid = np.array([45.0, 100.0, 155.0])
    x0, y0 = (a.ravel() for a in np.meshgrid(grid, grid))
    order = np.argsort(np.hypot(x0 - 100, y0 - 100))  # the target first, at the centre
    x0, y0 = x0[order], y0[order]
    flux0 = _fluxes(seed)
    ra, dec = wcs.pixel_to_world_values(x0, y0)
    times = TRUTH.t0 + np.linspace(-0.09, 0.09, n_frames)
    fwhm_px = 4.1 * (1.0 + 0.1 * np.sin(np.linspace(0, 5, n_frames)))
    noise = np.random.default_rng(seed + 1)
    frames = []
    for k, t in enumerate(times):
        flux = flux0 * (1.0 - 0.02 * rng.random())
        flux[0] *= TRUTH.flux(np.array([t]))[0]
        light = np.full(shape, 1500.0, np.float32)
        drift = 3.0 * k / n_frames
        add_moffat_stars(light, x0 + drift, y0 + 0.5 * drift, flux, fwhm_px[k], 3.0)
        variance = light / GAIN + (READ_NOISE / GAIN) ** 2
        data = light + noise.normal(0.0, 1.0, shape) * np.sqrt(variance)
        ccd = CCDData(
            data.astype(np.float32),
            unit="adu",
            uncertainty=StdDevUncertainty(np.sqrt(variance).astype(np.float32)),
            wcs=wcs,
        )
        ccd.flags = np.zeros(shape, np.uint8)
        frames.append((t, fwhm_px[k] * pixel_scale, ccd))
    reference = Table(
        {
            "id": np.arange(1, 10),
            "ra": ra,
            "dec": dec,
            "isolated": np.ones(9, bool),
            "gmag": np.full(9, 13.0),
            "imag": np.full(9, 12.3),
        }
    )
    return frames, reference, (float(ra[0]), float(dec[0]))


def _light_curve(frames, reference, target, apertures, fit=True, seeing=None):
    from aifa_steps.core.observing import bjd_tdb

    params = PhotometryParameters(apertures=apertures)
    reference = reference.copy()
    seeing = [fwhm for _, fwhm, _ in frames] if seeing is None else seeing
    set_reference_apertures(reference, params, seeing)
    tables = []
    for t, _, ccd in frames:
        # Exposure start so that the mid-exposure BJD_TDB is the rendered time.
        mjd = t - 2400000.5 - 15.0 / 86400.0
        mjd -= bjd_tdb(mjd + 15.0 / 86400.0, *target, SITE, topocentric=False) - t
        info = FrameInfo(f"f{len(tables):03d}", "T", "r", 30.0, mjd)
        tables.append(measure_frame(ccd, reference, info, SITE, target, params, saturation=1e7))
    if not fit:
        return None, tables
    result = transit_light_curve(tables, reference, target, EPHEMERIS, depth_guess=0.02)
    return result, tables


@pytest.fixture(scope="module")
def coarse_night():
    return _series(5.2)


@pytest.fixture(scope="module")
def fine_night():
    return _series(0.607)


def test_automatic_apertures_beat_fixed_ones_for_poor_seeing_in_large_pixels(
    coarse_night, fine_night
):
    fixed = [4.0, 6.0, 8.0, 10.0]
    auto_coarse, tables = _light_curve(*coarse_night, "auto")
    fixed_coarse, _ = _light_curve(*coarse_night, fixed)
    fixed_fine, _ = _light_curve(*fine_night, fixed)
    # The same photons in small pixels: automatic apertures cover the same pixels, so every
    # flux is the same as in large pixels (three frames suffice to show it).
    frames, reference, target = fine_night
    seeing = [fwhm for _, fwhm, _ in frames]  # the whole night's
    _, fine_tables = _light_curve(frames[:3], reference, target, "auto", False, seeing)
    for fine, coarse in zip(fine_tables, tables, strict=False):
        assert fine.meta["APKEYS"] == coarse.meta["APKEYS"]
        for key in coarse.meta["APKEYS"]:
            assert np.allclose(fine[f"flux_{key}"], coarse[f"flux_{key}"], rtol=1e-4)
    # The apertures: multiples of the median FWHM, the same for every frame of the target.
    fwhm = tables[0].meta["APFWHM"]
    assert fwhm == pytest.approx(np.median([f for _, f, _ in coarse_night[0]]))
    assert tables[0].meta["APERTURES"] == pytest.approx([m * fwhm for m in (1, 1.5, 2, 2.5, 3)])
    assert all(t.meta["APKEYS"] == tables[0].meta["APKEYS"] for t in tables)
    assert "flux_1.5fwhm" in tables[0].colnames and "APFRAC_1.5fwhm" in tables[0].meta

    def scatter(result):
        return min(result["apertures"].values())

    # Large pixels, poor seeing: 4-10" radii are 0.8-1.9 px, the light curve much noisier.
    assert scatter(auto_coarse) < 0.75 * scatter(fixed_coarse)
    # In small pixels the fixed apertures suit the seeing, and the automatic ones (the same
    # light curve as in large pixels) do as well.
    assert scatter(auto_coarse) < 1.05 * scatter(fixed_fine)
    # Against the truth: the transit's depth and time, the scatter near the predicted noise.
    fit = auto_coarse["fit"]
    assert abs(fit.depth - TRUTH.depth) < 3 * fit.depth_err and fit.depth_err < 0.003
    assert abs(fit.t0_bjd_tdb - TRUTH.t0) * 1440 < 5.0
    # Errors from the CCD equation: the scatter agrees within chance (40 points, 7 fitted
    # parameters, the best of five apertures), so they are not rescaled.
    assert 0.7 < fit.error_ratio < 1.3 and fit.error_scale == 1.0
    assert auto_coarse["aperture_key"].endswith("fwhm")
    assert auto_coarse["aperture"] == pytest.approx(
        fwhm * float(auto_coarse["aperture_key"].removesuffix("fwhm"))
    )


def test_zero_points_with_automatic_apertures(coarse_night):
    """Every automatic aperture gives a zero point, named by its multiple of the FWHM, and
    all agree after the aperture corrections (the stars' true total fluxes are known)."""
    frames, reference, target = coarse_night
    _, tables = _light_curve(frames[:1], reference, target, "auto", fit=False)
    reference = reference.copy()
    # Catalogue magnitudes: the rendered total fluxes at a zero point of 25.
    table = tables[0]
    flux0 = _fluxes(4)
    reference["rmag"] = 25.0 - 2.5 * np.log10(flux0)
    reference["e_rmag"] = 0.001
    zeropoints, stars = frame_zeropoints(table, reference)
    assert list(zeropoints["aperture"]) == ["1fwhm", "1.5fwhm", "2fwhm", "2.5fwhm", "3fwhm"]
    assert zeropoints["aperture_arcsec"] == pytest.approx(table.meta["APERTURES"])
    # The transparency of the first frame dims all stars by up to 2 %.
    good = np.isfinite(zeropoints["zeropoint"])
    assert good.sum() >= 4
    assert np.all(np.abs(zeropoints["zeropoint"][good] - 25.0 + 0.01) < 0.02)
    assert set(stars["aperture"]) == set(zeropoints["aperture"])


def test_sky_annulus_corrects_sky_structure_smaller_than_the_mesh(coarse_night):
    """A patch of sky light 50 px across (nebulosity, scattered light) around one star: the
    background mesh (66 px boxes on this frame) takes in part of it, the annulus all of it;
    elsewhere the annulus changes nothing beyond the noise."""
    frames, reference, target = coarse_night
    _, _, ccd = frames[0]
    params = PhotometryParameters(apertures="auto", sky_annulus_fwhm=[3, 5])
    reference = reference.copy()
    set_reference_apertures(reference, params, [fwhm for _, fwhm, _ in frames])
    fwhm = reference.meta["APFWHM"]
    assert reference.meta["ANNULUS"] == pytest.approx([3 * fwhm, 5 * fwhm])
    plain = reference.copy()
    del plain.meta["ANNULUS"]
    patched = ccd.copy()
    yy, xx = np.mgrid[: ccd.shape[0], : ccd.shape[1]]
    patch = 40.0 * (np.hypot(xx - 100.0, yy - 100.0) < 25.0)  # 2.7 % of the sky, at the target
    patched.data = (ccd.data + patch).astype(np.float32)
    info = FrameInfo("f", "T", "r", 30.0, 60962.9)

    def flux(frame, sources):
        table = measure_frame(frame, sources, info, SITE, target, params, saturation=1e7)
        return np.asarray(table["flux_1.5fwhm"]), np.asarray(table["flux_err_1.5fwhm"]), table

    clean, err, _ = flux(ccd, plain)
    mesh, _, _ = flux(patched, plain)
    local, local_err, table = flux(patched, reference)
    area = np.pi * (1.5 * fwhm / 5.2) ** 2
    assert mesh[0] - clean[0] > 0.3 * 40.0 * area  # the mesh misses much of the patch
    assert abs(local[0] - clean[0]) < 3 * err[0]  # the annulus removes it
    _, _, unpatched = flux(ccd, reference)
    # The patch, on top of the star's own wings in the annulus (8 ADU: 0.1 % of its flux).
    assert table["sky_local"][0] - unpatched["sky_local"][0] == pytest.approx(40.0, abs=3.0)
    # The other stars, away from the patch: the same fluxes within their errors, slightly
    # larger errors (the annulus median's noise).
    assert np.all(np.abs(local[1:] - mesh[1:]) < 2 * err[1:])
    assert np.all(local_err >= err)


def test_photometry_settings_from_config():
    """The settings read their section; an older configuration's apertures_arcsec decides
    when apertures is auto (as `aperture_setting`)."""
    section = {"apertures": "auto", "apertures_arcsec": [6, 4], "fit_fwhm": True, "x": 1}
    params = PhotometryParameters.from_config(section)
    assert params.apertures == [6.0, 4.0] and not params.auto and params.fit_fwhm
    assert PhotometryParameters.from_config({}).auto
    assert PhotometryParameters.from_config({"apertures": [5]}).apertures == [5.0]
    with pytest.raises(ValueError, match="use auto or a list"):
        PhotometryParameters(apertures="fixed")


def test_frame_photometry_records_its_target_and_fails_without_stars(coarse_night):
    from aifa_steps.core.failures import FrameFailure
    from aifa_steps.photometry.frame import frame_photometry, frame_photometry_summary

    frames, reference, target = coarse_night
    _, _, ccd = frames[0]
    params = PhotometryParameters(apertures=[20.0, 30.0])
    info = FrameInfo.from_inventory(
        "f0", {"object": "T 1", "filter": "r", "exptime": 30, "mjd": 60962.9, "x": 0}
    )
    assert info == FrameInfo("f0", "T 1", "r", 30.0, 60962.9)
    reference = reference.copy()
    reference.meta["REFFRAME"] = "ref"
    table = frame_photometry(ccd, reference, info, SITE, target, params, 1e7, "T_1")
    assert table.meta["PHOTOK"] is True
    assert table.meta["TARGET"] == "T_1" and table.meta["REFFRAME"] == "ref"
    line = frame_photometry_summary(table)
    assert line.startswith(f"f0: {len(table)} sources, seeing ")
    assert "flux fraction in 20.00 arcsec (20)" in line
    blank = ccd.copy()
    blank.data = np.zeros_like(ccd.data)
    with pytest.raises(FrameFailure, match="no stars measured"):
        frame_photometry(blank, reference, info, SITE, target, params, 1e7, "T_1")
