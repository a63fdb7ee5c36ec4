"""Astrometry: index scales, the TAN-SIP fit, windowed centroids, solution judgement, and a real
solve-field run on a tiny-night frame compared with the true WCS."""

import subprocess

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from aifa_steps.astrometry.solve import (
    build_indexes,
    fit_tan_sip,
    index_scales,
    judge_solution,
    read_solution,
    refine_wcs,
    solve_field_passes,
    verify_index_scale,
    write_solver_config,
)
from aifa_steps.core.centroids import half_max_fwhm, windowed_centroids
from aifa_steps.simulate.optics import make_wcs
from aifa_steps.simulate.render import add_moffat_stars

from .helpers import require_program, wcs_separation


def test_index_scales_follow_the_field_size():
    assert index_scales(6.5, 4.5)[0] <= -2 and 0 in index_scales(6.5, 4.5)
    full = index_scales(48.4, 32.3)
    assert min(full) <= 2 and max(full) >= 6
    assert all(-5 <= p <= 19 for p in full)


def test_tan_sip_fit_recovers_a_distorted_wcs():
    shape = (1064, 1596)
    truth = make_wcs(shape, 303.38, 65.16, 0.607, 180.6, k3=3e-9, k2=(2e-7, -1e-7))
    rng = np.random.default_rng(2)
    x, y = rng.uniform(0, 1595, 300), rng.uniform(0, 1063, 300)
    sky = truth.pixel_to_world(x, y)
    fitted = fit_tan_sip(x, y, sky.ra.deg, sky.dec.deg, shape, degree=3)
    rms, worst = wcs_separation(fitted, truth, shape)
    assert rms < 0.002 and worst < 0.01
    tan = fit_tan_sip(x, y, sky.ra.deg, sky.dec.deg, shape, degree=1)
    assert tan.sip is None and wcs_separation(tan, truth, shape)[1] > 0.1


def test_windowed_centroids_are_precise():
    image = np.zeros((200, 200), np.float32)
    x = np.array([50.3, 120.77, 80.05])
    y = np.array([60.6, 140.21, 150.5])
    add_moffat_stars(image, x, y, np.array([1e5, 5e4, 2e5]), fwhm_px=4.5, beta=3.0)
    fwhm = half_max_fwhm(image, x, y)
    assert fwhm == pytest.approx(4.5, rel=0.15)
    cx, cy = windowed_centroids(image, x + 0.8, y - 0.7, fwhm)
    assert np.allclose(cx, x, atol=0.01) and np.allclose(cy, y, atol=0.01)
    nx, _ = windowed_centroids(image, np.array([-50.0]), np.array([10.0]), fwhm)
    assert np.isnan(nx[0])


def test_judgement_of_solutions():
    shape = (448, 640)
    good = make_wcs(shape, 10.0, 20.0, 0.607, 0.0)
    matched = Table({"residual_arcsec": np.full(30, 0.05)})
    assert judge_solution("a", good, matched, 0.607).solved
    assert "no solution" in judge_solution("a", None, None, 0.607).reason
    wrong = make_wcs(shape, 10.0, 20.0, 0.70, 0.0)
    assert "pixel scale" in judge_solution("a", wrong, matched, 0.607).reason
    assert "matched stars" in judge_solution("a", good, matched[:5], 0.607).reason
    bad = Table({"residual_arcsec": np.full(30, 0.9)})
    assert "RMS" in judge_solution("a", good, bad, 0.607).reason


def test_empty_solution_file_means_no_solution(tmp_path):
    (tmp_path / "x.wcs").write_bytes(b"")
    assert read_solution(tmp_path / "x.wcs") is None
    assert read_solution(tmp_path / "missing.wcs") is None


