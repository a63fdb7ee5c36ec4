"""Overscan subtraction and trimming, checked against ccdproc on frames with a known bias."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.modeling import models
from astropy.nddata import CCDData
from ccdproc import subtract_overscan, trim_image

from aifa_steps.calibration.combine import combine_files
from aifa_steps.core.formats import Reason
from aifa_steps.inventory.rawio import read_raw_image
from aifa_steps.inventory.readout import ReadoutSettings, parse_section, readout_for
from aifa_steps.inventory.rowbands import open_image_rows
from aifa_steps.inventory.table import read_frame

# A LOIS-like layout scaled down: 8 prescan columns, 60 data columns, 12 overscan columns.
NY, NX = 50, 80
BIASSEC = "[69:80,1:50]"
TRIMSEC = "[9:68,1:50]"


def ccd_frame(path: Path, seed: int = 1, slope: float = 0.4, sky: float = 300.0) -> np.ndarray:
    """A raw frame whose bias level drifts along the rows (+ read noise); returns the truth
    (the signal in the trim section)."""
    rng = np.random.default_rng(seed)
    rows = np.arange(NY)[:, None]
    bias = 1000.0 + slope * rows + 3.0 * np.sin(rows / 7.0)
    image = np.repeat(bias, NX, axis=1) + rng.normal(0, 4.0, (NY, NX))
    signal = np.zeros((NY, NX))
    signal[:, 8:68] = sky + rng.normal(0, 0.5, (NY, 60))
    image += signal
    header = fits.Header()
    header["BIASSEC"] = BIASSEC
    header["TRIMSEC"] = TRIMSEC
    header["IMAGETYP"] = "OBJECT"
    header["EXPTIME"] = 30.0
    header["FILTER"] = "V"
    header["OBJECT"] = "field"
    header["DATE-OBS"] = "2024-01-01T01:00:00"
    fits.PrimaryHDU(np.round(image).astype(np.int16), header).writeto(path)
    return signal[:, 8:68]


def test_sections_in_fits_convention():
    rows, columns = parse_section("[18:1382,1:1370]", (1370, 1432))
    assert (rows.start, rows.stop, columns.start, columns.stop) == (0, 1370, 17, 1382)
    with pytest.raises(ValueError, match="outside"):
        parse_section("[1:2000,1:10]", (1370, 1432))
    with pytest.raises(ValueError, match="not a FITS section"):
        parse_section("columns 3 to 5", (10, 10))


@pytest.mark.parametrize(("model", "order"), [("poly", 0), ("poly", 2), ("row", 0)])
def test_overscan_and_trim_equal_ccdproc(tmp_path, model, order):
    path = tmp_path / "raw.fits"
    ccd_frame(path)
    data, header = read_raw_image(path, readout={"model": model, "order": order})
    raw = CCDData(fits.getdata(path).astype(float), unit="adu")
    reference = subtract_overscan(
        raw,
        fits_section=BIASSEC,
        median=True,
        model=None if model == "row" else models.Polynomial1D(order),
    )
    reference = trim_image(reference, fits_section=TRIMSEC)
    assert data.shape == (NY, 60)
    np.testing.assert_allclose(data, reference.data, atol=2e-3)
    assert header["OVERSCAN"] == BIASSEC and header["TRIMMED"] == TRIMSEC
    assert "BIASSEC" not in header and header["OVSLEVEL"] == pytest.approx(1010, abs=15)


def test_the_right_model_recovers_the_signal(tmp_path):
    """A bias drifting along the rows: a constant leaves it in, a polynomial takes it out."""
    path = tmp_path / "raw.fits"
    truth = ccd_frame(path, slope=0.4)
    constant, _ = read_raw_image(path, readout={"model": "poly", "order": 0})
    cubic, _ = read_raw_image(path, readout={"model": "poly", "order": 3})
    row_profile = lambda image: np.median(image - truth, axis=1)  # noqa: E731
    assert np.ptp(row_profile(constant)) > 15  # 0.4 ADU per row over 50 rows
    assert np.ptp(row_profile(cubic)) < 4.0  # left: read noise / sqrt(12 overscan columns)


def test_bands_of_rows_equal_the_whole_frame(tmp_path):
    path = tmp_path / "raw.fits"
    ccd_frame(path)
    settings = {"model": "poly", "order": 2}
    whole, _ = read_raw_image(path, readout=settings)
    with open_image_rows(path, settings) as image:
        assert image.shape == (NY, 60)
        bands = np.vstack([image.rows(slice(s, min(s + 7, NY))) for s in range(0, NY, 7)])
    np.testing.assert_allclose(bands, whole, atol=1e-4)
    with open_image_rows(path, settings) as image:  # every 4th row, as flat levels read them
        np.testing.assert_allclose(image.rows(slice(None, None, 4)), whole[::4], atol=1e-4)
        np.testing.assert_allclose(image.rows(slice(3, 40, 5)), whole[3:40:5], atol=1e-4)
    combined = combine_files([path, path], readout=settings)
    np.testing.assert_allclose(combined.mean, whole, atol=1e-3)


def test_configured_sections_and_none(tmp_path):
    path = tmp_path / "raw.fits"
    ccd_frame(path)
    off, header = read_raw_image(path, readout={"overscan": "none", "trim": "none"})
    assert off.shape == (NY, NX) and "OVERSCAN" not in header
    explicit, _ = read_raw_image(path, readout={"overscan": "[69:80,1:50]", "trim": "[9:68,*]"})
    default, _ = read_raw_image(path)  # the header's sections
    np.testing.assert_allclose(explicit, default)
    with pytest.raises(ValueError, match="trim section"):
        readout_for(fits.getheader(path), {"trim": "[9:200,1:50]"})


def test_inventory_reports_the_trimmed_size_and_bad_sections(tmp_path):
    path = tmp_path / "raw.fits"
    ccd_frame(path)
    row = read_frame(path, {})
    assert (row["naxis1"], row["naxis2"]) == (60, NY) and row["used"]
    bad = read_frame(path, {"readout": {"overscan": "[70:99,1:50]"}})
    assert not bad["used"] and "readout: overscan section" in bad["reason"]
    assert Reason.READOUT.found_in(bad["reason"]) and not Reason.TRUNCATED.found_in(bad["reason"])


def test_readout_settings_from_the_config_read_like_the_section(tmp_path):
    path = tmp_path / "raw.fits"
    ccd_frame(path)
    section = {"overscan": "[69:80,1:50]", "trim": "[9:68,*]", "model": "row", "order": 0}
    settings = ReadoutSettings.from_config({**section, "unrelated": 1})
    assert settings == ReadoutSettings("[69:80,1:50]", "[9:68,*]", "row", 0)
    a, _ = read_raw_image(path, readout=settings)
    b, _ = read_raw_image(path, readout=section)
    np.testing.assert_array_equal(a, b)
    assert readout_for(fits.getheader(path), ReadoutSettings()) == readout_for(
        fits.getheader(path), None
    )
