"""The simulator's physics, checked against the truth it writes."""

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from photutils.aperture import (
    ApertureStats,
    CircularAnnulus,
    CircularAperture,
    aperture_photometry,
)
from photutils.centroids import centroid_com

from aifa_steps.core.observing import Site, airmass
from aifa_steps.products.transit_model import TransitModel
from aifa_steps.simulate import get_preset, plan_night
from aifa_steps.simulate.presets import Instrument

from .helpers import truth_calibrated

INST = Instrument()
READ_NOISE_ADU = INST.read_noise / INST.gain


def _raw(night, file):
    return fits.getdata(night / file).astype(np.float64)


def _frames(tiny_frames, imagetyp, defect="none"):
    return tiny_frames[(tiny_frames["imagetyp"] == imagetyp) & (tiny_frames["defect"] == defect)]


def test_night_layout_and_contract_files(tiny_night):
    for sub in ("BIAS", "DARK", "FLAT", "LIGHT"):
        assert any((tiny_night / sub).glob("*.fits")), sub
    for name in (
        "stars.ecsv",
        "frames.ecsv",
        "bias.fits",
        "dark_rate.fits",
        "hot_pixels.fits",
        "flat_g.fits",
        "flat_r.fits",
        "flat_i.fits",
        "transit.json",
    ):
        assert (tiny_night / "truth" / name).exists(), name
    assert (tiny_night / "config.yaml").exists()
    stars = Table.read(tiny_night / "truth" / "stars.ecsv")
    assert {"id", "ra", "dec", "g", "r", "i", "variable", "role"} <= set(stars.colnames)
    assert set(stars["role"]) == {"field", "cluster", "target"}
    frames = Table.read(tiny_night / "truth" / "frames.ecsv")
    for col in (
        "file",
        "imagetyp",
        "filter",
        "exptime",
        "object",
        "mjd",
        "airmass",
        "seeing_arcsec",
        "zeropoint",
        "sky_adu",
        "cloudy",
    ):
        assert col in frames.colnames
    assert len(frames) == sum(
        len(list((tiny_night / d).glob("*.fits"))) for d in ("BIAS", "DARK", "FLAT", "LIGHT")
    )
    lights = frames[frames["imagetyp"] == "LIGHT"]
    for row in lights:
        stem = row["file"].split("/")[-1].removesuffix(".fits")
        assert (tiny_night / "truth" / "wcs" / f"{stem}.fits").exists()


def test_raw_frames_are_uint16_with_nina_headers_and_no_wcs(tiny_night, tiny_frames):
    light = _frames(tiny_frames, "LIGHT")[0]
    with fits.open(tiny_night / light["file"]) as hdul:
        header = hdul[0].header
        assert hdul[0].data.dtype.kind in "ui" and header["BITPIX"] == 16
        assert header["BZERO"] == 32768
    for key in (
        "IMAGETYP",
        "FILTER",
        "EXPTIME",
        "OBJECT",
        "DATE-OBS",
        "RA",
        "DEC",
        "AIRMASS",
        "XBINNING",
        "YBINNING",
        "GAIN",
        "OFFSET",
        "SET-TEMP",
        "CCD-TEMP",
        "PIERSIDE",
        "FOCUSPOS",
        "FOCTEMP",
    ):
        assert key in header, key
    assert header["IMAGETYP"] == "LIGHT" and header["XBINNING"] == 2
    assert "CTYPE1" not in header and "CD1_1" not in header
    # The pointing in the header is off the true optical axis by tens of arcsec, not more.
    sep = (
        np.hypot(
            (header["RA"] - light["ra_axis"]) * np.cos(np.radians(header["DEC"])),
            header["DEC"] - light["dec_axis"],
        )
        * 3600
    )
    assert 1.0 < sep < 180.0


def test_bias_frames_have_configured_read_noise(tiny_night, tiny_frames):
    truth = fits.getdata(tiny_night / "truth" / "bias.fits")
    biases = [_raw(tiny_night, f) for f in _frames(tiny_frames, "BIAS")["file"]]
    noise = [np.std(b - truth) for b in biases]
    assert np.median(noise) == pytest.approx(READ_NOISE_ADU, rel=0.03)
    master = np.mean(biases, axis=0)
    assert np.std(master - truth) == pytest.approx(READ_NOISE_ADU / np.sqrt(len(biases)), rel=0.05)
    # The fixed pattern is real: columns differ by more than the noise of the master.
    assert np.std(np.mean(truth, axis=0)) > 1.0
    assert abs(np.median(truth) - INST.bias_level) < 5


