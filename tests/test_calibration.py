"""Master calibrations and calibrated frames, against the simulator's truth."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.table import Table
from astropy.wcs import WCS
from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture
from scipy.ndimage import gaussian_filter

from aifa_steps.calibration.badpixels import (
    BadPixelSettings,
    bad_pixel_mask,
    mask_from_masters,
    mask_header,
)
from aifa_steps.calibration.calibrate import (
    CalibrationParameters,
    calibrate_frame,
    calibrate_light,
    failed_light_header,
)
from aifa_steps.calibration.camera import characterise_camera
from aifa_steps.calibration.combine import clipped_mean, combine_files
from aifa_steps.calibration.detector import (
    FrameDetector,
    frame_detector,
    night_detector,
    night_read_noise_adu,
    resolve_detector,
)
from aifa_steps.calibration.flats import FlatLevels, failed_flats_table, make_master_flat
from aifa_steps.calibration.masters import (
    ClipParameters,
    dark_for_exposure,
    make_master_bias,
    make_master_dark,
)
from aifa_steps.calibration.masterset import Masters
from aifa_steps.calibration.qc import frame_statistics
from aifa_steps.calibration.skytransfer import gain_from_sky, sky_transfer
from aifa_steps.core.failures import FrameFailure
from aifa_steps.core.formats import COSMIC_RAY, HOT, LOW_RESPONSE, PIXEL_FLAGS, SATURATED
from aifa_steps.core.frames import read_ccd, write_ccd
from aifa_steps.inventory.table import build_inventory
from aifa_steps.simulate.detector import DetectorTruth, read_out
from aifa_steps.simulate.presets import Instrument

from .helpers import truth_calibrated

INST = Instrument()
RN_ADU = INST.read_noise / INST.gain
PARAMS = FrameDetector(gain=INST.gain, read_noise=INST.read_noise)


def _reference_clip(values, sigma=5.0, maxiters=5):
    keep = np.ones(values.size, bool)
    for _ in range(maxiters):
        v = values[keep]
        med = np.median(v)
        std = 1.482602218505602 * np.median(np.abs(v - med))
        new = keep & (values >= med - sigma * std) & (values <= med + sigma * std)
        if (new == keep).all():
            break
        keep = new
    return values[keep].mean(), keep.sum()


def test_clipped_mean_equals_iterative_sigma_clipping():
    rng = np.random.default_rng(0)
    stack = rng.normal(100.0, 5.0, (11, 40, 30)).astype(np.float32)
    stack[3, 5, 5] = 1e4  # cosmic ray
    stack[:2, 7, 7] = -500  # two bad values
    stack[4, 9, 9] = 100 + 5 * 5.3  # a borderline value
    result = clipped_mean(stack)
    for iy in range(40):
        for ix in range(30):
            mean, count = _reference_clip(stack[:, iy, ix].astype(np.float64))
            assert result.count[iy, ix] == count
            assert result.mean[iy, ix] == pytest.approx(mean, rel=1e-5)
    assert result.count[5, 5] == 10 and result.count[7, 7] == 9
    assert np.median(result.error) == pytest.approx(5.0 / np.sqrt(11), rel=0.1)


def test_blockwise_combination_equals_one_block(tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for k in range(6):
        data = rng.normal(1000, 10, (97, 53)).astype(np.uint16)
        paths.append(tmp_path / f"f{k}.fits")
        fits.PrimaryHDU(data).writeto(paths[-1])
    whole = combine_files(paths, memory_limit_mb=100)
    blocks = combine_files(paths, memory_limit_mb=0.01)  # one row at a time
    assert np.array_equal(whole.mean, blocks.mean)
    threaded = combine_files(paths, memory_limit_mb=0.05, threads=3)
    assert np.array_equal(whole.mean, threaded.mean)
    assert np.array_equal(whole.count, threaded.count)
    cube = np.array([fits.getdata(p).astype(np.float32) for p in paths])
    assert np.allclose(whole.mean, clipped_mean(cube).mean)


@pytest.fixture(scope="module")
def inventory(tiny_night):
    cfg = {
        "frame_types": {"bias": ["BIAS"], "dark": ["DARK"], "flat": ["FLAT"], "light": ["LIGHT"]}
    }
    table = build_inventory(tiny_night, cfg)
    return table[table["used"]]


def _paths(inventory, kind, band=None):
    sel = inventory["imagetyp"] == kind
    if band:
        sel &= inventory["filter"] == band
    return list(inventory["path"][sel])


@pytest.fixture(scope="module")
def masters(inventory, tmp_path_factory):
    out = tmp_path_factory.mktemp("masters")
    bias = make_master_bias(_paths(inventory, "bias"))
    dark = make_master_dark(_paths(inventory, "dark"), bias)
    flats, tables = {}, {}
    for band in "gri":
        flats[band], tables[band] = make_master_flat(
            _paths(inventory, "flat", band), bias, {60.0: dark}, filter_name=band
        )
    mask = bad_pixel_mask(dark, list(flats.values()))
    write_ccd(bias, out / "bias.fits")
    write_ccd(dark, out / "dark_60s.fits")
    for band, flat in flats.items():
        write_ccd(flat, out / f"flat_{band}.fits")
    fits.PrimaryHDU(mask).writeto(out / "bad_pixels.fits")
    loaded = Masters.load(
        out / "bias.fits",
        [out / "dark_60s.fits"],
        {b: out / f"flat_{b}.fits" for b in "gri"},
        out / "bad_pixels.fits",
    )
    return {
        "bias": bias,
        "dark": dark,
        "flats": flats,
        "tables": tables,
        "mask": mask,
        "loaded": loaded,
    }


def test_master_bias_noise_is_read_noise_over_sqrt_n(tiny_night, inventory, masters):
    truth = fits.getdata(tiny_night / "truth" / "bias.fits")
    n = len(_paths(inventory, "bias"))
    noise = np.std(masters["bias"].data - truth)
    assert noise == pytest.approx(RN_ADU / np.sqrt(n), rel=0.10)
    assert masters["bias"].data.dtype == np.float32
    assert masters["bias"].meta["NCOMBINE"] == n
    assert any("master bias" in h for h in masters["bias"].meta["HISTORY"])


def test_master_dark_follows_the_true_dark_current(tiny_night, masters):
    rate = fits.getdata(tiny_night / "truth" / "dark_rate.fits")
    dark = masters["dark"]
    assert dark.meta["EXPTIME"] == 60.0
    resid = dark.data - rate * 60.0
    # Noise of a 3-dark master with a 5-bias master subtracted.
    expected = RN_ADU * np.sqrt(1 / 3 + 1 / 5)
    assert np.std(resid) == pytest.approx(expected, rel=0.15)
    assert abs(np.median(resid)) < 1.0


def test_master_flats_match_the_true_flats(tiny_night, masters):
    for band, flat in masters["flats"].items():
        truth = fits.getdata(tiny_night / "truth" / f"flat_{band}.fits")
        ratio = flat.data / truth
        # Away from the steep edges of dust donuts (pixel-to-pixel response is kept) and dead
        # pixels.
        gy, gx = np.gradient(gaussian_filter(truth, 2.0))
        smooth = (np.hypot(gx, gy) < 0.002) & (truth > 0.5)
        assert smooth.mean() > 0.8
        assert np.std(ratio[smooth]) < 0.005
        assert np.median(ratio) == pytest.approx(1.0, abs=1e-3)
        assert flat.meta["FILTER"] == band


def test_bad_flats_are_rejected_and_listed(masters):
    rejected = {band: list(t["reason"][~t["used"]]) for band, t in masters["tables"].items()}
    assert any("saturated" in r for r in rejected["r"])
    assert any("too faint" in r for r in rejected["g"])
    assert masters["flats"]["r"].meta["NREJECT"] == 1


def test_hot_and_dead_pixels_are_masked(tiny_night, masters):
    hot_truth = fits.getdata(tiny_night / "truth" / "hot_pixels.fits").astype(bool)
    hot = (masters["mask"] & HOT) > 0
    assert hot_truth.sum() > 20
    assert (hot & hot_truth).sum() >= 0.95 * hot_truth.sum()
    assert (hot & ~hot_truth).sum() <= 0.05 * hot_truth.sum() + 3
    flat_truth = fits.getdata(tiny_night / "truth" / "flat_r.fits")
    dead = flat_truth < 0.5
    assert dead.sum() >= 1
    assert np.all(masters["mask"][dead] & LOW_RESPONSE)


def test_dark_selection_matches_or_scales():
    darks = {60.0: "d60", 300.0: "d300"}
    assert dark_for_exposure(darks, 60.0) == ("d60", 1.0)
    assert dark_for_exposure(darks, 30.0) == ("d300", 0.1)
    with pytest.raises(ValueError):
        dark_for_exposure({}, 30.0)


def test_sky_noise_of_a_calibrated_frame_is_the_ccd_equation(tiny_night, masters, tmp_path):
    """A pure-sky exposure: measured pixel scatter equals the uncertainty plane."""
    truth_flat = fits.getdata(tiny_night / "truth" / "flat_r.fits")
    det = DetectorTruth(
        bias=fits.getdata(tiny_night / "truth" / "bias.fits"),
        dark_rate=fits.getdata(tiny_night / "truth" / "dark_rate.fits"),
        hot_pixels=fits.getdata(tiny_night / "truth" / "hot_pixels.fits"),
        flats={"r": truth_flat},
    )
    rng = np.random.default_rng(5)
    for sky in (30.0, 1500.0):
        raw = read_out(rng, np.float32(sky) * truth_flat, 30.0, det, INST, cosmic_rays=False)
        header = fits.Header({"EXPTIME": 30.0, "FILTER": "r"})
        path = tmp_path / f"sky{sky:g}.fits"
        fits.PrimaryHDU(raw, header).writeto(path)
        ccd = calibrate_frame(path, masters["loaded"], "r", PARAMS)
        good = ccd.mask == 0
        pulls = (ccd.data - sky)[good] / ccd.uncertainty.array[good]
        assert np.mean(ccd.data[good]) == pytest.approx(sky, abs=0.5)
        assert np.std(pulls) == pytest.approx(1.0, abs=0.03)
        stats = frame_statistics(ccd)
        assert stats["sky_std"] / stats["predicted_std"] == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("missing", ["bias", "bias and dark", "everything"])
def test_calibration_with_what_the_night_has(tiny_night, inventory, masters, tmp_path, missing):
    """Pure-sky exposures calibrated without some masters: the level is what remains, and the
    uncertainty plane still matches the pixel scatter (the error bars stay honest)."""
    truth_flat = fits.getdata(tiny_night / "truth" / "flat_r.fits")
    true_bias = fits.getdata(tiny_night / "truth" / "bias.fits")
    det = DetectorTruth(
        bias=true_bias,
        dark_rate=fits.getdata(tiny_night / "truth" / "dark_rate.fits"),
        hot_pixels=fits.getdata(tiny_night / "truth" / "hot_pixels.fits"),
        flats={"r": truth_flat},
    )
    flats = {"r": masters["flats"]["r"]}
    if missing == "bias":
        dark = make_master_dark(_paths(inventory, "dark"), None)
        assert dark.meta["BIASINCL"] is True and dark.meta["BIASCORR"] == "none"
        loaded, params, offset = Masters(darks={60.0: dark}, flats=flats), PARAMS, 0.0
    elif missing == "bias and dark":
        params = FrameDetector(gain=INST.gain, read_noise=INST.read_noise, bias_level=500)
        loaded, offset = Masters(flats=flats), float(np.median(true_bias)) - 500.0
    else:
        loaded, params, offset = Masters(), PARAMS, float(np.median(true_bias))
    rng = np.random.default_rng(8)
    for sky in (30.0, 1500.0):
        raw = read_out(rng, np.float32(sky) * truth_flat, 60.0, det, INST, cosmic_rays=False)
        path = tmp_path / f"sky{sky:g}.fits"
        fits.PrimaryHDU(raw, fits.Header({"EXPTIME": 60.0, "FILTER": "r"})).writeto(path)
        ccd = calibrate_frame(path, loaded, "r", params)
        assert ccd.meta["BIASCORR"] == "none" and "BIASNOTE" in ccd.meta
        good = (ccd.flags == 0) & (det.hot_pixels == 0)
        level = sky + (offset / truth_flat if missing != "everything" else offset)
        residual = (ccd.data - level)[good]
        assert np.median(residual) == pytest.approx(0.0, abs=2.0)
        pulls = residual / ccd.uncertainty.array[good]
        # Within 10 % of the scatter (the full calibration: within 3 %, see above). Without a
        # bias the bias pattern stays in the data (1.8 ADU from pixel to pixel).
        assert np.std(pulls) == pytest.approx(1.0, abs=0.1), (sky, np.std(pulls))
        if missing == "bias":  # the darks carry the bias: the same data as with a bias
            full = calibrate_frame(path, masters["loaded"], "r", PARAMS)
            assert np.median(np.abs(ccd.data - full.data)[good]) < 0.5


def test_calibrated_star_fluxes_agree_with_truth(tiny_night, tiny_frames, tiny_stars, masters):
    """Sky-subtracted star fluxes in pipeline-calibrated frames against true fluxes.

    Stars are used where the same photometry on the frame calibrated with the *true* bias,
    dark and flat recovers the true flux within 2 % (no neighbour spoils the aperture or sky);
    the scatter of that reference against truth is the photometry's, not the calibration's.
    """
    pulls, ratios = [], []
    lights = tiny_frames[(tiny_frames["imagetyp"] == "LIGHT") & (tiny_frames["defect"] == "none")]
    for row in lights:
        ccd = calibrate_frame(tiny_night / row["file"], masters["loaded"], row["filter"], PARAMS)
        assert ccd.data.dtype == np.float32 and ccd.uncertainty.array.dtype == np.float32
        reference = truth_calibrated(tiny_night, row)[0]
        stem = row["file"].split("/")[-1].removesuffix(".fits")
        wcs = WCS(fits.getheader(tiny_night / "truth" / "wcs" / f"{stem}.fits"))
        ra0, dec0 = wcs.wcs.crval
        near = (
            np.hypot((tiny_stars["ra"] - ra0) * np.cos(np.radians(dec0)), tiny_stars["dec"] - dec0)
            < 0.2
        )
        stars = tiny_stars[near]
        x, y = wcs.all_world2pix(stars["ra"], stars["dec"], 0)
        band = row["filter"]
        fwhm = row["fwhm_arcsec"] / INST.pixel_scale
        radius = 2.5 * fwhm
        alpha = fwhm / (2 * np.sqrt(2 ** (1 / 3) - 1))
        enclosed = 1 - (1 + (radius / alpha) ** 2) ** -2
        ny, nx = ccd.shape
        usable = (stars[band] > 12.0) & (stars[band] < 16.0) & ~stars["variable"]
        usable &= (stars["role"] != "target") & (x > 40) & (x < nx - 40) & (y > 40) & (y < ny - 40)
        for k in np.flatnonzero(usable):
            aper = CircularAperture((x[k], y[k]), radius)
            if ApertureStats(ccd.flags & SATURATED, aper).max > 0:
                continue  # saturated core: photometry would flag it
            ann = CircularAnnulus((x[k], y[k]), 7 * fwhm, 9 * fwhm)
            true = 10 ** (-0.4 * (stars[band][k] - row["zeropoint"])) * enclosed
            sky_ref = ApertureStats(reference, ann).median
            if abs(ApertureStats(reference - sky_ref, aper).sum / true - 1) > 0.02:
                continue
            sky = ApertureStats(ccd.data, ann, mask=ccd.mask).median
            stats = ApertureStats(ccd.data - sky, aper, error=ccd.uncertainty.array)
            err = np.hypot(stats.sum_err, true * row["scintillation"])
            ref_sum = ApertureStats(reference - sky_ref, aper).sum
            # The masters' errors add little noise: pipeline vs true calibration.
            pulls.append((stats.sum - ref_sum) / err)
            ratios.append(stats.sum / true)
    assert len(pulls) >= 15
    assert np.median(ratios) == pytest.approx(1.0, abs=0.005)
    # Within the noise: the difference to the truth-calibrated frame is far below each star's
    # photon + scintillation noise.
    assert np.std(pulls) < 0.5


def test_calibrated_frame_mask_and_provenance(tiny_night, tiny_frames, masters, tmp_path):
    row = tiny_frames[(tiny_frames["imagetyp"] == "LIGHT") & (tiny_frames["object"] == "Qatar-1")][
        0
    ]
    ccd = calibrate_frame(tiny_night / row["file"], masters["loaded"], "r", PARAMS)
    raw = fits.getdata(tiny_night / row["file"])
    assert np.all(ccd.flags[raw >= 65535] & SATURATED)
    assert np.array_equal(ccd.mask, ccd.flags > 0)
    assert np.array_equal(ccd.flags & HOT, masters["mask"] & HOT)
    assert ccd.meta["FLATCORR"] == "flat_r.fits" and ccd.meta["DARKCORR"] == "dark_60s.fits"
    assert ccd.meta["DARKSCAL"] == pytest.approx(0.5)
    assert ccd.meta["OBJECT"] == "Qatar-1"
    path = tmp_path / "c.fits"
    write_ccd(ccd, path)
    back = read_ccd(path)
    assert back.mask.dtype == bool and np.array_equal(back.mask, ccd.mask)
    assert back.flags.dtype == np.uint8 and np.array_equal(back.flags, ccd.flags)
    # UNCERT is stored as 16-bit steps of at most 1/400 of the smallest value
    assert np.allclose(back.uncertainty.array, ccd.uncertainty.array, rtol=1.3e-3, atol=0)
    with fits.open(tiny_night / row["file"]) as hdul:  # raw untouched
        assert hdul[0].header["BZERO"] == 32768 and "BIASCORR" not in hdul[0].header
    # A filter without a flat: calibrated all the same, not flat-fielded, and the header
    # says so; the data are the flat-fielded data times the flat.
    unflat = calibrate_frame(tiny_night / row["file"], masters["loaded"], "Ha", PARAMS)
    assert unflat.meta["FLATCORR"] == "none" and "Ha" in unflat.meta["FLATNOTE"]
    flat = masters["flats"]["r"].data
    good = (flat > 0.5) & ~ccd.mask
    assert np.allclose(unflat.data[good], (ccd.data * flat)[good], rtol=1e-4, atol=1e-2)


def test_cosmic_rays_are_masked_when_asked(tiny_night, tiny_frames, masters):
    row = tiny_frames[(tiny_frames["imagetyp"] == "LIGHT") & (tiny_frames["object"] == "Qatar-1")][
        2
    ]
    params = CalibrationParameters(cosmic_rays=True)
    ccd = calibrate_frame(tiny_night / row["file"], masters["loaded"], "r", PARAMS, params)
    assert ccd.meta["CRCLEAN"] is True
    assert ccd.meta["NCOSMIC"] == np.count_nonzero(ccd.flags & COSMIC_RAY) > 0


def test_camera_gain_and_read_noise(inventory, masters):
    summary, pairs = characterise_camera(
        _paths(inventory, "bias"),
        _paths(inventory, "flat"),
        masters["bias"].data,
        INST.gain,
        INST.read_noise,
    )
    rows = {r["quantity"]: r for r in summary}
    assert rows["gain"]["measured"] == pytest.approx(INST.gain, rel=0.03)
    assert rows["read_noise"]["measured"] == pytest.approx(INST.read_noise, rel=0.05)
    assert all(summary["ok"])
    assert len(pairs) >= 3
    wrong, _ = characterise_camera(
        _paths(inventory, "bias"),
        _paths(inventory, "flat"),
        masters["bias"].data,
        2 * INST.gain,
        INST.read_noise,
    )
    assert not wrong["ok"][wrong["quantity"] == "gain"][0]


def test_gain_and_read_noise_auto_from_the_nights_pairs(inventory, masters):
    """instrument.gain/read_noise: auto on a night with biases and flats: photon transfer."""
    summary, _ = characterise_camera(
        _paths(inventory, "bias"), _paths(inventory, "flat"), masters["bias"].data, np.nan, np.nan
    )
    assert not any(summary["ok"])  # nothing configured to compare with
    night = night_detector({"gain": "auto", "read_noise": "auto"}, summary)
    gain, read_noise = night["value"]
    assert gain == pytest.approx(INST.gain, rel=0.03)
    assert read_noise == pytest.approx(INST.read_noise, rel=0.05)
    assert list(night["source"]) == ["photon transfer (flat pairs)", "bias pairs"]
    # A configured value stays; the other is measured.
    mixed = night_detector({"gain": 0.4, "read_noise": "auto"}, summary)
    assert mixed["value"][0] == 0.4 and mixed["source"][0] == "configuration"
    assert mixed["value"][1] == pytest.approx(RN_ADU * 0.4, rel=0.05)


@pytest.fixture(scope="module")
def light_paths(inventory):
    return _paths(inventory, "light")


def test_gain_auto_from_the_lights_sky(light_paths, masters):
    """Without flat pairs: the lights' sky variance against level gives the gain within 10 %
    (stars masked; measured -2.5 % with the read noise known, -4 % from the slope alone)."""
    sky = sky_transfer(light_paths, masters["bias"].data)
    assert len(sky) >= 20 and sky.meta["PEDESTAL"]
    known = gain_from_sky(sky, read_noise_adu=RN_ADU)
    assert known["gain"] == pytest.approx(INST.gain, rel=0.1)
    assert known["method"].startswith("lights' sky, ") and "read noise known" in known["method"]
    in_electrons = gain_from_sky(sky, read_noise_e=INST.read_noise)
    assert in_electrons["gain"] == pytest.approx(known["gain"], rel=0.01)
    slope = gain_from_sky(sky)
    assert slope["gain"] == pytest.approx(INST.gain, rel=0.1) and "slope" in slope["method"]
    # Without any bias level (a night of lights only): the slope, independent of the pedestal.
    raw = sky_transfer(light_paths, None)
    night = night_detector({"gain": "auto", "read_noise": "auto"}, None, raw)
    assert night["value"][0] == pytest.approx(INST.gain, rel=0.1)
    assert "slope" in night["source"][0]
    assert night["source"][1] == "none" and night["reason"][1]
    # Too little spread in level and no bias level: no gain, with the reason.
    same = raw[np.argsort(raw["level"])][:3]
    same["level"] = same["level"][0] + np.array([0.0, 0.1, 0.2])
    failed = gain_from_sky(same)
    assert np.isnan(failed["gain"]) and "span too little" in failed["reason"]


def test_resolve_detector_prefers_configuration_then_header_then_night():
    night = Table(
        rows=[("gain", 0.38, 0.01, "e-/adu", "photon transfer (flat pairs)", "")],
        names=("quantity", "value", "error", "unit", "source", "reason"),
    )
    night.add_row(("read_noise", np.nan, np.nan, "e-", "none", "no biases"))
    auto = {"gain": "auto", "read_noise": "auto"}
    assert resolve_detector({"gain": 0.5, "read_noise": 3.0}, 1.2, 7.0, night) == (
        0.5,
        3.0,
        "configuration",
        "configuration",
    )
    assert resolve_detector(auto, 1.2, 7.0, night) == (1.2, 7.0, "header", "header")
    # NaN or implausible header values (NINA's GAIN is a gain setting like 26) are ignored.
    gain, _, source, _ = resolve_detector({**auto, "read_noise": 3}, 26.0, np.nan, night)
    assert (gain, source) == (0.38, "photon transfer (flat pairs)")
    with pytest.raises(ValueError, match="instrument.read_noise is auto.*no biases"):
        resolve_detector(auto, np.nan, None, night)


def test_calibrated_frame_uses_and_records_the_resolved_values(tiny_night, masters, tmp_path):
    """The uncertainty plane follows the resolved gain; the header says where it came from."""
    truth_flat = fits.getdata(tiny_night / "truth" / "flat_r.fits")
    det = DetectorTruth(
        bias=fits.getdata(tiny_night / "truth" / "bias.fits"),
        dark_rate=fits.getdata(tiny_night / "truth" / "dark_rate.fits"),
        hot_pixels=fits.getdata(tiny_night / "truth" / "hot_pixels.fits"),
        flats={"r": truth_flat},
    )
    raw = read_out(
        np.random.default_rng(9), np.float32(1500) * truth_flat, 30.0, det, INST, cosmic_rays=False
    )
    path = tmp_path / "sky.fits"
    fits.PrimaryHDU(raw, fits.Header({"EXPTIME": 30.0, "FILTER": "r"})).writeto(path)
    ratios = {}
    for gain, source in ((0.3765, "photon transfer (flat pairs)"), (3 * INST.gain, "header")):
        params = FrameDetector(
            gain=gain, read_noise=3.5, gain_source=source, read_noise_source="bias pairs"
        )
        ccd = calibrate_frame(path, masters["loaded"], "r", params)
        assert ccd.meta["GAINSRC"] == source and ccd.meta["RDNSRC"] == "bias pairs"
        assert ccd.meta["GAIN_E"] == gain
        stats = frame_statistics(ccd)
        ratios[source] = stats["sky_std"] / stats["predicted_std"]
    assert ratios["photon transfer (flat pairs)"] == pytest.approx(1.0, abs=0.05)
    assert ratios["header"] == pytest.approx(np.sqrt(3.0), rel=0.05)  # a wrong gain shows


def test_inventory_problems_can_be_fatal(tiny_night):
    from aifa_steps.inventory.table import InventoryError

    cfg = {
        "frame_types": {"bias": ["BIAS"], "dark": ["DARK"], "flat": ["FLAT"], "light": ["LIGHT"]},
        "inventory": {"fatal": ["unmatched_dark"]},
    }
    with pytest.raises(InventoryError, match="unmatched_dark"):
        build_inventory(tiny_night, cfg)
    table = build_inventory(tiny_night, {**cfg, "inventory": {"fatal": []}})
    assert isinstance(table, Table)


def test_nanmedian_of_frames_equals_numpy():
    from aifa_steps.calibration.combine import nanmedian_of_frames

    rng = np.random.default_rng(8)
    for n in (1, 4, 7):
        values = rng.normal(size=(n, 30, 40)).astype(np.float32)
        values[rng.random(values.shape) < 0.1] = np.nan
        values[:, 0, 0] = np.nan  # no frame covers this pixel
        with pytest.warns(RuntimeWarning):
            expected = np.nanmedian(values, axis=0)
        assert np.allclose(nanmedian_of_frames(values), expected, equal_nan=True)


def test_settings_come_from_the_calibration_section():
    section = {
        "sigma_clip": 4.0,
        "max_iterations": 3,
        "memory_limit_mb": 256,
        "flat_min_adu": 1000,
        "hot_pixel_sigma": 6.0,
        "cosmic_rays": True,
    }
    assert ClipParameters.from_config(section) == ClipParameters(4.0, 3, 256)
    assert ClipParameters(4.0, 3).describe()["sigma"] == 4.0
    assert FlatLevels.from_config(section).flat_min_adu == 1000
    assert BadPixelSettings.from_config(section).hot_pixel_sigma == 6.0
    assert CalibrationParameters.from_config(section) == CalibrationParameters(cosmic_rays=True)


def test_bad_pixel_mask_header_documents_every_flag_bit():
    mask = np.zeros((20, 30), np.uint8)
    mask[1, 2] = HOT
    mask[3, 4] = HOT | LOW_RESPONSE
    header = mask_header(mask, ["dark_60s.fits"], BadPixelSettings(hot_pixel_sigma=4.0))
    bits = {header[k] for k in header if k.startswith("FLAGBIT")}
    assert bits == set(PIXEL_FLAGS)
    assert (header["NHOT"], header["NLOWRESP"], header["NHIGHRSP"]) == (2, 1, 0)
    assert "BITS" not in header


def test_bad_pixel_mask_needs_a_dark_or_a_flat():
    with pytest.raises(FrameFailure, match="no usable master dark or flat"):
        mask_from_masters(Masters(missing={"dark": "no dark frames in this night"}))
    flat = CCDData(np.ones((40, 40), np.float32), unit="")
    flat.data[5, 5] = 0.1
    mask = mask_from_masters(Masters(flats={"r": flat}))
    assert mask[5, 5] == LOW_RESPONSE and np.count_nonzero(mask) == 1


def test_failed_master_flat_lists_its_flats_as_unused():
    table = failed_flats_table(["a.fits", "b.fits"], "disk full")
    assert list(table["used"]) == [False, False]
    assert set(table["reason"]) == {"master flat failed: disk full"}
    assert np.isnan(table["level"]).all()


def test_frame_detector_resolves_per_frame():
    instrument = {"gain": "auto", "read_noise": 7.0, "saturation": 60000, "bias_level": 400}
    detector = frame_detector(instrument, {"gain": 1.5, "read_noise": None})
    assert detector == FrameDetector(1.5, 7.0, 60000.0, 400.0, "header", "configuration")
    with pytest.raises(ValueError, match="instrument.gain is auto"):
        frame_detector(instrument, {"gain": None})
    assert np.isnan(night_read_noise_adu(instrument))
    assert night_read_noise_adu({"gain": 2.0, "read_noise": 7.0}) == 3.5


def test_calibrated_light_is_labelled_for_the_later_steps(tmp_path):
    path = tmp_path / "light.fits"
    rng = np.random.default_rng(3)
    data = rng.normal(1000.0, 10.0, (64, 64)).astype(np.float32)
    fits.PrimaryHDU(data, fits.Header({"EXPTIME": 10.0})).writeto(path)
    frame = {"filter": "r", "object": "M 31", "target": "M_31", "exptime": 10.0}
    ccd, stats = calibrate_light(path, Masters(), frame, FrameDetector(1.0, 5.0, bias_level=100))
    assert ccd.meta["TARGET"] == "M_31" and ccd.meta["FRAMEOK"] is True
    assert ccd.meta["SKYMED"] == pytest.approx(stats["sky_median"]) == pytest.approx(900, abs=2)
    assert ccd.meta["NMASKED"] == stats["n_masked"]
    header = failed_light_header(frame)
    assert (header["OBJECT"], header["FILTNAME"], header["EXPTIME"]) == ("M 31", "r", 10.0)


def test_calibration_report_reads_the_statistics_cards(masters, tiny_night, tiny_frames, tmp_path):
    from aifa_steps.calibration.qc import calibration_report

    row = tiny_frames[tiny_frames["imagetyp"] == "LIGHT"][0]
    frame = {"filter": "r", "object": "Qatar-1", "target": "Qatar-1", "exptime": 30.0}
    ccd, stats = calibrate_light(tiny_night / row["file"], masters["loaded"], frame, PARAMS)
    write_ccd(ccd, tmp_path / "light.fits")
    write_ccd(masters["bias"], tmp_path / "bias.fits")
    write_ccd(masters["flats"]["r"], tmp_path / "flat_r.fits")
    mask = masters["mask"]
    fits.PrimaryHDU(mask, mask_header(mask)).writeto(tmp_path / "bad_pixels.fits")
    out = {k: tmp_path / f"{k}.ecsv" for k in ("masters", "frames")}
    calibration_report(
        bias=tmp_path / "bias.fits",
        darks=[],
        flats=[tmp_path / "flat_r.fits"],
        bad_pixels=tmp_path / "bad_pixels.fits",
        frames=[tmp_path / "light.fits"],
        read_noise_adu=RN_ADU,
        masters_table=out["masters"],
        frames_table=out["frames"],
        preview_dir=tmp_path / "previews",
        frames_plot=tmp_path / "frames.png",
    )
    frames = Table.read(out["frames"])
    assert list(frames["stem"]) == ["light"]
    assert frames["sky_median"][0] == pytest.approx(stats["sky_median"])
    assert frames["n_masked"][0] == stats["n_masked"]
    table = Table.read(out["masters"])
    assert "no dark frames" in table[table["kind"] == "dark"]["reason"][0]
    assert table[table["kind"] == "flat"]["n_hot"][0] == np.count_nonzero(mask & HOT)
    assert (tmp_path / "previews" / "master_flat_r.png").exists()
