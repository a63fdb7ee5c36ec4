"""Detection on a reference frame, its choice, DS9 regions and the catalogue cross-match."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from aifa_steps.core.formats import frame_stem
from aifa_steps.photometry.background import estimate_background
from aifa_steps.photometry.detection import detect_sources
from aifa_steps.photometry.growth import frame_seeing
from aifa_steps.photometry.refcat import crossmatch, select_around
from aifa_steps.photometry.reference import (
    choose_reference_frame,
    isolated_sources,
    reference_sources,
    write_ds9_regions,
)
from aifa_steps.photometry.settings import DetectionParameters

from .helpers import truth_calibrated


@pytest.fixture(scope="module")
def cluster_frame(tiny_night, tiny_frames):
    """A clear tiny-night r frame of the cluster calibrated with the true masters."""
    rows = tiny_frames[
        (tiny_frames["object"] == "NGC7789")
        & (tiny_frames["filter"] == "r")
        & (tiny_frames["defect"] == "none")
    ]
    row = rows[0]
    data, raw, _ = truth_calibrated(tiny_night, row)
    stem = frame_stem(row["file"])
    wcs = WCS(fits.getheader(tiny_night / "truth" / "wcs" / f"{stem}.fits"))
    return data.astype(np.float32), raw >= 65535, wcs, row


def test_detections_are_the_true_stars_at_their_positions(cluster_frame, tiny_stars):
    data, saturated, wcs, row = cluster_frame
    background, rms = estimate_background(data, saturated)
    found = detect_sources(data, background, rms, wcs, saturated)
    ra0, dec0 = wcs.wcs.crval
    tiny_stars = select_around(tiny_stars, ra0, dec0, 0.2, "ra", "dec")
    assert list(found["id"][:3]) == [1, 2, 3]
    assert np.all(np.diff(found["segment_flux"]) <= 0)
    x, y = wcs.all_world2pix(tiny_stars["ra"], tiny_stars["dec"], 0, quiet=True)
    ny, nx = data.shape
    inside = (x > 10) & (x < nx - 11) & (y > 10) & (y < ny - 11)
    # Stars that stand well above the noise: S/N > 30 within the seeing disc.
    flux = 10 ** (-0.4 * (tiny_stars["r"] - row["zeropoint"]))
    noise = np.sqrt(np.pi * (row["fwhm_arcsec"] / 0.607) ** 2 * np.median(rms) ** 2)
    # Crowded pairs (a brighter star within 8 arcsec) merge at the tutorial's smoothing; the
    # others must all be found.
    alone = isolated_sources(tiny_stars["ra"], tiny_stars["dec"], flux, 8.0, max_ratio=0.1)
    bright = inside & (flux / noise > 30) & alone
    matched = crossmatch(
        Table({"ra": tiny_stars["ra"][bright], "dec": tiny_stars["dec"][bright]}),
        Table({"RA_ICRS": found["ra"], "DE_ICRS": found["dec"]}),
        radius_arcsec=1.0,
    )
    completeness = np.mean(matched["refcat_row"] >= 0)
    assert bright.sum() > 30
    assert completeness > 0.95
    # Isolated, unsaturated detections sit on the true positions (windowed centroids).
    clean = found[isolated_sources(found["ra"], found["dec"], found["segment_flux"], 6.0)]
    clean = clean[(clean["peak"] < 20000) & (clean["snr"] > 50)]
    back = crossmatch(
        clean, Table({"RA_ICRS": tiny_stars["ra"], "DE_ICRS": tiny_stars["dec"]}), 1.0
    )
    assert np.mean(back["refcat_row"] >= 0) > 0.9  # the rest: pairs closer than the seeing
    assert np.nanmedian(back["refcat_sep_arcsec"]) < 0.05  # 0.08 pixel
    # The seeing from the half-maximum area of the same stars is the true FWHM.
    seeing, n = frame_seeing(data - background, wcs, clean["x"], clean["y"])
    assert n > 10
    assert seeing == pytest.approx(row["fwhm_arcsec"], rel=0.05)


def test_reference_sources_carry_isolation_and_catalogue(cluster_frame, tiny_night):
    data, saturated, wcs, _ = cluster_frame
    background, rms = estimate_background(data, saturated)
    refcat = Table.read(tiny_night / "refcat.ecsv")
    table = reference_sources(data, background, rms, wcs, refcat, saturated, isolation_arcsec=12)
    assert {"isolated", "refcat_sep_arcsec", "rmag", "e_gmag"} <= set(table.colnames)
    matched = table["refcat_row"] >= 0
    assert matched.mean() > 0.8
    assert np.all(table["refcat_sep_arcsec"][matched] < 2.0)
    assert np.all(np.isnan(table["rmag"][~matched]))
    assert 0 < table["isolated"].sum() < len(table)
    # A flux cut keeps only the bright sources.
    cut = DetectionParameters(min_flux=float(np.median(table["segment_flux"])))
    fewer = detect_sources(data, background, rms, wcs, saturated, cut)
    assert len(fewer) == pytest.approx(len(table) / 2, rel=0.1)


def test_a_blank_frame_has_no_detections():
    rng = np.random.default_rng(1)
    data = rng.normal(100, 5, (200, 200)).astype(np.float32)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cdelt = [-0.607 / 3600, 0.607 / 3600]
    wcs.wcs.crval = [10, 20]
    with pytest.raises(ValueError, match="no sources"):
        detect_sources(
            data,
            np.full(data.shape, 100.0),
            np.full(data.shape, 5.0),
            wcs,
            params=DetectionParameters(threshold_sigma=10),
        )


def test_reference_frame_is_the_best_seeing_among_the_deepest():
    frames = Table(
        {
            "stem": ["a", "b", "c", "d", "e"],
            "filter": ["r", "r", "r", "g", "r"],
            "exptime": [30.0, 60.0, 60.0, 120.0, 60.0],
            "fwhm_arcsec": [1.5, 2.5, 2.1, 1.0, np.nan],
        }
    )
    assert choose_reference_frame(frames, "r") == "c"
    assert choose_reference_frame(frames, "g") == "d"
    assert choose_reference_frame(frames, "i") == "d"  # no i frame: deepest of all
    assert choose_reference_frame(frames[:1], "r") == "a"
    with pytest.raises(ValueError, match="no solved frame"):
        choose_reference_frame(frames[:0], "r")


def test_ds9_regions_list_every_source(tmp_path):
    table = Table({"id": [1, 2], "ra": [10.0, 10.001], "dec": [20.0, -0.5]})
    path = tmp_path / "ref.reg"
    write_ds9_regions(table, path, radius_arcsec=4)
    lines = path.read_text().splitlines()
    assert lines[2] == "fk5"
    assert lines[3] == 'circle(10.0000000,20.0000000,4.00") # text={1}'
    assert lines[4].startswith("circle(10.0010000,-0.5000000,")


def test_isolation_depends_on_neighbour_brightness():
    ra = np.array([10.0, 10.0 + 5 / 3600, 10.0 + 60 / 3600])
    dec = np.array([20.0, 20.0, 20.0])
    flux = np.array([1000.0, 5.0, 1000.0])  # the faint neighbour adds 0.5 %
    assert list(isolated_sources(ra, dec, flux, 10.0)) == [True, False, True]
    flux = np.array([1000.0, 50.0, 1000.0])  # 5 %: the first star is spoiled
    assert list(isolated_sources(ra, dec, flux, 10.0)) == [False, False, True]


def test_crossmatch_takes_the_nearest_star_within_the_radius():
    sources = Table({"ra": [10.0, 10.0, 11.0], "dec": [20.0, 20.001, 20.0]})
    refcat = Table(
        {
            "RA_ICRS": [10.0 + 0.5 / 3600 / np.cos(np.radians(20)), 11.0 + 0.01],
            "DE_ICRS": [20.0, 20.0],
            "rmag": [12.0, 13.0],
        }
    )
    out = crossmatch(sources, refcat, 2.0)
    assert list(out["refcat_row"]) == [0, -1, -1]
    assert out["refcat_sep_arcsec"][0] == pytest.approx(0.5, abs=1e-3)
    assert out["rmag"][0] == 12.0 and np.isnan(out["rmag"][1])


def _blended_field(seed=7):
    """A noisy field of Moffat stars with close pairs (blends) and isolated stars."""
    from aifa_steps.simulate.render import add_moffat_stars

    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 3.0, size=(300, 400))
    x = np.r_[rng.uniform(20, 380, 60), 100.0, 105.5, 250.0, 253.0]
    y = np.r_[rng.uniform(20, 280, 60), 150.0, 152.0, 60.0, 66.0]
    flux = np.r_[rng.uniform(2e3, 4e4, 60), 2e4, 8e3, 3e4, 3e4]
    add_moffat_stars(image, x, y, flux, 4.0, 3.0, 40.0)
    return image, x, y


def test_fast_segmentation_steps_equal_photutils():
    """Separable smoothing and deblending only segments with two peaks change nothing."""
    from photutils.segmentation import SourceFinder, make_2dgaussian_kernel
    from photutils.segmentation import detect_sources as photutils_detect
    from scipy.ndimage import convolve

    from aifa_steps.photometry.detection import _blend_candidates, _convolve

    image, _, _ = _blended_field()
    kernel = np.asarray(make_2dgaussian_kernel(4.0, size=21).array, float)
    smooth = _convolve(image.astype(np.float32), kernel)
    direct = convolve(image.astype(np.float32), kernel.astype(np.float32), mode="nearest")
    assert np.allclose(smooth, direct, atol=1e-4)
    finder = SourceFinder(n_pixels=4, connectivity=4, progress_bar=False)
    everything = finder(smooth, 9.0)
    segments = photutils_detect(smooth, 9.0, 4, connectivity=4)
    candidates = _blend_candidates(smooth, segments)
    assert 0 < candidates.size < segments.n_labels  # most segments have a single peak
    from photutils.segmentation import deblend_sources

    ours = deblend_sources(smooth, segments, 4, labels=candidates, connectivity=4)
    assert ours.n_labels == everything.n_labels > segments.n_labels
    # The same partition of the pixels, whatever the numbering.
    pairs = {(a, b) for a, b in zip(ours.data.ravel(), everything.data.ravel(), strict=True)}
    assert len(pairs) == everything.n_labels + 1


def test_half_light_radii_and_windowed_centroids_of_a_gaussian_star():
    """A Gaussian's half-light radius is FWHM / 2; photutils' radius agrees to 1 %."""
    from photutils.segmentation import SourceCatalog
    from photutils.segmentation import detect_sources as photutils_detect

    from aifa_steps.core.centroids import half_light_radii, windowed_centroids

    yy, xx = np.mgrid[0:80, 0:90]
    sigma = 2.2
    x0, y0 = 40.3, 37.8
    image = (
        5e4 / (2 * np.pi * sigma**2) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))
    )
    radius = half_light_radii(image, np.array([x0]), np.array([y0]), np.array([5e4]), 15.0)
    assert radius[0] == pytest.approx(sigma * np.sqrt(2 * np.log(2)), rel=0.01)
    segments = photutils_detect(image, 5.0, 4)
    catalogue = SourceCatalog(image, segments)
    photutils_radius = catalogue.flux_radius(0.5).value
    ours = half_light_radii(
        image,
        np.atleast_1d(catalogue.x_centroid),
        np.atleast_1d(catalogue.y_centroid),
        np.atleast_1d(catalogue.kron_flux),
        15.0,
        segments.data,
        np.atleast_1d(catalogue.labels),
    )
    assert ours[0] == pytest.approx(float(np.atleast_1d(photutils_radius)[0]), rel=0.01)
    # No flux, or the half-flux radius beyond reach: NaN.
    assert np.isnan(half_light_radii(image, np.array([x0]), np.array([y0]), np.array([0.0])))[0]
    assert np.isnan(half_light_radii(image, np.array([x0]), np.array([y0]), np.array([9e5])))[0]
    x, y = windowed_centroids(image, np.array([41.0]), np.array([37.0]), np.array([2 * ours[0]]))
    assert x[0] == pytest.approx(x0, abs=1e-3) and y[0] == pytest.approx(y0, abs=1e-3)


def test_target_reference_detects_matches_and_sizes_the_apertures(cluster_frame, tiny_night):
    from astropy.nddata import CCDData, StdDevUncertainty

    from aifa_steps.photometry.reference import (
        reference_frame_warning,
        reference_summary,
        solved_seeing,
        target_reference,
    )
    from aifa_steps.photometry.settings import PhotometryParameters

    data, saturated, wcs, _ = cluster_frame
    ccd = CCDData(data, unit="adu", wcs=wcs, mask=saturated, meta={"FILTER": "r"})
    ccd.uncertainty = StdDevUncertainty(np.sqrt(np.clip(data, 1, None)))
    ccd.flags = None
    status = Table(
        {
            "stem": ["a", "b", "c"],
            "target": ["NGC7789", "NGC7789", "other"],
            "solved": [True, False, True],
            "fwhm_arcsec": [2.5, 9.0, 4.0],
        }
    )
    seeing = solved_seeing(status, "NGC7789")
    assert list(seeing) == [2.5]
    table, residual = target_reference(
        ccd,
        Table.read(tiny_night / "refcat.ecsv"),
        "a",
        seeing,
        PhotometryParameters.from_config({"apertures": "auto", "aperture_fwhm": [1.0, 2.0]}),
        DetectionParameters.from_config(None),
        12.0,
        2.0,
        "NGC 7789",
        "NGC7789",
    )
    assert residual.shape == data.shape
    assert table.meta["APKEYS"] == ["1fwhm", "2fwhm"]
    assert table.meta["APERTURES"] == pytest.approx([2.5, 5.0])
    assert table.meta["REFFRAME"][0] == "a" and table.meta["TARGET"] == "NGC7789"
    assert table.meta["DETSIG"][0] == 3.0 and (table["refcat_row"] >= 0).any()
    lines = reference_summary(table, len(seeing))
    assert lines[0].startswith('apertures of NGC7789: 1fwhm = 2.50"')
    assert f"{len(table)} sources on a" in lines[1]
    assert reference_frame_warning("", "a", "T") == ""
    assert reference_frame_warning("a", "a", "T") == ""
    assert "not a solved frame; using a" in reference_frame_warning("z", "a", "T")


def test_detection_settings_from_config():
    settings = DetectionParameters.from_config({"threshold_sigma": 5, "n_pixels": 6.0, "x": 1})
    assert settings.threshold_sigma == 5.0 and isinstance(settings.threshold_sigma, float)
    assert settings.n_pixels == 6 and isinstance(settings.n_pixels, int)
    assert DetectionParameters.from_config(None) == DetectionParameters()
