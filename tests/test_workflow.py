"""The Snakemake workflow: configuration checks and a run on the tiny night."""

import json
import subprocess
import sys
import tomllib

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from photutils.centroids import centroid_2dg, centroid_sources
from snakemake.utils import validate

from aifa_steps.simulate import get_preset, plan_night
from aifa_steps.simulate.night import night_config

from .conftest import REPO, require_program
from .test_astrometry import wcs_separation

SNAKEFILE = REPO / "workflow" / "Snakefile"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def run_snakemake(workdir, *args, check=True):
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(SNAKEFILE),
        "--directory",
        str(workdir),
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def write_config(path, **changes):
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg.update(changes)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_default_config_is_valid_and_gets_defaults():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(cfg, str(SCHEMA))
    assert cfg["frame_types"]["light"][0] == "LIGHT"
    assert "g" in cfg["filters"]
    assert cfg["reference_catalogue"]["source"] == "file"


def test_default_config_describes_the_demo_night():
    preset = get_preset("demo")
    _, transit = plan_night(preset, 2025)
    expected = night_config(preset, "raw", "work", transit)
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert cfg["simulate"]["preset"] == "demo"
    for key in ("instrument", "site", "targets"):
        assert cfg[key] == expected[key], key


def test_environment_yml_lists_the_python_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = (REPO / "environment.yml").read_text()
    for dep in project["dependencies"]:
        name = dep.split(">")[0].split("=")[0].split("<")[0].strip()
        conda_name = {"matplotlib": "matplotlib-base", "snakemake": "snakemake-minimal"}.get(
            name, name
        )
        assert f"- {conda_name}" in env, name


def test_a_typo_in_the_config_names_the_key(tmp_path):
    cfg = write_config(tmp_path / "bad.yaml", raw_dri="x")
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    assert "raw_dri" in proc.stdout + proc.stderr


def test_a_wrong_value_names_the_key(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["instrument"]["gain"] = -1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(path), check=False)
    assert proc.returncode != 0
    assert "gain" in proc.stdout + proc.stderr


def test_missing_raw_folder_without_simulation_is_a_clear_error(tmp_path):
    cfg = write_config(
        tmp_path / "c.yaml",
        simulate=None,
        raw_dir=str(tmp_path / "nowhere"),
        work_dir=str(tmp_path / "work"),
    )
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    assert "nowhere" in proc.stderr + proc.stdout and "does not exist" in proc.stderr + proc.stdout


def test_a_nights_configfile_replaces_the_default_night(tiny_night, tmp_path):
    proc = run_snakemake(
        tmp_path,
        "-n",
        "--configfile",
        str(tiny_night / "config.yaml"),
        "--config",
        f"work_dir={tmp_path / 'w'}",
    )
    text = proc.stdout + proc.stderr
    assert "simulate_night" not in text  # the demo night's simulate section did not leak in
    assert "inventory" in text


