"""Compact storage of calibrated frames and solved frames as pixels plus a header-only solution."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.wcs import WCS

from aifa_steps.core.frames import (
    UNCERTAINTY_STEPS,
    read_ccd,
    read_solved,
    scaled_uncertainty_hdu,
    solution_hdu,
    write_ccd,
)


def _frame(shape=(64, 80), seed=3):
    rng = np.random.default_rng(seed)
    data = rng.normal(500.0, 20.0, shape).astype(np.float32)
    data[5, 6] = np.nan
    sigma = np.sqrt(np.abs(data) / 1.5 + 3.0**2).astype(np.float32)
    sigma[5, 6] = np.nan
    sigma[40, 40] = 900.0  # a saturated star's core
    mask = np.zeros(shape, bool)
    mask[5, 6] = mask[10, :] = True
    flags = np.zeros(shape, np.uint8)
    flags[10, :] = 2
    flags[5, 6] = 128
    header = fits.Header({"OBJECT": "M 67", "FILTER": "r", "EXPTIME": 30.0})
    return CCDData(
        data,
        unit="adu",
        uncertainty=StdDevUncertainty(sigma),
        mask=mask,
        flags=flags,
        meta=header,
    )


def test_compact_frame_keeps_data_exactly_and_uncertainty_to_a_quarter_percent(tmp_path):
    ccd = _frame()
    path = tmp_path / "f.fits"
    write_ccd(ccd, path)
    back = read_ccd(path)
    assert back.data.dtype.kind == "f" and back.data.dtype.itemsize == 4
    assert np.array_equal(back.data, ccd.data, equal_nan=True)
    assert np.array_equal(back.mask, ccd.mask) and np.array_equal(back.flags, ccd.flags)
    assert isinstance(back.uncertainty, StdDevUncertainty)
    sigma, good = ccd.uncertainty.array, np.isfinite(ccd.uncertainty.array)
    relative = np.abs(back.uncertainty.array[good] - sigma[good]) / sigma[good]
    assert relative.max() <= 0.5 / UNCERTAINTY_STEPS * 1.01
    assert back.uncertainty.array[5, 6] == pytest.approx(900.0, rel=1e-3)  # no data: worthless
    assert back.meta["OBJECT"] == "M 67"
    with fits.open(path) as hdul:
        # The mask is "any flag set": one plane holds the bits and serves as the mask.
        assert [h.name for h in hdul] == ["PRIMARY", "UNCERT", "MASK"]
        assert hdul["UNCERT"].header["BITPIX"] == 16
        assert hdul["MASK"].header["BITPIX"] == 8 and hdul["MASK"].header["MASKBITS"]
        assert not any(isinstance(h, fits.CompImageHDU) for h in hdul)  # Source Extractor
        assert hdul["MASK"].header["FLAGBIT1"] == 2  # flag names travel with the plane
    # Any other reader of CCDData files gets the boolean mask.
    plain_reader = CCDData.read(path, hdu_uncertainty="UNCERT", hdu_mask="MASK", unit="adu")
    assert np.array_equal(plain_reader.mask, ccd.mask)


def test_a_mask_other_than_the_flags_keeps_its_own_plane(tmp_path):
    ccd = _frame()
    ccd.mask[20, 20] = True  # masked without a flag bit
    write_ccd(ccd, tmp_path / "f.fits")
    back = read_ccd(tmp_path / "f.fits")
    assert np.array_equal(back.mask, ccd.mask) and np.array_equal(back.flags, ccd.flags)
    with fits.open(tmp_path / "f.fits") as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "UNCERT", "MASK", "FLAGS"]
        assert hdul["FLAGS"].header["FLAGBIT1"] == 2


def test_compact_frame_is_at_most_seven_bytes_per_pixel(tmp_path):
    ccd = _frame(shape=(400, 500))
    write_ccd(ccd, tmp_path / "f.fits")
    plain = tmp_path / "plain.fits"
    ccd.write(plain, hdu_mask="MASK", hdu_uncertainty="UNCERT", hdu_flags="FLAGS")
    size = (tmp_path / "f.fits").stat().st_size
    assert size < 7.1 * ccd.data.size  # float32 data, 16-bit uncertainty, 8-bit mask with bits
    assert size < 0.75 * plain.stat().st_size


def test_scaled_uncertainty_step_follows_the_smallest_value():
    sigma = np.array([[2.0, 4.0], [8.0, np.inf]], np.float32)
    hdu = scaled_uncertainty_hdu(sigma)
    assert hdu.header["BSCALE"] == pytest.approx(2.0 / UNCERTAINTY_STEPS)
    wide = scaled_uncertainty_hdu(np.array([0.01, 1e4], np.float32))
    assert wide.header["BSCALE"] == pytest.approx(1e4 / 65000.0)  # everything still fits


def _wcs(shape):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [132.8, 11.8]
    w.wcs.crpix = [shape[1] / 2, shape[0] / 2]
    w.wcs.cdelt = [-0.607 / 3600, 0.607 / 3600]
    return w


def test_solved_frame_is_the_pixels_plus_a_header_only_solution(tmp_path):
    ccd = _frame()
    frame = tmp_path / "calibrated" / "f.fits"
    frame.parent.mkdir()
    write_ccd(ccd, frame)
    header = ccd.meta.copy()
    header.update(_wcs(ccd.shape).to_header())
    header["ASTSOLVD"] = True
    solution = tmp_path / "f_wcs.fits"
    solution_hdu(header, ccd.shape, frame).writeto(solution)
    assert solution.stat().st_size < 10_000
    stored = fits.getheader(solution)
    assert stored["NAXIS"] == 0 and stored["IMAGEW"] == 80 and stored["IMAGEH"] == 64
    assert stored["PIXFILE"] == "f.fits"
    solved = read_solved(frame, solution)
    assert np.array_equal(solved.data, ccd.data, equal_nan=True)
    assert solved.meta["ASTSOLVD"] and solved.meta["OBJECT"] == "M 67"
    sky = solved.wcs.pixel_to_world_values(40.0, 32.0)
    assert np.allclose(sky, _wcs(ccd.shape).pixel_to_world_values(40.0, 32.0), atol=1e-9)


def test_read_solved_refuses_an_unsolved_or_mismatched_solution(tmp_path):
    ccd = _frame()
    frame = tmp_path / "f.fits"
    write_ccd(ccd, frame)
    unsolved = tmp_path / "unsolved.fits"
    solution_hdu(ccd.meta, ccd.shape).writeto(unsolved)
    with pytest.raises(ValueError, match="not solved"):
        read_solved(frame, unsolved)
    other = tmp_path / "other.fits"
    header = ccd.meta.copy()
    header.update(_wcs(ccd.shape).to_header())
    solution_hdu(header, (100, 100)).writeto(other)
    with pytest.raises(ValueError, match="100"):
        read_solved(frame, other)


def test_a_master_keeps_its_uncertainty_as_float32(tmp_path):
    ccd = _frame()
    write_ccd(ccd, tmp_path / "master.fits", compact=False)
    with fits.open(tmp_path / "master.fits") as hdul:
        assert hdul["UNCERT"].header["BITPIX"] == -32
    back = read_ccd(tmp_path / "master.fits")
    good = np.isfinite(ccd.uncertainty.array)
    assert np.array_equal(back.uncertainty.array[good], ccd.uncertainty.array[good])