@pytest.mark.slow
def test_solve_field_and_refinement_match_the_true_wcs(tiny_night, tiny_frames, tmp_path):
    """Real solve-field (two passes) on a tiny-night frame, then the refinement: < 0.1" RMS."""
    solve_field = require_program("solve-field")
    require_program("build-astrometry-index")
    refcat = Table.read(tiny_night / "refcat.ecsv")
    files = build_indexes(refcat, tmp_path / "index", index_scales(6.47, 4.53))
    assert all(f.exists() for f in files)
    cfg = tmp_path / "solver.cfg"
    write_solver_config(cfg, [tmp_path / "index"], cpulimit=30)
    assert "add_path" in cfg.read_text()
    row = tiny_frames[(tiny_frames["object"] == "NGC7789") & (tiny_frames["filter"] == "r")][0]
    # A quick calibration with the true masters (the calibration itself is tested elsewhere).
    bias = fits.getdata(tiny_night / "truth" / "bias.fits")
    dark = fits.getdata(tiny_night / "truth" / "dark_rate.fits") * row["exptime"]
    flat = fits.getdata(tiny_night / "truth" / "flat_r.fits")
    raw = fits.getdata(tiny_night / row["file"]).astype(np.float32)
    header = fits.getheader(tiny_night / row["file"])
    frame = tmp_path / "frame.fits"
    science = ((raw - bias - dark) / flat).astype(np.float32)
    # Laid out like a calibrated frame: the image first, then planes that are not the sky.
    fits.HDUList(
        [
            fits.PrimaryHDU(science, header),
            fits.ImageHDU(np.sqrt(np.abs(science) + 100).astype(np.float32), name="UNCERT"),
        ]
    ).writeto(frame)
    verifier = tmp_path / "verify.cfg"
    fine = verify_index_scale(6.47, 4.53, index_scales(6.47, 4.53))
    write_solver_config(verifier, [], cpulimit=30, index_files=[files[0]])
    assert fine == index_scales(6.47, 4.53)[0] and "index " in verifier.read_text()
    sources, pass1, pass2 = solve_field_passes(
        frame,
        cfg,
        tmp_path,
        0.607,
        raw.shape,
        ra=header["RA"],
        dec=header["DEC"],
        cpulimit=30,
        verify_config=verifier,
    )
    assert sources[1] == f"{frame}[0]" and "--verify" in pass2 and str(verifier) in pass2
    subprocess.run([require_program("source-extractor"), *sources[1:]], check=True)
    assert len(Table.read(tmp_path / "sources.fits")) > 50
    subprocess.run([solve_field, *pass1[1:]], check=True, capture_output=True)
    subprocess.run([solve_field, *pass2[1:]], check=True, capture_output=True)
    solution = read_solution(tmp_path / "p2.wcs")
    assert solution is not None
    stem = row["file"].split("/")[-1].removesuffix(".fits")
    truth = WCS(fits.getheader(tiny_night / "truth" / "wcs" / f"{stem}.fits"))
    shape = raw.shape
    rms_solve, _ = wcs_separation(solution, truth, shape)
    assert rms_solve < 0.6  # solve-field alone: well below a pixel
    refined, matched = refine_wcs(fits.getdata(frame), solution, refcat, mag_column="rmag")
    rms, worst = wcs_separation(refined, truth, shape)
    assert rms < 0.1 and worst < 0.2
    assert len(matched) >= 50
    status = judge_solution(stem, refined, matched, 0.607)
    assert status.solved and status.rms_arcsec < 0.2


def test_verify_index_scale_is_the_densest_index_that_solve_field_uses():
    """Full-size field (48' x 32'): solve-field verifies with quads from 3.2'; P=0 reaches 2.8'."""
    scales = index_scales(48.46, 32.33)
    assert scales[0] == 0
    assert verify_index_scale(48.46, 32.33, scales) == 1
    assert verify_index_scale(6.47, 4.53, index_scales(6.47, 4.53)) == -5
    assert verify_index_scale(48.46, 32.33, [5, 6]) == 5


def test_nearest_neighbour_sweep_matches_brute_force():
    from aifa_steps.astrometry.solve import _nearest_neighbour_distance

    rng = np.random.default_rng(4)
    x, y = rng.uniform(0, 300, 400), rng.uniform(0, 200, 400)
    x[:10] = x[10:20]  # pairs on one column
    pairs = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(pairs, np.inf)
    expected = pairs.min(axis=1)
    expected[expected > 8.0] = np.inf
    assert np.allclose(_nearest_neighbour_distance(x, y, 8.0), expected)


def test_windowed_centroid_of_a_star_and_of_positions_it_cannot_use():
    image = np.zeros((60, 60))
    add_moffat_stars(image, np.array([30.3]), np.array([25.6]), np.array([1e4]), 4.0, 3.0)
    x, y = windowed_centroids(image, np.array([31.0, np.nan, 1.0]), np.array([26.0, 5, 1]), 4.0)
    assert abs(x[0] - 30.3) < 0.01 and abs(y[0] - 25.6) < 0.01
    assert np.isnan(x[1:]).all() and np.isnan(y[1:]).all()  # no position; stamp off the frame