@pytest.mark.slow
def test_workflow_simulates_and_reduces_the_tiny_night(tmp_path):
    require_program("solve-field")
    raw, work = tmp_path / "raw", tmp_path / "work"
    # Ask for the frame lost to clouds as Qatar-1's reference frame: it cannot be solved, so
    # the workflow must warn and choose one itself.
    plans, _ = plan_night(get_preset("tiny"), 3)
    cloudy = next(p for p in plans if p.cloudy).file.split("/")[-1].removesuffix(".fits")
    targets = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["targets"]
    targets["Qatar-1"]["reference_frame"] = cloudy
    # Gain and read noise unknown ('auto'): measured from the night's flat and bias pairs
    # (the simulated headers have EGAIN, which the inventory may or may not carry).
    instrument = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["instrument"]
    instrument.update(gain="auto", read_noise="auto")
    cfg = write_config(
        tmp_path / "tiny.yaml",
        raw_dir=str(raw),
        work_dir=str(work),
        simulate={"preset": "tiny", "seed": 3},
        reference_catalogue={"source": "file", "path": str(raw / "refcat.ecsv")},
        targets=targets,
        instrument=instrument,
    )
    run_snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert (raw / "truth" / "frames.ecsv").exists()
    inventory = Table.read(work / "inventory.ecsv")
    frames = Table.read(raw / "truth" / "frames.ecsv")
    assert len(inventory) == len(frames)
    assert sorted(inventory["reason"][~inventory["used"]]) == [
        "missing keyword FILTER/FILTERS/FILTNAME/FILTER1/FILT",  # the keywords tried
        "truncated file (290880 of 581760 bytes)",
    ]
    assert (work / "logs" / "inventory.log").exists()
    # Masters, the bad-pixel mask and one calibrated frame per used light.
    for name in (
        "bias.fits",
        "dark_60s.fits",
        "flat_g.fits",
        "flat_r.fits",
        "flat_i.fits",
        "bad_pixels.fits",
    ):
        assert (work / "masters" / name).exists(), name
    lights = inventory[(inventory["imagetyp"] == "light") & inventory["used"]]
    calibrated = sorted(p.name.removesuffix(".fits") for p in (work / "calibrated").glob("*.fits"))
    assert calibrated == sorted(lights["stem"])
    qc_frames = Table.read(work / "qc" / "calibrated_frames.ecsv")
    assert len(qc_frames) == len(lights)
    camera = Table.read(work / "qc" / "camera.ecsv")
    assert not any(camera["ok"])  # nothing configured to compare with
    detector = Table.read(work / "qc" / "detector.ecsv")
    gain, read_noise = detector["value"]
    assert gain == pytest.approx(0.376, rel=0.03) and read_noise == pytest.approx(3.5, rel=0.05)
    assert detector["source"][0] == "photon transfer (flat pairs)"
    header = fits.getheader(work / "calibrated" / f"{lights['stem'][0]}.fits")
    assert header["GAINSRC"] in ("header", "photon transfer (flat pairs)")
    assert header["GAIN_E"] == pytest.approx(0.376, rel=0.03)
    assert header["RDNOISE"] == pytest.approx(3.5, rel=0.05)
    flats_r = Table.read(work / "qc" / "flat_frames_r.ecsv")
    assert (~flats_r["used"]).sum() == 1
    assert (work / "qc" / "masters" / "master_flat_r.png").exists()
    # Astrometry: every clear frame solves to < 0.1 arcsec RMS against the true WCS (corners
    # included); the frame lost to clouds fails with a reason; the run still ends green.
    status = Table.read(work / "astrometry" / "status.ecsv")
    assert set(status.colnames) >= {"stem", "solved", "reason", "n_matches", "rms_arcsec"}
    truth = {
        f.split("/")[-1].removesuffix(".fits"): row
        for f, row in zip(frames["file"], frames, strict=True)
    }
    for row in status:
        if truth[row["stem"]]["cloudy"]:
            assert not row["solved"] and row["reason"]
            continue
        assert row["solved"], (row["stem"], row["reason"])
        header = fits.getheader(work / "astrometry" / f"{row['stem']}.fits")
        true_wcs = WCS(fits.getheader(raw / "truth" / "wcs" / f"{row['stem']}.fits"))
        rms, _ = wcs_separation(WCS(header), true_wcs, (header["NAXIS2"], header["NAXIS1"]))
        assert rms < 0.1, (row["stem"], rms)
    assert (~status["solved"]).sum() == frames["cloudy"].sum()
    assert (work / "logs" / "simulate_night.log").exists()
    # Photometry: a reference table and region file per target, a table per solved frame
    # with its time and aperture corrections, zero points close to the truth.
    solved = status[status["solved"]]
    for obj in ("NGC7789", "Qatar-1"):
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
    error = small["zeropoint"] - [truth[s]["zeropoint"] for s in small["stem"]]
    # The tiny frames hold a dozen or two reference stars: a few hundredths per frame (the
    # 0.01 mag criterion is tested on demo-size frames in test_zeropoints).
    assert np.all(np.abs(error) < 0.05), error
    assert abs(np.median(error)) < 0.01
    assert (work / "qc" / "zeropoints.png").exists()
    assert (work / "photometry" / "extinction.ecsv").exists()
    targets = Table.read(work / "qc" / "photometry_targets.ecsv")
    chosen = targets["reference_frame"][targets["object"] == "Qatar-1"][0]
    assert chosen != cloudy and chosen in solved["stem"]
    log = (work / "logs" / "photometry_reference" / "Qatar-1.log").read_text()
    assert cloudy in log and "not a solved frame" in log
    # Science products: the cluster's catalogue and CMD (not for the transit target).
    catalogue = Table.read(work / "products" / "NGC7789" / "catalogue.ecsv")
    assert catalogue.colnames[:9] == ["id", "ra", "dec", "g", "g_err", "r", "r_err", "i", "i_err"]
    assert (work / "products" / "NGC7789" / "cmd.png").exists()
    assert not (work / "products" / "Qatar-1" / "catalogue.ecsv").exists()
    # ... and the transit target's light curve and fit (the tiny night is too short and noisy
    # for the fit's accuracy, which tests/test_lightcurve.py and the demo night check).
    curve = Table.read(work / "products" / "Qatar-1" / "lightcurve.ecsv")
    assert len(curve) == (solved["object"] == "Qatar-1").sum()
    assert curve.colnames[:5] == ["bjd_tdb", "flux", "flux_err", "flux_detrended", "model"]
    fit = json.loads((work / "products" / "Qatar-1" / "transit_fit.json").read_text())
    assert {"t0_bjd_tdb", "t0_bjd_tdb_err", "depth", "depth_err", "duration_hours"} <= set(fit)
    assert (work / "products" / "Qatar-1" / "lightcurve.png").exists()
    # Stacks of every target and filter on the reference frame's grid, and colour images.
    for obj, bands in (("NGC7789", "gri"), ("Qatar-1", "r")):
        for band in bands:
            with fits.open(work / "products" / obj / f"stack_{band}.fits") as hdul:
                assert hdul[0].header["FILTER"] == band and "EXPOSURE" in hdul
                assert hdul[0].header["NCOMBINE"] >= 1 and "MAGZPT" in hdul[0].header
        assert (work / "products" / obj / "color.png").stat().st_size > 1000
    with fits.open(work / "products" / "NGC7789" / "stack_r.fits") as hdul:
        image, grid = hdul[0].data, WCS(hdul[0].header)
    stars = Table.read(raw / "truth" / "stars.ecsv")
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
    # Nothing left to do on a second run, and the report renders.
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert "Nothing to be done" in proc.stdout + proc.stderr
    run_snakemake(tmp_path, "--configfile", str(cfg), "--report", str(work / "report.html"))
    report_html = (work / "report.html").read_text(errors="replace")
    assert (work / "report.html").stat().st_size > 10_000
    for label in ("colour image of NGC7789", "transit light curve of Qatar-1", "night summary"):
        assert label in report_html, label
    # The night's status: every raw file, the left-out ones with the step and the reason.
    night = Table.read(work / "night_status.ecsv")
    assert len(night) == len(frames)
    left_out = night[night["status"] != "used"]
    assert set(left_out["stem"][left_out["step"] == "inventory"]) == set(
        inventory["stem"][~inventory["used"]]
    )
    assert set(left_out["stem"][left_out["step"] == "astrometry"]) == set(
        status["stem"][~status["solved"]]
    )
    assert "Night summary:" in (work / "qc" / "night_summary.html").read_text()
