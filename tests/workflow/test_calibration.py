"""The run on the tiny night: masters, the bad-pixel mask, calibrated frames, camera QC."""

import pytest
from astropy.io import fits
from astropy.table import Table

pytestmark = pytest.mark.slow


def test_masters_and_the_bad_pixel_mask(tiny_run):
    work = tiny_run.work
    for name in (
        "bias.fits",
        "dark_60s.fits",
        "flat_g.fits",
        "flat_r.fits",
        "flat_i.fits",
        "bad_pixels.fits",
    ):
        assert (work / "masters" / name).exists(), name


def test_one_calibrated_frame_per_used_light(tiny_run):
    work, lights = tiny_run.work, tiny_run.lights
    calibrated = sorted(p.name.removesuffix(".fits") for p in (work / "calibrated").glob("*.fits"))
    assert calibrated == sorted(lights["stem"])
    qc_frames = Table.read(work / "qc" / "calibrated_frames.ecsv")
    assert len(qc_frames) == len(lights)


def test_gain_and_read_noise_measured_from_flat_and_bias_pairs(tiny_run):
    work = tiny_run.work
    camera = Table.read(work / "qc" / "camera.ecsv")
    assert not any(camera["ok"])  # nothing configured to compare with
    detector = Table.read(work / "qc" / "detector.ecsv")
    gain, read_noise = detector["value"]
    assert gain == pytest.approx(0.376, rel=0.03) and read_noise == pytest.approx(3.5, rel=0.05)
    assert detector["source"][0] == "photon transfer (flat pairs)"
    header = fits.getheader(work / "calibrated" / f"{tiny_run.lights['stem'][0]}.fits")
    assert header["GAINSRC"] in ("header", "photon transfer (flat pairs)")
    assert header["GAIN_E"] == pytest.approx(0.376, rel=0.03)
    assert header["RDNOISE"] == pytest.approx(3.5, rel=0.05)


def test_flat_qc_leaves_out_the_bad_flat(tiny_run):
    work = tiny_run.work
    flats_r = Table.read(work / "qc" / "flat_frames_r.ecsv")
    assert (~flats_r["used"]).sum() == 1
    assert (work / "qc" / "masters" / "master_flat_r.png").exists()
