"""Astrometry: index scales, the TAN-SIP fit, windowed centroids, solution judgement, and a real
solve-field run (workflow/scripts/solve_field.sh) on a tiny-night frame compared with the true
WCS, and what the script does when it cannot solve."""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from aifa_steps.astrometry.index import (
    build_indexes,
    index_scales,
    verify_index_scale,
    write_solver_config,
    write_solver_configs,
)
from aifa_steps.astrometry.judge import judge_solution
from aifa_steps.astrometry.refine import refine_wcs
from aifa_steps.astrometry.settings import SolveSettings
from aifa_steps.astrometry.solve import (
    read_corr,
    read_solution,
    read_sources,
    run_solve_field,
    solve_field_command,
)
from aifa_steps.astrometry.tan_sip import fit_tan_sip
from aifa_steps.core.centroids import half_max_fwhm, windowed_centroids
from aifa_steps.core.formats import frame_stem
from aifa_steps.simulate.optics import make_wcs
from aifa_steps.simulate.render import add_moffat_stars

from .helpers import SOLVE_FIELD_SH, require_program, wcs_separation


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
    require_program("solve-field")
    require_program("source-extractor")
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
    outputs = (tmp_path / "frame.wcs", tmp_path / "frame.corr", tmp_path / "frame.xyls")
    command = solve_field_command(
        SOLVE_FIELD_SH,
        frame,
        cfg,
        verifier,
        outputs,
        raw.shape,
        0.607,
        SolveSettings(cpulimit=30),
        hint=f"--ra {header['RA']:.6f} --dec {header['DEC']:.6f} --radius 1.0",
    )
    assert "--verify" not in command and str(verifier) in command
    said = run_solve_field(command, tmp_path / "solve_field.log")
    assert "pass 2: verify pass 1" in said and "solution: pass2" in said, said
    assert len(read_sources(outputs[2])) > 50
    assert len(read_corr(outputs[1])) > 20  # the matched stars (.corr)
    solution = read_solution(outputs[0])
    assert solution is not None
    stem = frame_stem(row["file"])
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
    from aifa_steps.astrometry.refine import _nearest_neighbour_distance

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


def _path_without(tmp_path: Path, *missing: str) -> str:
    """A PATH with what solve_field.sh needs from the system, without the programs named."""
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "mktemp", "rm", "cp", "mv", "sed", "source-extractor", "solve-field"):
        found = shutil.which(tool)
        if found and tool not in missing:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def _script(tmp_path, *extra, path=None):
    import os
    import subprocess

    outputs = [tmp_path / f"out.{kind}" for kind in ("wcs", "corr", "xyls")]
    command = solve_field_command(
        SOLVE_FIELD_SH,
        tmp_path / "frame.fits",
        tmp_path / "solver.cfg",
        tmp_path / "verify.cfg",
        outputs,
        (448, 640),
        0.607,
    )
    env = {**os.environ, "PATH": path} if path else None
    proc = subprocess.run([*command, *extra], capture_output=True, text=True, env=env)
    return proc, outputs


def test_solve_field_script_without_its_programs_says_so_and_writes_no_solution(tmp_path):
    fits.PrimaryHDU(np.zeros((448, 640), np.float32)).writeto(tmp_path / "frame.fits")
    path = _path_without(tmp_path, "source-extractor", "solve-field")
    proc, outputs = _script(tmp_path, path=path)
    assert proc.returncode == 0, proc.stderr
    assert "source-extractor is not installed" in proc.stdout
    assert "solve-field is not installed" in proc.stdout
    assert "solution: none" in proc.stdout
    assert all(p.exists() and p.stat().st_size == 0 for p in outputs)
    # An existing source list, but no solve-field: said in the log, no solution.
    sources = Table({"X_IMAGE": [1.0], "Y_IMAGE": [2.0], "MAG_AUTO": [9.0], "FLUX_AUTO": [1e3]})
    sources.write(tmp_path / "list.fits")
    proc, outputs = _script(tmp_path, "--sources", str(tmp_path / "list.fits"), path=path)
    assert "solve-field is not installed: no solution" in proc.stdout, proc.stdout
    assert read_solution(outputs[0]) is None and outputs[1].stat().st_size == 0


