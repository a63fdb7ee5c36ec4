"""Background and forced aperture photometry against the simulator's truth."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from aifa_steps.core.formats import frame_stem
from aifa_steps.photometry.apertures import (
    FLAG_EDGE,
    FLAG_OFF_FRAME,
    FLAG_SATURATED,
    forced_photometry,
)
from aifa_steps.photometry.background import estimate_background
from aifa_steps.simulate.presets import Instrument

from .helpers import truth_calibrated

INST = Instrument()


def _truth_calibrated(night, row):
    """Frame calibrated with the true masters, its uncertainty plane and flags."""
    bias = fits.getdata(night / "truth" / "bias.fits").astype(np.float64)
    data, raw, flat = truth_calibrated(night, row)
    var = np.clip(raw - bias, 0, None) / INST.gain + (INST.read_noise / INST.gain) ** 2
    flags = np.where(raw >= INST.saturation, 8, 0).astype(np.uint8)
    return data, np.sqrt(var) / flat, flags


def test_background_follows_the_sky(tiny_night, tiny_frames):
    row = tiny_frames[(tiny_frames["object"] == "Qatar-1") & (tiny_frames["defect"] == "none")][0]
    data, _, flags = _truth_calibrated(tiny_night, row)
    background, rms = estimate_background(data, flags > 0)
    assert np.median(background) == pytest.approx(row["sky_adu"], rel=0.01)
    expected_rms = np.sqrt(row["sky_adu"] / INST.gain + (INST.read_noise / INST.gain) ** 2)
    assert np.median(rms) == pytest.approx(expected_rms, rel=0.1)


def test_background_of_a_frame_without_stars_is_unbiased():
    """Pure noise on a tilted sky: the star mask must not select the low side of the noise
    (a 2-sigma single-pixel threshold grown by 4 pixels masks 60 % of such a frame and biased
    the level by -0.8 sigma), and the level follows a gradient between the box centres."""
    rng = np.random.default_rng(4)
    ny, nx = 1064, 1596
    yy, xx = np.mgrid[:ny, :nx]
    sky = 1000.0 + 0.03 * xx - 0.02 * yy
    data = (sky + rng.normal(0.0, 20.0, (ny, nx))).astype(np.float32)
    background, rms = estimate_background(data)
    assert abs(np.mean(background - sky)) < 0.02 * 20.0
    assert np.std((background - sky)[50:-50, 50:-50]) < 0.05 * 20.0
    assert np.median(rms) == pytest.approx(20.0, rel=0.03)


def test_background_of_a_degenerate_frame_does_not_fail():
    """No noise, or almost every pixel masked: one level for the frame instead of an error."""
    flat = np.full((600, 800), 100.0, np.float32)
    background, rms = estimate_background(flat)
    assert np.allclose(background, 100.0, atol=1e-3)
    mask = np.ones(flat.shape, bool)
    mask[:20, :20] = False
    noisy = flat + np.random.default_rng(1).normal(0.0, 1.0, flat.shape).astype(np.float32)
    background, rms = estimate_background(noisy, mask)
    assert np.median(background) == pytest.approx(100.0, abs=0.3)
    with pytest.raises(ValueError, match="no unmasked pixel"):
        estimate_background(flat, np.ones(flat.shape, bool))


@pytest.fixture(scope="module")
def noiseless(tiny_night):
    """Noiseless model of every tiny-night light frame (sky and stars before the flat)."""
    import json

    from astropy.table import Table

    from aifa_steps.products.transit_model import TransitModel
    from aifa_steps.simulate import get_preset, plan_night
    from aifa_steps.simulate.night import expected_light

    from .helpers import TINY_SEED

    preset = get_preset("tiny")
    plans, _ = plan_night(preset, TINY_SEED)
    catalogue = Table.read(tiny_night / "truth" / "stars.ecsv")
    truth = json.loads((tiny_night / "truth" / "transit.json").read_text())
    transit = TransitModel.from_truth(truth)

    def model(file):
        plan = next(p for p in plans if p.file == file)
        light, _ = expected_light(
            plan, preset, catalogue, transit, truth["star_id"], np.random.default_rng(plan.seed)
        )
        return light

    return model


def test_forced_photometry_fluxes_and_honest_errors(tiny_night, tiny_frames, tiny_stars, noiseless):
    """Each star measured on the real frame and, with the same method, on its noiseless model:
    the differences are pure noise, and the stated errors must explain them (pulls ~ N(0, 1)).
    Isolated stars also recover their true flux within the aperture."""
    pulls, ratios = [], []
    series = tiny_frames[(tiny_frames["object"] == "Qatar-1") & (tiny_frames["defect"] == "none")]
    for row in series[::2]:
        data, sigma, flags = _truth_calibrated(tiny_night, row)
        stem = frame_stem(row["file"])
        wcs = WCS(fits.getheader(tiny_night / "truth" / "wcs" / f"{stem}.fits"))
        ra0, dec0 = wcs.wcs.crval
        near = (
            np.hypot((tiny_stars["ra"] - ra0) * np.cos(np.radians(dec0)), tiny_stars["dec"] - dec0)
            < 0.15
        )
        stars = tiny_stars[near]
        x, y = wcs.world_to_pixel_values(stars["ra"], stars["dec"])
        use = np.flatnonzero(
            (stars["r"] > 12.0)
            & (stars["r"] < 16.5)
            & ~stars["variable"]
            & (stars["role"] != "target")
        )
        background, rms = estimate_background(data, flags > 0)
        kwargs = {"radii_arcsec": (10.0,), "background": background, "background_rms": rms}
        measured = forced_photometry(
            data, sigma, wcs, stars["ra"][use], stars["dec"][use], flags=flags, **kwargs
        )
        expected = forced_photometry(
            noiseless(row["file"]), sigma, wcs, stars["ra"][use], stars["dec"][use], **kwargs
        )
        fwhm = row["fwhm_arcsec"] / INST.pixel_scale
        alpha = fwhm / (2 * np.sqrt(2 ** (1 / 3) - 1))
        radius = 10.0 / INST.pixel_scale
        enclosed = 1 - (1 + (radius / alpha) ** 2) ** -2
        for j, k in enumerate(use):
            if measured["flag_10"][j]:
                continue
            # Noise only: the stated error covers photon, sky and read noise; scintillation is
            # the same in both (the model uses the frame's own star fluxes).
            pulls.append(
                (measured["flux_10"][j] - expected["flux_10"][j]) / measured["flux_err_10"][j]
            )
            d = np.hypot(x - x[k], y - y[k])
            if not np.any((d > 0) & (d < radius + 3 * fwhm) & (stars["r"] < stars["r"][k] + 6)):
                true = 10 ** (-0.4 * (stars["r"][k] - row["zeropoint"])) * enclosed
                ratios.append(expected["flux_10"][j] / true)
    assert len(pulls) >= 50 and len(ratios) >= 5
    assert 0.8 < np.std(pulls) < 1.2
    assert abs(np.median(pulls)) < 0.3
    # Isolated stars: the noiseless measurement recovers the flux in the aperture within 2 %
    # (what is left is the faint stars' light in the background estimate).
    assert np.median(ratios) == pytest.approx(1.0, abs=0.02)


def test_flags_for_saturation_edges_and_off_frame():
    from aifa_steps.simulate.optics import make_wcs
    from aifa_steps.simulate.render import add_moffat_stars

    shape = (200, 300)
    wcs = make_wcs(shape, 10.0, 20.0, 0.607, 0.0)
    image = np.full(shape, 100.0, np.float32)
    add_moffat_stars(
        image, np.array([150.0, 3.0]), np.array([100.0, 100.0]), np.array([5e4, 5e4]), 4.0, 3.0
    )
    flags = np.zeros(shape, np.uint8)
    flags[100, 150] = 8
    sky = wcs.pixel_to_world([150.0, 3.0, 500.0], [100.0, 100.0, 100.0])
    table = forced_photometry(
        image,
        np.full(shape, 10.0, np.float32),
        wcs,
        sky.ra.deg,
        sky.dec.deg,
        radii_arcsec=(4.0,),
        background=np.full(shape, 100.0, np.float32),
        background_rms=np.full(shape, 10.0, np.float32),
        flags=flags,
    )
    assert table["flag_4"][0] & FLAG_SATURATED
    assert table["flag_4"][1] & FLAG_EDGE
    assert table["flag_4"][2] & FLAG_OFF_FRAME and np.isnan(table["flux_4"][2])
    assert table["flux_4"][0] == pytest.approx(
        5e4 * (1 - (1 + (4 / 0.607 / (4 / (2 * np.sqrt(2 ** (1 / 3) - 1)))) ** 2) ** -2), rel=0.01
    )


def test_peak_and_flag_distances_match_a_brute_force_search():
    """The per-star box searches agree with an exhaustive search over all pixels."""
    from aifa_steps.photometry.apertures import _distance_to_flagged, _peak_in_circle

    rng = np.random.default_rng(5)
    image = rng.normal(size=(60, 80))
    flags = np.zeros(image.shape, np.uint8)
    flags[rng.integers(0, 60, 12), rng.integers(0, 80, 12)] = 8
    flags[rng.integers(0, 60, 12), rng.integers(0, 80, 12)] |= 1
    # Stars anywhere, also partly or wholly off the frame, and one without a position.
    x = np.append(rng.uniform(-3, 82, 300), np.nan)
    y = np.append(rng.uniform(-3, 62, 300), 30.0)
    rows, cols = np.mgrid[0:60, 0:80]
    radius, reach = 3.3, 7.5
    peak = _peak_in_circle(image, x[:-1], y[:-1], radius)
    near_sat = _distance_to_flagged(flags, 8, x, y, reach)
    near_hot = _distance_to_flagged(flags, 1, x, y, reach)
    for k in range(300):
        d2 = (cols - x[k]) ** 2 + (rows - y[k]) ** 2
        inside = d2 <= radius**2
        expected = image[inside].max() if inside.any() else np.nan
        assert peak[k] == pytest.approx(expected, nan_ok=True)
        for bits, found in ((8, near_sat), (1, near_hot)):
            d = np.sqrt(d2[(flags & bits) > 0].min())
            assert found[k] == (pytest.approx(d) if d <= reach else np.inf)
    assert near_sat[-1] == np.inf and near_hot[-1] == np.inf
    assert _distance_to_flagged(None, 8, x, y, reach).tolist() == [np.inf] * 301


def test_star_mask_helpers_match_scipy():
    """The background's 3 x 3 mean and sampled dilation equal scipy's on the inner pixels."""
    from scipy.ndimage import binary_dilation, uniform_filter

    from aifa_steps.photometry.background import _dilated_samples, _mean3x3

    rng = np.random.default_rng(2)
    image = rng.normal(size=(101, 143)).astype(np.float32)
    mean = _mean3x3(image)
    assert np.allclose(mean[1:-1, 1:-1], uniform_filter(image, 3)[1:-1, 1:-1], atol=1e-6)
    above = mean > 0.7
    for step in (1, 3):
        expected = binary_dilation(above, iterations=4)[::step, ::step]
        assert np.array_equal(_dilated_samples(above, 4, step), expected)
