"""Faults of the night as a whole, and calibration with what the night has.

A problem of the whole night stops early with one message that names the cause and the fix;
a night that lacks bias, darks or flats is reduced with what it has.
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from .harness import rewrite_light, run

pytestmark = [pytest.mark.slow, pytest.mark.faults]


def test_missing_solve_field_stops_before_any_job(night, raw_guard, tmp_path):
    # A PATH with the environment's python and a shell, but without astrometry.net's
    # programs. `which` too: the SLURM executor plugin, when installed, runs it while
    # Snakemake reads its options (every system has it).
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("bash", "sh", "which"):
        if shutil.which(name):
            (tools / name).symlink_to(shutil.which(name))
    env = {"PATH": os.pathsep.join([os.path.dirname(sys.executable), str(tools)])}
    if shutil.which("solve-field", path=env["PATH"]):
        pytest.skip("solve-field lives next to python here")
    raw_guard(night)
    proc = run(night, check=False, env=env)
    assert proc.returncode != 0
    assert "solve-field is not installed" in proc.text
    assert "sudo apt-get install astrometry.net" in proc.text
    assert not night.work.exists() or not (night.work / "inventory.ecsv").exists()


def test_catalogue_aperture_not_among_the_apertures_stops_at_start(night, raw_guard):
    night.set_cfg(zeropoints={"catalogue_aperture_arcsec": 5})
    raw_guard(night)
    proc = run(night, "inventory.ecsv", check=False)
    assert proc.returncode != 0
    assert "zeropoints.catalogue_aperture_arcsec is 5" in proc.text
    assert "photometry.apertures" in proc.text
    assert not (night.work / "inventory.ecsv").exists()


def test_an_index_folder_without_index_files_stops_at_start(night, raw_guard, tmp_path):
    empty = tmp_path / "indexes"
    empty.mkdir()
    night.set_cfg(astrometry={"build_index": False, "index_dirs": [str(empty)]})
    raw_guard(night)
    proc = run(night, check=False)
    assert proc.returncode != 0
    assert f"astrometry.index_dirs names {empty}, which holds no index files" in proc.text
    assert "astrometry-data-tycho2" in proc.text


def test_nothing_solved_ends_with_the_night_summary(night, raw_guard):
    # A pixel scale twice the real one: solve-field cannot find any of the frames.
    cfg = night.cfg()
    night.set_cfg(instrument={**cfg["instrument"], "pixel_scale": 1.214})
    raw_guard(night)
    proc = run(night, check=False)
    assert proc.returncode != 0
    assert "Nothing solved: none of the 3 light frames" in proc.text
    # solve-field ran on the first frame (astrometry.solve_field: first) and on the others as
    # the fallback when it solved none; every frame is counted with its reason.
    assert "1 x astrometry: solve-field found no solution" in proc.text
    assert "2 x astrometry: no frame of this target was solved by solve-field" in proc.text
    assert "instrument.pixel_scale" in proc.text  # the fix
    status = night.status()
    lights = status[status["imagetyp"] == "light"]
    assert set(lights["status"]) == {"failed"} and set(lights["step"]) == {"astrometry"}
    assert (night.work / "qc" / "night_summary.html").exists()
    assert not (night.work / "zeropoints.ecsv").exists()
    assert "Traceback" not in proc.stderr.split("Nothing solved")[0][-3000:]


def test_an_empty_reference_catalogue_says_why_nothing_solved(night, raw_guard):
    refcat = Table.read(night.raw / "refcat.ecsv")
    empty = night.raw.parent / "empty_refcat.ecsv"
    refcat[:0].write(empty)
    night.set_cfg(reference_catalogue={"source": "file", "path": str(empty)})
    raw_guard(night)
    proc = run(night, check=False)
    assert proc.returncode != 0 and "Nothing solved" in proc.text
    assert "no index built: the reference catalogue is empty" in proc.text


def test_fatal_problem_from_the_configuration_stops_after_the_inventory(night, raw_guard):
    shutil.rmtree(night.raw / "FLAT")
    night.set_cfg(inventory={"fatal": ["no_flat"]})
    raw_guard(night)
    proc = run(night, check=False)
    assert proc.returncode != 0
    assert "inventory.fatal declares fatal" in proc.text and "[no_flat]" in proc.text
    assert str(night.work / "inventory.ecsv") in proc.text
    assert (night.work / "inventory.ecsv").exists()
    assert not (night.work / "calibrated").exists()


def test_targets_and_filters_without_frames_are_warnings(night, raw_guard):
    targets = night.cfg()["targets"]
    targets["Qatar-1"]["filters"] = ["r", "g"]
    targets["WASP-12"] = {"kind": "field", "ra": 97.64, "dec": 29.67}
    night.set_cfg(targets=targets)
    raw_guard(night)
    run(night, "inventory.ecsv")  # (the night summary repeats them: test_failures.py)
    log = (night.work / "logs" / "inventory.log").read_text()
    assert "targets.WASP-12 has no usable light frame in this night" in log
    assert "targets.Qatar-1.filters lists g, but the night has no Qatar-1 frames in g" in log


def test_night_without_bias_frames(night, raw_guard):
    from aifa_steps.core.frames import read_ccd

    shutil.rmtree(night.raw / "BIAS")
    raw_guard(night)
    run(night, "qc/camera.ecsv", *(f"calibrated/{p.stem}.fits" for p in night.lights()))
    stem = night.lights()[0].name.removesuffix(".fits")
    ccd = read_ccd(night.work / "calibrated" / f"{stem}.fits")
    assert ccd.meta["BIASCORR"] == "none" and ccd.meta["BIASNOTE"] == "bias level in the dark"
    assert fits.getheader(night.work / "masters" / "dark_60s.fits")["BIASINCL"] is True
    camera = Table.read(night.work / "qc" / "camera.ecsv")
    assert all(r.startswith("not measured") for r in camera["reason"])
    # The sky noise still follows the CCD equation: the dark carried the bias level.
    assert ccd.meta["SKYSTD"] / ccd.meta["SKYPRED"] == pytest.approx(1.0, abs=0.1)


def test_night_without_darks_or_flats(night, raw_guard):
    from aifa_steps.core.frames import read_ccd

    shutil.rmtree(night.raw / "DARK")
    shutil.rmtree(night.raw / "FLAT")
    raw_guard(night)
    run(night, "qc/masters.ecsv")
    stem = night.lights()[0].name.removesuffix(".fits")
    ccd = read_ccd(night.work / "calibrated" / f"{stem}.fits")
    assert ccd.meta["DARKCORR"] == "none" and ccd.meta["FLATCORR"] == "none"
    assert ccd.meta["BPMASK"] == "none" and "no flat" in ccd.meta["FLATNOTE"]
    masters = Table.read(night.work / "qc" / "masters.ecsv")
    reasons = dict(zip(masters["kind"], masters["reason"], strict=True))
    assert reasons["bad_pixels"].startswith("skipped: the night has no usable master dark or flat")
    assert reasons["dark"] == "no dark frames in this night"


def test_every_flat_saturated(night, raw_guard):
    for flat in sorted((night.raw / "FLAT").glob("*.fits")):
        rewrite_light(flat, data=lambda d: np.full_like(d, 65535))
    raw_guard(night)
    stem = night.lights()[0].name.removesuffix(".fits")
    run(night, f"calibrated/{stem}.fits")
    header = fits.getheader(night.work / "masters" / "flat_r.fits")
    assert header["FRAMEOK"] is False and "no usable flat among 2 frames" in header["FAILREAS"]
    flats = Table.read(night.work / "qc" / "flat_frames_r.ecsv")
    assert not flats["used"].any() and all(r.startswith("saturated") for r in flats["reason"])
    calibrated = fits.getheader(night.work / "calibrated" / f"{stem}.fits")
    assert calibrated["FRAMEOK"] and calibrated["FLATCORR"] == "none"
    assert "no usable flat" in calibrated["FLATNOTE"]


def test_every_bias_corrupt(night, raw_guard):
    for bias in sorted((night.raw / "BIAS").glob("*.fits")):
        bias.write_bytes(bias.read_bytes()[:5000])
    raw_guard(night)
    stems = [p.name.removesuffix(".fits") for p in night.lights()]
    run(night, *(f"calibrated/{s}.fits" for s in stems))
    inventory = night.table("inventory.ecsv")
    biases = inventory[inventory["imagetyp"] == "bias"]
    assert len(biases) == 3 and not biases["used"].any()
    assert not (night.work / "masters" / "bias.fits").exists()
    for stem in stems:  # calibrated as in a night without biases: the dark holds the bias
        header = fits.getheader(night.work / "calibrated" / f"{stem}.fits")
        assert header["FRAMEOK"] and header["BIASNOTE"] == "bias level in the dark"


def test_two_runs_on_one_work_folder(night, raw_guard):
    import subprocess
    import time

    from ..helpers import REPO
    from .harness import command

    raw_guard(night)
    # Warm jobs calibrate the micro night's lights within seconds: the targets go on to the
    # zero points, so that the first run still holds them when the second one starts. (Named
    # targets are locked from the start; the whole night's per-frame files only after the
    # inventory checkpoint.)
    targets = [f"calibrated/{p.stem}.fits" for p in night.lights()] + ["zeropoints.ecsv"]
    cmd = command(night, *targets, cores=1)
    log = (night.work.parent / "first_run.log").open("w")  # not a pipe: nobody reads it
    first = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while not (night.work / "inventory.ecsv").exists() and time.time() < deadline:
            time.sleep(0.5)
        second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        assert second.returncode != 0
        assert "cannot be locked" in second.stdout + second.stderr
    finally:
        first.wait(timeout=600)
        log.close()
    assert first.returncode == 0