def test_solve_field_script_skips_the_passes_when_asked_and_refuses_a_wrong_command(tmp_path):
    fits.PrimaryHDU(np.zeros((448, 640), np.float32)).writeto(tmp_path / "frame.fits")
    proc, outputs = _script(
        tmp_path, "--solve", "no", path=_path_without(tmp_path, "source-extractor")
    )
    assert "solve-field skipped" in proc.stdout and "pass 1" not in proc.stdout
    assert all(p.exists() and p.stat().st_size == 0 for p in outputs)
    import subprocess

    proc = subprocess.run(["bash", str(SOLVE_FIELD_SH), "--frame"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Usage" in proc.stderr
    proc = subprocess.run(
        ["bash", str(SOLVE_FIELD_SH), "--frame", "x.fits"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "--solver is missing" in proc.stderr


def test_solver_configurations_say_why_no_index_was_built(tmp_path):
    empty = Table(names=("RA_ICRS", "DE_ICRS", "rmag"))
    solver, verifier = tmp_path / "index" / "solver.cfg", tmp_path / "index" / "verify.cfg"
    problem = write_solver_configs(solver, verifier, empty, (6.47, 4.53))
    assert problem.startswith("no index built: the reference catalogue is empty")
    from aifa_steps.astrometry.index import solver_problem

    assert solver_problem(solver) == problem and solver_problem(verifier) == problem
    # With index folders given, solve-field still has indexes: no problem to report.
    write_solver_configs(solver, verifier, empty, (6.47, 4.53), index_dirs=[str(tmp_path)])
    assert solver_problem(solver) == "" and f"add_path {tmp_path}" in solver.read_text()
    nomag = Table({"RA_ICRS": [1.0], "DE_ICRS": [2.0]})
    assert "no column rmag" in write_solver_configs(solver, verifier, nomag, (6.47, 4.53))


def test_a_frame_is_judged_and_gets_its_wcs_and_keywords():
    """The astrometry_frame step without refinement: solve-field's matched stars judge it."""
    from astropy.nddata import CCDData

    from aifa_steps.astrometry.chain import ChainResult, chain_table
    from aifa_steps.astrometry.frame import solve_frame, status_table
    from aifa_steps.astrometry.settings import FrameSettings

    shape = (448, 640)
    truth = make_wcs(shape, 10.0, 20.0, 0.607, 0.0)
    rng = np.random.default_rng(3)
    x, y = rng.uniform(20, 620, 40), rng.uniform(20, 430, 40)
    ra, dec = truth.all_pix2world(x, y, 0)
    corr = Table({"field_x": x + 1 + rng.normal(0, 0.05, 40), "field_y": y + 1, "index_ra": ra})
    corr["index_dec"] = dec
    chain = chain_table(
        [ChainResult("a", "solve-field", wcs=truth), ChainResult("b", "none", reason="clouds")],
        shape,
    )
    stars = Table(names=("RA_ICRS", "DE_ICRS", "mag"))
    ccd = CCDData(np.zeros(shape, np.float32), unit="adu", meta=fits.Header({"FILTNAME": "r"}))
    settings = FrameSettings(refine=False)
    out, matched, status = solve_frame(ccd, "a", chain, stars, None, corr, 0.607, settings)
    assert status.solved and status.method == "solve-field" and status.reference == "solve-field"
    assert len(matched) == 40 and 0 < status.rms_arcsec < 0.1
    assert out.meta["ASTSOLVD"] and out.meta["CTYPE1"].startswith("RA---TAN")
    assert matched.meta["NAXIS1"] == 640 and out.meta["ASTNMAT"] == 40
    row = status_table(status, "astrometry", "M 1", "M_1")[0]
    assert (row["step"], row["target"], row["solved"]) == ("", "M_1", True)
    # No starting WCS: the chain's reason, and what solve-field lacked.
    out, matched, status = solve_frame(
        ccd, "b", chain, stars, None, None, 0.607, settings, problem="no index built"
    )
    assert not status.solved and not out.meta["ASTSOLVD"] and len(matched) == 0
    assert status.reason == "solve-field found no solution: no index built; clouds"
    assert out.meta["ASTREASN"].startswith("solve-field found no solution")
    # Too few stars for the judgement.
    _, _, status = solve_frame(ccd, "a", chain, stars, None, corr[:5], 0.607, settings)
    assert not status.solved and "only 5 matched stars" in status.reason