def test_dark_current_and_hot_pixels(tiny_night, tiny_frames):
    bias = fits.getdata(tiny_night / "truth" / "bias.fits").astype(float)
    rate = fits.getdata(tiny_night / "truth" / "dark_rate.fits").astype(float)
    hot = fits.getdata(tiny_night / "truth" / "hot_pixels.fits").astype(bool)
    darks = _frames(tiny_frames, "DARK")
    mean_dark = np.median([_raw(tiny_night, f) for f in darks["file"]], axis=0) - bias
    t = darks["exptime"][0]
    assert hot.sum() >= 10
    # Hot pixels: the dark signal follows the true rate (1-100 ADU/s).
    measured = mean_dark[hot] / t
    unsaturated = rate[hot] * t < 50000
    assert np.allclose(measured[unsaturated], rate[hot][unsaturated], rtol=0.1, atol=0.5)
    # Everywhere else the dark current is tiny and the frame is noise around the bias.
    assert abs(np.median(mean_dark[~hot])) < 1.0


def test_cosmic_rays_hit_long_exposures(tiny_night, tiny_frames):
    bias = fits.getdata(tiny_night / "truth" / "bias.fits").astype(float)
    rate = fits.getdata(tiny_night / "truth" / "dark_rate.fits").astype(float)
    dark = _frames(tiny_frames, "DARK")[0]
    excess = _raw(tiny_night, dark["file"]) - bias - rate * dark["exptime"]
    assert np.sum(excess > 10 * READ_NOISE_ADU) >= 1


def test_flats_near_40000_adu_and_follow_the_true_flat(tiny_night, tiny_frames):
    bias = fits.getdata(tiny_night / "truth" / "bias.fits").astype(float)
    flats = _frames(tiny_frames, "FLAT")
    for band in ("g", "r", "i"):
        truth = fits.getdata(tiny_night / "truth" / f"flat_{band}.fits").astype(float)
        assert np.median(truth) == pytest.approx(1.0, abs=1e-6)
        # Vignetting, dust and dead pixels make the flat structured.
        assert truth.min() < 0.9 and truth.std() > 0.004
        rows = flats[flats["filter"] == band]
        stack = []
        for row in rows:
            signal = _raw(tiny_night, row["file"]) - bias
            assert 35000 < np.median(signal) < 45000
            assert signal.max() < 65535 - 500
            stack.append(signal / np.median(signal))
        ratio = np.mean(stack, axis=0) / truth
        good = truth > 0.5
        # Per-pixel photon noise of the mean normalised flat.
        expected = 1.0 / np.sqrt(40000 * INST.gain * len(rows))
        assert np.std(ratio[good]) == pytest.approx(expected, rel=0.15)


def test_bad_flats_are_there(tiny_night, tiny_frames):
    saturated = tiny_frames[tiny_frames["defect"] == "saturated_flat"]
    faint = tiny_frames[tiny_frames["defect"] == "faint_flat"]
    assert len(saturated) == 1 and len(faint) == 1
    assert np.mean(_raw(tiny_night, saturated["file"][0]) >= 65535) > 0.5
    assert np.median(_raw(tiny_night, faint["file"][0])) < 4000


def _calibrated(night, row):
    data, raw, _ = truth_calibrated(night, row)
    return data, raw


def _isolated_stars(stars, wcs, shape, band, m_range, min_sep_px=30, margin=40):
    ra0, dec0 = wcs.wcs.crval
    near = np.hypot((stars["ra"] - ra0) * np.cos(np.radians(dec0)), stars["dec"] - dec0) < 0.3
    stars = stars[near]
    x, y = wcs.all_world2pix(stars["ra"], stars["dec"], 0)
    ny, nx = shape
    inside = (x > margin) & (x < nx - margin) & (y > margin) & (y < ny - margin)
    # Neighbours within min_sep brighter than 4 mag fainter than the star spoil it.
    picks = []
    for k in np.flatnonzero(
        inside
        & (stars[band] > m_range[0])
        & (stars[band] < m_range[1])
        & ~stars["variable"]
        & (stars["role"] != "target")
    ):
        d = np.hypot(x - x[k], y - y[k])
        close = (d < min_sep_px) & (d > 0) & (stars[band] < stars[band][k] + 4)
        if not close.any():
            picks.append(k)
    return np.array(picks, dtype=int), x, y, stars


