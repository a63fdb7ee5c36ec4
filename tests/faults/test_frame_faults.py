"""Faults of single frames: the frame is flagged with the step and the reason, the night goes on.

Each case is a micro night (see `harness`) with one fault. Outcomes are read from the night's
status table (``night_status.ecsv``), the summary page, and the products of the other frames.
"""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from aifa_steps.core.failures import FAULT_ENV
from aifa_steps.core.formats import frame_stem

from .harness import NIGHT_GOES_ON, rewrite_light, run

pytestmark = [pytest.mark.slow, pytest.mark.faults]


def _stem(path) -> str:
    return frame_stem(path)


def _astrometry_row(night, path):
    status = night.table("astrometry/status.ecsv")
    (row,) = status[status["stem"] == _stem(path)]
    assert status["solved"].sum() == len(status) - 1  # the other frames were solved
    return row


def _assert_night_completed(night, n_used: int) -> None:
    """The night reached its products with ``n_used`` light frames."""
    status = night.status()
    lights = status[status["imagetyp"] == "light"]
    assert (lights["status"] == "used").sum() == n_used, lights
    magnitudes = Table.read(night.work / "photometry" / "Qatar-1" / "magnitudes.ecsv")
    assert (magnitudes["r_n"] == n_used).sum() > 10  # stars measured in every good frame
    html = (night.work / "qc" / "night_summary.html").read_text()
    for row in lights[lights["status"] != "used"]:
        assert row["stem"] in html and row["reason"][:40] in html


def test_clean_micro_night_reduces_completely(reduced_micro):
    night = reduced_micro
    _assert_night_completed(night, 3)
    assert "Night summary: 3 of 3 light frames reduced." in night.proc.text
    zeropoints = night.table("zeropoints.ecsv")
    assert np.isfinite(zeropoints["zeropoint"]).all()
    assert run(night, extra=("-n",)).text.count("Nothing to be done") == 1


def test_all_nan_light_fails_calibration_and_the_night_goes_on(night, raw_guard):
    bad = night.lights()[1]
    rewrite_light(bad, data=lambda d: np.full(d.shape, np.nan, np.float32), dtype=np.float32)
    raw_guard(night)
    run(night, *NIGHT_GOES_ON)
    row = night.row(_stem(bad))
    assert (row["status"], row["step"]) == ("failed", "calibration")
    assert "no finite pixel" in row["reason"]
    _assert_night_completed(night, 2)
    header = fits.getheader(night.work / "calibrated" / f"{_stem(bad)}.fits")
    assert header["FRAMEOK"] is False and header["FAILSTEP"] == "calibration"


@pytest.mark.parametrize(
    ("index", "value", "reason"),
    [
        (0, 65535, "saturated: 100 % of the pixels"),
        (2, 812, "blank frame: every pixel is 812 ADU"),
    ],
    ids=["saturated", "blank"],
)
def test_saturated_or_blank_light_fails_calibration(night, raw_guard, index, value, reason):
    bad = night.lights()[index]
    rewrite_light(bad, data=lambda d: np.full_like(d, value))
    raw_guard(night)
    run(night, "astrometry/status.ecsv")
    row = _astrometry_row(night, bad)
    assert (row["solved"], row["step"]) == (False, "calibration")
    assert row["reason"].startswith(reason)


def test_a_nan_column_is_flagged_not_fatal(night, raw_guard):
    from aifa_steps.core.formats import NO_DATA
    from aifa_steps.core.frames import read_ccd

    bad = night.lights()[0]

    def nan_column(data):
        data = data.astype(np.float32)
        data[:, 100] = np.nan
        return data

    rewrite_light(bad, data=nan_column, dtype=np.float32)
    raw_guard(night)
    run(night, f"calibrated/{_stem(bad)}.fits")
    ccd = read_ccd(night.work / "calibrated" / f"{_stem(bad)}.fits")
    assert np.all(ccd.flags[:, 100] & NO_DATA) and ccd.meta["NNODATA"] == ccd.shape[0]
    assert np.isfinite(ccd.data).all() and not np.any(ccd.flags[:, 90] & NO_DATA)


