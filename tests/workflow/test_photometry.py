"""The run on the tiny night: reference sources, frame photometry, zero points."""

import numpy as np
import pytest
from astropy.table import Table

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("obj", ["NGC7789", "Qatar-1"])
def test_reference_and_frame_tables_per_target(tiny_run, obj):
    # A reference table and region file per target, a table per solved frame with its time
    # and aperture corrections.
    work, status, solved = tiny_run.work, tiny_run.status, tiny_run.solved
    reference = Table.read(work / "photometry" / obj / "reference.ecsv")
    assert {"id", "ra", "dec", "isolated", "rmag"} <= set(reference.colnames)
    # Automatic apertures: 1-3 x the median seeing of the target's frames.
    seeing = np.median(status["fwhm_arcsec"][status["solved"] & (status["object"] == obj)])
    assert reference.meta["APFWHM"] == pytest.approx(seeing)
    assert reference.meta["APKEYS"] == ["1fwhm", "1.5fwhm", "2fwhm", "2.5fwhm", "3fwhm"]
    assert reference.meta["APERTURES"][1] == pytest.approx(1.5 * seeing)
    assert (work / "photometry" / obj / "reference.reg").exists()
    assert (work / "qc" / "detections" / f"{obj}.png").exists()
    magnitudes = Table.read(work / "photometry" / obj / "magnitudes.ecsv")
    assert len(magnitudes) == len(reference) and "r_err" in magnitudes.colnames
    for stem in solved["stem"][solved["object"] == obj]:
        table = Table.read(work / "photometry" / obj / f"{stem}.ecsv")
        assert len(table) == len(reference)
        assert {"BJD_TDB", "MJD", "AIRMASS", "SEEING", "APFRAC_1fwhm"} <= set(table.meta)
        assert {"flux_1fwhm", "flux_err_1fwhm", "peak", "bkg_1fwhm", "flag_3fwhm"} <= set(
            table.colnames
        )


def test_zeropoints_close_to_the_truth(tiny_run):
    work, solved = tiny_run.work, tiny_run.solved
    zeropoints = Table.read(work / "zeropoints.ecsv")
    assert set(zeropoints["stem"]) == set(solved["stem"])
    assert set(zeropoints.colnames) >= {
        "stem",
        "object",
        "filter",
        "aperture",
        "aperture_arcsec",
        "zeropoint",
        "zeropoint_err",
        "n_stars",
        "airmass",
        "mjd",
    }
    small = zeropoints[zeropoints["aperture"] == "1.5fwhm"]
    error = small["zeropoint"] - [tiny_run.truth[s]["zeropoint"] for s in small["stem"]]
    # The tiny frames hold a dozen or two reference stars: a few hundredths per frame (the
    # 0.01 mag criterion is tested on demo-size frames in test_zeropoints).
    assert np.all(np.abs(error) < 0.05), error
    assert abs(np.median(error)) < 0.01
    assert (work / "qc" / "zeropoints.png").exists()
    assert (work / "photometry" / "extinction.ecsv").exists()


def test_an_unsolved_reference_frame_is_replaced_with_a_warning(tiny_run):
    work, cloudy = tiny_run.work, tiny_run.cloudy
    targets = Table.read(work / "qc" / "photometry_targets.ecsv")
    chosen = targets["reference_frame"][targets["object"] == "Qatar-1"][0]
    assert chosen != cloudy and chosen in tiny_run.solved["stem"]
    log = (work / "logs" / "photometry_reference" / "Qatar-1.log").read_text()
    assert cloudy in log and "not a solved frame" in log


def test_psf_photometry_of_the_cluster_only(tiny_run):
    # photometry.method psf: the cluster's frames get PSF photometry and its catalogue
    # magnitudes come from it; the transit target stays with apertures (no PSF tables).
    work, solved = tiny_run.work, tiny_run.solved
    stems = solved["stem"][solved["object"] == "NGC7789"]
    assert len(stems) >= 3
    for stem in stems:
        psf = Table.read(work / "photometry" / "NGC7789" / "psf" / f"{stem}.ecsv")
        assert psf.meta["PHOTOK"] and psf.meta["PSFKIND"] in ("epsf", "moffat")
        assert {"flux_psf", "flux_err_psf", "flag_psf", "qfit_psf"} <= set(psf.colnames)
        assert 0.8 < psf.meta["APFRAC_psf"] < 1.2
        assert (work / "logs" / "psf_photometry" / "NGC7789" / f"{stem}.log").exists()
    assert not (work / "photometry" / "Qatar-1" / "psf").exists()
    magnitudes = Table.read(work / "photometry" / "NGC7789" / "magnitudes.ecsv")
    assert magnitudes.meta["METHOD"][0] == "psf"
    transit = Table.read(work / "photometry" / "Qatar-1" / "magnitudes.ecsv")
    assert transit.meta["METHOD"][0] == "aperture"
    # Isolated stars: PSF and aperture magnitudes agree (both tied to the same zero points).
    for band in ("g", "r", "i"):
        both = (
            np.isfinite(magnitudes[band])
            & np.isfinite(magnitudes[f"{band}_aper"])
            & magnitudes["isolated"]
            & (magnitudes[f"{band}_err"] < 0.02)
        )
        assert both.sum() >= 5, band
        difference = magnitudes[band][both] - magnitudes[f"{band}_aper"][both]
        assert abs(np.median(difference)) < 0.02, band
    catalogue = Table.read(work / "products" / "NGC7789" / "catalogue.ecsv")
    assert catalogue.meta["METHOD"] == "psf" and "r_aper" in catalogue.colnames
