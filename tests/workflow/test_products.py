"""The run on the tiny night: catalogue and CMD, light curve and transit fit, stacks and
colour images."""

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from photutils.centroids import centroid_2dg, centroid_sources

pytestmark = pytest.mark.slow


def test_the_clusters_catalogue_and_cmd(tiny_run):
    # Not for the transit target.
    products = tiny_run.work / "products"
    catalogue = Table.read(products / "NGC7789" / "catalogue.ecsv")
    assert catalogue.colnames[:9] == ["id", "ra", "dec", "g", "g_err", "r", "r_err", "i", "i_err"]
    assert (products / "NGC7789" / "cmd.png").exists()
    assert not (products / "Qatar-1" / "catalogue.ecsv").exists()


def test_the_transit_targets_light_curve_and_fit(tiny_run):
    # The tiny night is too short and noisy for the fit's accuracy, which
    # tests/test_lightcurve.py and the demo night check.
    products, solved = tiny_run.work / "products", tiny_run.solved
    curve = Table.read(products / "Qatar-1" / "lightcurve.ecsv")
    assert len(curve) == (solved["object"] == "Qatar-1").sum()
    assert curve.colnames[:5] == ["bjd_tdb", "flux", "flux_err", "flux_detrended", "model"]
    fit = json.loads((products / "Qatar-1" / "transit_fit.json").read_text())
    assert {"t0_bjd_tdb", "t0_bjd_tdb_err", "depth", "depth_err", "duration_hours"} <= set(fit)
    assert (products / "Qatar-1" / "lightcurve.png").exists()


def test_stacks_of_every_target_and_filter_and_colour_images(tiny_run):
    products = tiny_run.work / "products"
    for obj, bands in (("NGC7789", "gri"), ("Qatar-1", "r")):
        for band in bands:
            with fits.open(products / obj / f"stack_{band}.fits") as hdul:
                assert hdul[0].header["FILTER"] == band and "EXPOSURE" in hdul
                assert hdul[0].header["NCOMBINE"] >= 1 and "MAGZPT" in hdul[0].header
        assert (products / obj / "color.png").stat().st_size > 1000


def test_stacks_lie_on_the_reference_frames_grid(tiny_run):
    with fits.open(tiny_run.work / "products" / "NGC7789" / "stack_r.fits") as hdul:
        image, grid = hdul[0].data, WCS(hdul[0].header)
    stars = Table.read(tiny_run.raw / "truth" / "stars.ecsv")
    x, y = grid.world_to_pixel_values(stars["ra"], stars["dec"])
    bright = (stars["r"] > 12.0) & (stars["r"] < 15.0)
    bright &= (x > 20) & (x < image.shape[1] - 20) & (y > 20) & (y < image.shape[0] - 20)
    alone = [
        k
        for k in np.flatnonzero(bright)
        if np.count_nonzero((np.hypot(x - x[k], y - y[k]) < 15) & (stars["r"] < stars["r"][k] + 4))
        == 1
    ]
    cx, cy = centroid_sources(
        np.nan_to_num(image), x[alone], y[alone], box_size=11, centroid_func=centroid_2dg
    )
    offsets = np.hypot(cx - x[alone], cy - y[alone])
    assert len(alone) >= 5 and np.median(offsets) < 0.1, offsets