def test_light_without_stars_fails_astrometry(night, raw_guard):
    bad = night.lights()[1]
    rng = np.random.default_rng(1)

    def starless(data):
        return (np.median(data) + rng.normal(0, 20, data.shape)).astype(np.uint16)

    rewrite_light(bad, data=starless)
    raw_guard(night)
    run(night, *NIGHT_GOES_ON)
    row = night.row(_stem(bad))
    assert (row["status"], row["step"]) == ("failed", "astrometry")
    # solve-field finds nothing on it, or (not solve-field's frame) no solved frame matches it
    assert "no solution" in row["reason"] or "no solved frame matched" in row["reason"]
    _assert_night_completed(night, 2)


@pytest.mark.parametrize("exptime", [0.0, -30.0])
def test_non_positive_exposure_time_is_excluded(night, raw_guard, exptime):
    bad = night.lights()[0]
    rewrite_light(bad, EXPTIME=exptime)
    raw_guard(night)
    run(night, "inventory.ecsv")
    inventory = night.table("inventory.ecsv")
    row = inventory[inventory["stem"] == _stem(bad)][0]
    assert not row["used"]
    assert row["reason"] == f"exposure time EXPTIME = {exptime:g} s is not positive"


@pytest.mark.parametrize("step", ["calibration", "astrometry"])
def test_an_unexpected_error_in_a_step_is_data(night, raw_guard, step):
    bad = night.lights()[2]
    raw_guard(night)
    run(night, "astrometry/status.ecsv", env={FAULT_ENV: f"{step}:{_stem(bad)}"})
    row = _astrometry_row(night, bad)
    assert (row["solved"], row["step"]) == (False, step)
    assert row["reason"] == f"RuntimeError: fault injected by {FAULT_ENV}"
    log = night.work / "logs" / ("calibrate" if step == "calibration" else "astrometry_frame")
    assert "Traceback" in (log / f"{_stem(bad)}.log").read_text()


def test_an_unexpected_error_in_photometry_is_data(night, raw_guard):
    bad = night.lights()[0]
    raw_guard(night)
    run(night, *NIGHT_GOES_ON, env={FAULT_ENV: f"photometry:{_stem(bad)}"})
    row = night.row(_stem(bad))
    assert (row["status"], row["step"]) == ("failed", "photometry")
    zeropoints = night.table("zeropoints.ecsv")
    mine = zeropoints[zeropoints["stem"] == _stem(bad)]
    assert len(mine) == 5 and np.isnan(mine["zeropoint"]).all()  # apertures 1-3 FWHM
    assert all(r.startswith("photometry failed: RuntimeError") for r in mine["reason"])
    calibrated = night.table("photometry/Qatar-1/calibrated.ecsv")
    assert _stem(bad) not in set(calibrated["stem"]) and len(set(calibrated["stem"])) == 2
    _assert_night_completed(night, 2)


def test_truncated_and_corrupt_lights_are_excluded(night, raw_guard):
    truncated, corrupt = night.lights()[:2]
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    corrupt.write_bytes(b"SIMPLE  = this is not a FITS file" + bytes(3000))
    raw_guard(night)
    run(night, "inventory.ecsv")
    inventory = night.table("inventory.ecsv")
    rows = {r["stem"]: r for r in inventory}
    assert rows[_stem(truncated)]["reason"].startswith("truncated file (")
    assert rows[_stem(corrupt)]["reason"].startswith("unreadable FITS")
    assert rows[_stem(corrupt)]["imagetyp"] == "light"  # from its folder
    assert not rows[_stem(truncated)]["used"] and not rows[_stem(corrupt)]["used"]