def _moffat(shape, x0, y0, fwhm_px, beta=3.0):
    alpha = fwhm_px / (2 * np.sqrt(2 ** (1 / beta) - 1))
    yy, xx = np.indices(shape)
    r2 = ((xx - x0) ** 2 + (yy - y0) ** 2) / alpha**2
    return (beta - 1) / (np.pi * alpha**2) * (1 + r2) ** -beta


def test_star_counts_follow_magnitude_and_zero_point(tiny_night, tiny_frames, tiny_stars):
    """Total counts equal 10**(-0.4 (m - zeropoint)): PSF fits at the true positions.

    Each star is fitted with the known Moffat PSF together with every neighbour within the
    stamp (fluxes and a constant sky free), so crowding does not bias the result.
    """
    ratios, pulls = [], []
    for row in _frames(tiny_frames, "LIGHT")[::3]:
        image, _ = _calibrated(tiny_night, row)
        stem = row["file"].split("/")[-1].removesuffix(".fits")
        wcs = WCS(fits.getheader(tiny_night / "truth" / "wcs" / f"{stem}.fits"))
        band = row["filter"]
        picks, x, y, stars = _isolated_stars(
            tiny_stars, wcs, image.shape, band, (12.5, 15.5), min_sep_px=0
        )
        fwhm = row["fwhm_arcsec"] / INST.pixel_scale
        half = int(3 * fwhm)
        for k in picks:
            x0, y0 = int(round(x[k])), int(round(y[k]))
            cut = image[y0 - half : y0 + half + 1, x0 - half : x0 + half + 1]
            if cut.max() > 60000:
                continue  # saturated
            dx, dy = x - (x0 - half), y - (y0 - half)
            members = np.flatnonzero(
                (np.abs(dx - half) < half + 3 * fwhm)
                & (np.abs(dy - half) < half + 3 * fwhm)
                & (stars[band] < 21.5)
            )
            design = [np.ones(cut.size)] + [
                _moffat(cut.shape, dx[j], dy[j], fwhm).ravel() for j in members
            ]
            coef, *_ = np.linalg.lstsq(np.array(design).T, cut.ravel(), rcond=None)
            fitted = coef[1 + list(members).index(k)]
            true = 10 ** (-0.4 * (stars[band][k] - row["zeropoint"]))
            noise = np.sqrt(true / INST.gain + 4 * np.pi * fwhm**2 * row["sky_adu"] / INST.gain)
            ratios.append(fitted / true)
            pulls.append((fitted - true) / np.hypot(noise, true * row["scintillation"]))
    ratios = np.array(ratios)
    assert len(ratios) >= 20
    assert np.median(ratios) == pytest.approx(1.0, abs=0.005)
    # Photon, sky and scintillation noise explain the scatter.
    assert np.std(pulls) < 1.5


def test_zero_points_follow_extinction_and_airmass(tiny_night, tiny_frames):
    preset = get_preset("tiny")
    site = Site("s", preset.site.latitude, preset.site.longitude, preset.site.elevation)
    lights = tiny_frames[tiny_frames["imagetyp"] == "LIGHT"]
    for row in lights:
        mid = row["mjd"] + row["exptime"] / 2 / 86400
        x = airmass(mid, row["ra_axis"], row["dec_axis"], site)
        assert row["airmass"] == pytest.approx(float(x), rel=1e-6)
        band = row["filter"]
        expected = (
            INST.zp_1s[band]
            + 2.5 * np.log10(row["exptime"])
            - INST.extinction[band] * row["airmass"]
            + 2.5 * np.log10(row["transparency"])
        )
        assert row["zeropoint"] == pytest.approx(expected, abs=1e-9)
        assert 1.0 <= row["airmass"] < 2.5
    clear = lights[~lights["cloudy"]]
    assert np.all(clear["transparency"] > 0.95)
    cloudy = lights[lights["cloudy"]]
    assert len(cloudy) == 1 and cloudy["transparency"][0] < 0.1
    # The header airmass (frame start) agrees with the truth (mid-exposure).
    header = fits.getheader(tiny_night / clear["file"][0])
    assert header["AIRMASS"] == pytest.approx(clear["airmass"][0], abs=0.01)