@pytest.mark.parametrize("suffix", [".fits.gz", ".fits.fz", ".mef.fits", ".fit", ".fts"])
def test_lights_as_cameras_and_archives_write_them(night, raw_guard, suffix):
    light = night.lights()[1]
    stem = _stem(light)
    target = light.with_name(stem + suffix)
    with fits.open(light) as hdul:
        header, data = hdul[0].header.copy(), hdul[0].data.copy()
    if suffix == ".fits.gz":
        with open(light, "rb") as src, gzip.open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    elif suffix == ".fits.fz":
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header)]).writeto(target)
    elif suffix == ".mef.fits":
        target = light.with_name(stem + "_mef.fits")
        primary = fits.PrimaryHDU(header=fits.Header({"EXPTIME": header["EXPTIME"]}))
        image = fits.ImageHDU(data, header)
        fits.HDUList([primary, image]).writeto(target)
    else:
        shutil.copy2(light, target)
    light.rename(night.raw / f"{stem}.original")  # not a FITS name: not inventoried
    raw_guard(night)
    new_stem = _stem(target)
    compressed = suffix in (".fits.gz", ".fits.fz")  # the two that once failed: calibrate them
    run(night, "inventory.ecsv", *([f"calibrated/{new_stem}.fits"] if compressed else []))
    inventory = night.table("inventory.ecsv")
    row = inventory[inventory["stem"] == new_stem][0]
    assert row["used"] and row["imagetyp"] == "light" and row["filter"] == "r"
    assert (row["naxis1"], row["naxis2"]) == (data.shape[1], data.shape[0])
    if compressed:
        calibrated = fits.getdata(night.work / "calibrated" / f"{new_stem}.fits")
        assert calibrated.shape == data.shape and np.isfinite(calibrated).all()


def test_missing_date_unknown_type_odd_shape_and_duplicate_are_excluded(night, raw_guard):
    no_date, unknown, odd = night.lights()
    rewrite_light(no_date, DATE_OBS=None)
    rewrite_light(unknown, IMAGETYP="Calibration Lamp")
    shutil.move(unknown, night.raw / unknown.name)  # outside LIGHT/: no folder to fall back on
    rewrite_light(odd, data=lambda d: d[:300, :400])
    first_bias = sorted((night.raw / "BIAS").glob("*.fits"))[0]
    (night.raw / "BIAS" / "copy").mkdir()
    shutil.copy2(first_bias, night.raw / "BIAS" / "copy" / first_bias.name)
    raw_guard(night)
    proc = run(night, check=False)
    # Every light is excluded: the night stops with one message that counts the reasons.
    assert proc.returncode != 0
    # (The lamp frame outside LIGHT/ is no light: two lights, both excluded.)
    assert "No light frame of this night can be used: all 2 are excluded" in proc.text
    assert "missing keyword DATE-OBS" in proc.text and "fix: set the headers section" in proc.text
    inventory = night.table("inventory.ecsv")
    reasons = dict(zip(inventory["stem"], inventory["reason"], strict=True))
    assert reasons[_stem(no_date)] == "missing keyword DATE-OBS/MJD-OBS/JD"  # all it tried
    assert reasons[_stem(unknown)].startswith("unknown frame type 'Calibration Lamp'")
    assert reasons[_stem(odd)].startswith("shape or binning differs")
    assert sum("duplicate file name" in r for r in inventory["reason"]) == 1


def test_object_names_with_slashes_spaces_and_dots(night, raw_guard):
    # (FITS headers hold ASCII only; accents in names are tested in test_failures.py.)
    name = "HAT-P-32 b/test.2"
    for light in night.lights():
        rewrite_light(light, OBJECT=name)
    night.set_cfg(targets={name: night.cfg()["targets"]["Qatar-1"]})
    raw_guard(night)
    safe = "HAT-P-32_b_test_2"
    run(
        night,
        "night_status.ecsv",
        f"photometry/{safe}/magnitudes.ecsv",
        f"products/{safe}/stack_r.fits",
    )
    assert (night.work / "products" / safe / "stack_r.fits").exists()
    assert (night.work / "qc" / "astrometry_residuals" / f"{safe}.png").exists()
    magnitudes = Table.read(night.work / "photometry" / safe / "magnitudes.ecsv")
    assert len(magnitudes) > 10
    assert magnitudes.meta["OBJECT"] == name
    status = night.status()
    assert set(status["object"][status["imagetyp"] == "light"]) == {name}
    assert set(status["target"][status["imagetyp"] == "light"]) == {safe}
    assert name in (night.work / "qc" / "night_summary.html").read_text()