def test_true_wcs_round_trip_and_star_positions(tiny_night, tiny_frames, tiny_stars):
    """Stars are rendered where the true TAN-SIP WCS puts them (to a few hundredths of a px)."""
    row = _frames(tiny_frames, "LIGHT")[1]
    stem = row["file"].split("/")[-1].removesuffix(".fits")
    header = fits.getheader(tiny_night / "truth" / "wcs" / f"{stem}.fits")
    assert header["CTYPE1"] == "RA---TAN-SIP" and header["A_ORDER"] == 3
    wcs = WCS(header)
    assert (header["IMAGEW"], header["IMAGEH"]) == (640, 448)
    scale = np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600
    assert scale == pytest.approx(INST.pixel_scale, rel=1e-3)
    xs, ys = np.meshgrid(np.linspace(0, 639, 7), np.linspace(0, 447, 5))
    sky = wcs.pixel_to_world(xs.ravel(), ys.ravel())
    x2, y2 = wcs.world_to_pixel(sky)
    assert np.allclose(x2, xs.ravel(), atol=1e-4) and np.allclose(y2, ys.ravel(), atol=1e-4)

    image, _ = _calibrated(tiny_night, row)
    picks, x, y, _ = _isolated_stars(tiny_stars, wcs, image.shape, row["filter"], (12.5, 15.0))
    assert len(picks) >= 3
    offsets = []
    for k in picks:
        x0, y0 = int(round(x[k])), int(round(y[k]))
        cut = image[y0 - 12 : y0 + 13, x0 - 12 : x0 + 13]
        cut = cut - np.median(image[y0 - 30 : y0 + 31, x0 - 30 : x0 + 31])
        cx, cy = centroid_com(np.clip(cut, 0, None))
        offsets.append(np.hypot(x0 - 12 + cx - x[k], y0 - 12 + cy - y[k]))
    assert np.median(offsets) < 0.1


def test_pier_flip_rotates_the_field(tiny_frames):
    lights = tiny_frames[tiny_frames["imagetyp"] == "LIGHT"]
    for row in lights:
        expected = 0.6 + (180.0 if row["pierside"] == "East" else 0.0)
        assert row["rotation_deg"] == pytest.approx(expected)


def test_transit_truth_is_consistent(tiny_night):
    truth = json.loads((tiny_night / "truth" / "transit.json").read_text())
    model = TransitModel.from_truth(truth)
    k2 = truth["rp_rs"] ** 2
    assert k2 < truth["depth"] < 1.35 * k2
    # Duration from the model's own contact points.
    t = truth["t0_bjd_tdb"] + np.linspace(-0.1, 0.1, 20001)
    in_transit = t[model.flux(t) < 1.0]
    numeric_hours = (in_transit[-1] - in_transit[0]) * 24
    assert truth["duration_hours"] == pytest.approx(numeric_hours, abs=1.0 / 60)
    stars = Table.read(tiny_night / "truth" / "stars.ecsv")
    host = stars[stars["id"] == truth["star_id"]]
    assert host["role"][0] == "target" and not host["variable"][0]


def test_series_covers_the_transit_and_variables_vary(tiny_night, tiny_frames, tiny_stars):
    truth = json.loads((tiny_night / "truth" / "transit.json").read_text())
    series = tiny_frames[tiny_frames["object"] == truth["object"]]
    from aifa_steps.core.observing import bjd_tdb

    preset = get_preset("tiny")
    site = Site("s", preset.site.latitude, preset.site.longitude, preset.site.elevation)
    t = bjd_tdb(np.asarray(series["mjd"]), preset.transit.ra, preset.transit.dec, site)
    half = truth["duration_hours"] / 48
    assert t.min() < truth["t0_bjd_tdb"] - half and t.max() > truth["t0_bjd_tdb"] + half
    variables = tiny_stars[tiny_stars["variable"]]
    assert len(variables) >= 3
    assert np.all(variables["var_amplitude"] >= 0.01)


def test_target_follows_the_true_light_curve(tiny_night, tiny_frames, tiny_stars):
    """Measured host flux through the night follows the transit model within the noise."""
    from aifa_steps.core.observing import bjd_tdb

    truth = json.loads((tiny_night / "truth" / "transit.json").read_text())
    model = TransitModel.from_truth(truth)
    preset = get_preset("tiny")
    site = Site("s", preset.site.latitude, preset.site.longitude, preset.site.elevation)
    series = tiny_frames[
        (tiny_frames["object"] == truth["object"]) & (tiny_frames["defect"] == "none")
    ]
    host = tiny_stars[tiny_stars["id"] == truth["star_id"]][0]
    measured, expected = [], []
    for row in series:
        image, _ = _calibrated(tiny_night, row)
        stem = row["file"].split("/")[-1].removesuffix(".fits")
        wcs = WCS(fits.getheader(tiny_night / "truth" / "wcs" / f"{stem}.fits"))
        x, y = wcs.all_world2pix([host["ra"]], [host["dec"]], 0)
        r = 4 * row["fwhm_arcsec"] / INST.pixel_scale
        sky = ApertureStats(image, CircularAnnulus((x[0], y[0]), r + 5, r + 15)).median
        flux = aperture_photometry(image, CircularAperture((x[0], y[0]), r))["aperture_sum"][0]
        measured.append((flux - sky * np.pi * r**2) / 10 ** (-0.4 * (host["r"] - row["zeropoint"])))
        mid = row["mjd"] + row["exptime"] / 2 / 86400
        expected.append(model.flux([bjd_tdb(mid, host["ra"], host["dec"], site)])[0])
    measured, expected = np.array(measured), np.array(expected)
    out = expected == 1.0
    relative = measured / np.median(measured[out])
    residual = relative - expected
    # Photon, sky and scintillation noise are ~0.25 % per frame.
    assert np.std(residual) < 0.006
    deep = expected < 1 - 0.8 * truth["depth"]
    assert deep.sum() >= 3
    assert np.mean(residual[deep]) == pytest.approx(0.0, abs=0.004)
    assert 1 - np.min(expected) == pytest.approx(truth["depth"], rel=0.05)


def test_reference_catalogue_mimics_refcat2(tiny_night, tiny_stars):
    refcat = Table.read(tiny_night / "refcat.ecsv")
    assert refcat.colnames[:8] == [
        "RA_ICRS",
        "DE_ICRS",
        "gmag",
        "e_gmag",
        "rmag",
        "e_rmag",
        "imag",
        "e_imag",
    ]
    assert refcat["rmag"].max() < 19.2
    assert len(refcat) == np.sum(tiny_stars["r"] <= 19.0)
    bright = refcat["rmag"] < 16
    assert np.all(refcat["e_rmag"][bright] < 0.01)
    assert 0.01 < np.median(refcat["e_rmag"][refcat["rmag"] > 18.5]) < 0.05


def test_same_seed_same_night_other_seed_other_night():
    preset = get_preset("tiny")
    a, _ = plan_night(preset, 3)
    b, _ = plan_night(preset, 3)
    c, _ = plan_night(preset, 4)
    assert [p.file for p in a] == [p.file for p in b]
    assert [p.zeropoint for p in a if p.imagetyp == "LIGHT"] == [
        p.zeropoint for p in b if p.imagetyp == "LIGHT"
    ]
    assert [p.seeing_arcsec for p in a if p.imagetyp == "LIGHT"] != [
        p.seeing_arcsec for p in c if p.imagetyp == "LIGHT"
    ]


def test_bad_frames_of_the_tiny_night(tiny_night, tiny_frames):
    corrupt = tiny_frames[tiny_frames["defect"] == "corrupt"]
    assert len(corrupt) == 1
    with pytest.raises(Exception):  # noqa: B017 - any read error will do
        with fits.open(tiny_night / corrupt["file"][0]) as hdul:
            np.asarray(hdul[0].data).sum()
    no_filter = tiny_frames[tiny_frames["defect"] == "no_filter"]
    assert len(no_filter) == 1
    assert "FILTER" not in fits.getheader(tiny_night / no_filter["file"][0])


def test_presets():
    assert get_preset("full").shape == (3194, 4788)
    assert get_preset("demo", n_transit_frames=12).transit.n_frames == 12
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("huge")
