"""Reruns: a changed raw folder reruns only what depends on it; a killed run resumes to the
same products; a night of light frames only reduces to a light curve."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import yaml
from astropy.io import fits
from astropy.table import Table

from ..helpers import REPO
from .harness import NIGHT_GOES_ON, Night, checksums, command, rewrite_light, run

pytestmark = [pytest.mark.slow, pytest.mark.faults]


def _mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.fits")}


def test_changes_to_the_raw_folder_rerun_only_what_they_touch(night, tiny_night):
    first, second, third = night.lights()
    rewrite_light(third, FILTER=None)  # excluded at first: missing keyword FILTER
    run(night, *NIGHT_GOES_ON)
    inventory = night.table("inventory.ecsv")
    assert not inventory["used"][inventory["stem"] == third.stem][0]
    calibrated = night.work / "calibrated"
    before = _mtimes(calibrated)
    assert set(before) == {f"{first.stem}.fits", f"{second.stem}.fits"}

    # 1. The header is fixed: the frame joins the night, the others are not recalibrated.
    rewrite_light(third, FILTER="r")
    run(night, *NIGHT_GOES_ON)
    after = _mtimes(calibrated)
    assert set(after) == {f"{p.stem}.fits" for p in (first, second, third)}
    assert all(after[name] == mtime for name, mtime in before.items())
    assert (night.status()["status"] == "used").all()

    # 2. A light is added: only it is calibrated.
    frames = Table.read(tiny_night / "truth" / "frames.ecsv")
    names = {p.name for p in night.lights()}
    extra = next(
        f
        for f in frames["file"][(frames["object"] == "Qatar-1") & (frames["defect"] == "none")]
        if f.split("/")[-1] not in names and not frames["cloudy"][frames["file"] == f][0]
    )
    shutil.copy2(tiny_night / extra, night.raw / extra)
    before = _mtimes(calibrated)
    run(night, *NIGHT_GOES_ON)
    after = _mtimes(calibrated)
    assert len(after) == 4 and all(after[n] == m for n, m in before.items())

    # 3. A header changes the filter of one frame and another frame is removed: the changed
    # frame alone is recalibrated, now without a flat (the night has no g flats), the others
    # keep theirs, and the night forgets the removed frame.
    rewrite_light(second, FILTER="g")
    third_time = _mtimes(calibrated)[f"{third.stem}.fits"]
    first.unlink()
    run(night, *NIGHT_GOES_ON)
    assert _mtimes(calibrated)[f"{third.stem}.fits"] == third_time
    assert fits.getheader(calibrated / f"{second.stem}.fits")["FLATCORR"] == "none"
    assert fits.getheader(calibrated / f"{third.stem}.fits")["FLATCORR"] == "flat_r.fits"
    status = night.status()
    assert first.stem not in set(status["stem"])
    assert len(status[status["imagetyp"] == "light"]) == 3


def test_kill_then_rerun_gives_the_same_products(night, reduced_micro):
    before = checksums(night.raw)
    cmd = command(night, cores=2)
    job = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    solved = night.work / "astrometry" / "solve"
    deadline = time.time() + 300
    while time.time() < deadline and job.poll() is None:
        if solved.is_dir() and any(solved.glob("*.wcs")):
            break
        time.sleep(0.2)
    assert job.poll() is None, "the run ended before it could be killed"
    os.killpg(job.pid, signal.SIGKILL)  # the whole process group: Snakemake and its jobs
    job.wait()
    proc = run(night, check=False)
    if proc.returncode != 0:  # a lock left by the killed run: Snakemake says how to lift it
        assert "--unlock" in proc.text, proc.text[-3000:]
        run(night, extra=("--unlock",))
        run(night)
    assert checksums(night.raw) == before
    mine, reference = night.table("zeropoints.ecsv"), reduced_micro.table("zeropoints.ecsv")
    assert list(mine["stem"]) == list(reference["stem"])
    assert np.allclose(mine["zeropoint"], reference["zeropoint"], rtol=0, atol=1e-9)
    for stem in mine["stem"]:
        a = fits.getdata(night.work / "calibrated" / f"{stem}.fits")
        b = fits.getdata(reduced_micro.work / "calibrated" / f"{stem}.fits")
        assert np.array_equal(a, b)
    assert (night.status()["status"] == reduced_micro.status()["status"]).all()


def test_a_night_of_light_frames_only_reduces_to_a_light_curve(tiny_night, tmp_path):
    """No BIAS, DARK or FLAT folder and no reference catalogue (a transit night of a small
    telescope, offline, with index files from elsewhere): every light is calibrated with an
    estimated bias level and without a flat, refined against a solved frame's stars, and the
    night reaches its light curve, transit fit and stack with the default workflow; the zero
    points are missing and the summary says why (issue 14, item 4)."""
    from aifa_steps.astrometry.index import build_indexes, index_scales

    raw, work = tmp_path / "raw", tmp_path / "work"
    (raw / "LIGHT").mkdir(parents=True)
    for path in (tiny_night / "LIGHT").glob("Qatar-1*.fits"):  # the transit series
        shutil.copy2(path, raw / "LIGHT" / path.name)
    refcat = Table.read(tiny_night / "refcat.ecsv")
    build_indexes(refcat, tmp_path / "index", index_scales(6.47, 4.53))
    refcat[:0].write(tmp_path / "empty.ecsv")
    cfg = yaml.safe_load((tiny_night / "config.yaml").read_text())
    cfg.update(raw_dir=str(raw), work_dir=str(work), stacks={"max_frames": 5})
    cfg["targets"] = {"Qatar-1": cfg["targets"]["Qatar-1"]}
    cfg["reference_catalogue"] = {"source": "file", "path": str(tmp_path / "empty.ecsv")}
    cfg["astrometry"] = {"build_index": False, "index_dirs": [str(tmp_path / "index")]}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    night = Night(raw, work, config)
    before = checksums(raw)
    proc = run(night)
    assert checksums(raw) == before
    assert "light frames reduced" in proc.text
    curve = Table.read(work / "products" / "Qatar-1" / "lightcurve.ecsv")
    fit = json.loads((work / "products" / "Qatar-1" / "transit_fit.json").read_text())
    status = night.status()
    used = status[(status["imagetyp"] == "light") & (status["status"] == "used")]
    assert len(curve) == int(np.sum(used["object"] == "Qatar-1")) >= 15
    assert np.isfinite(fit["depth"]) and np.isfinite(fit["t0_bjd_tdb"])
    # Without a bias level the uncertainties come from the measured sky noise: the sky noise
    # matches them, and the light curve's error bars match its scatter (a reduced chi-square
    # near 1, where guessed bias levels or gains give factors of several).
    headers = [fits.getheader(work / "calibrated" / f"{s}.fits") for s in used["stem"]]
    assert all(h["BIASCORR"] == "none" and h["BIASNOTE"].startswith("unknown") for h in headers)
    ratios = [h["SKYSTD"] / h["SKYPRED"] for h in headers]
    assert np.median(ratios) == pytest.approx(1.0, abs=0.1)
    # (With the reference catalogue: 1.46; offline 2.6 on 20 points, one frame fewer and
    # comparison stars chosen without catalogue colours.)
    assert 0.5 < fit["reduced_chi2"] < 3.0, fit["reduced_chi2"]
    truth = json.loads((tiny_night / "truth" / "transit.json").read_text())
    # Minutes, about 20 frames: -8 +- 6 with the catalogue, -11 +- 8 offline.
    offset = abs(fit["t0_bjd_tdb"] - truth["t0_bjd_tdb"])
    assert offset * 24 * 60 < 15 and offset < 2.5 * fit["t0_bjd_tdb_err"], fit
    html = (work / "qc" / "night_summary.html").read_text()
    assert "bias: none in this night" in html and "r frames are not flat-fielded" in html
    # Offline: no zero points, and the summary says why; the stack is made all the same.
    assert "Qatar-1: no zero points, magnitudes are instrumental: the reference catalogue" in html
    assert (work / "products" / "Qatar-1" / "stack_r.fits").exists()
    assert not np.isfinite(Table.read(work / "zeropoints.ecsv")["zeropoint"]).any()
    astrometry = Table.read(work / "astrometry" / "status.ecsv")
    assert all(
        str(r).startswith("stars of ") or "index stars" in str(r)
        for r in astrometry[astrometry["solved"]]["reference"]
    )


def test_a_full_disk_fails_cleanly_and_the_rerun_recovers(night, reduced_micro, tmp_path):
    """The work folder on a file system of 8 MB: the night fails with the disk's error, leaves
    no half-written product, and once there is space again the rerun completes."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mount.stderr.decode()[:200]}")
    try:
        cfg = night.cfg()
        night.set_cfg(work_dir=str(disk / "work"))
        night.work = disk / "work"
        before = checksums(night.raw)
        proc = run(night, check=False)
        assert proc.returncode != 0
        said = proc.text + "".join(p.read_text(errors="replace") for p in night.work.rglob("*.log"))
        assert "No space left on device" in said or "Not enough space on disk" in said
        assert "Nothing solved" not in said  # the disk's fault, not the frames'
        assert not (night.work / "night_status.ecsv").exists()
        for path in night.work.rglob("*"):  # every product there is complete
            if path.name.endswith(".fits"):
                with fits.open(path) as hdul:
                    for hdu in hdul:
                        _ = hdu.data
            elif path.name.endswith(".ecsv"):
                Table.read(path)
        subprocess.run(["mount", "-o", "remount,size=200m", str(disk)], check=True)
        run(night)
        mine, reference = night.table("zeropoints.ecsv"), reduced_micro.table("zeropoints.ecsv")
        assert np.allclose(mine["zeropoint"], reference["zeropoint"], rtol=0, atol=1e-9)
        assert checksums(night.raw) == before
        assert cfg["raw_dir"] == str(night.raw)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _planned_jobs(proc) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    jobs, table = {}, False
    for line in proc.text.splitlines():
        parts = line.split()
        if line.startswith("Job stats"):
            table = True
        elif table and len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            jobs[parts[0]] = int(parts[1])
        elif table and parts and parts[0] == "total":
            break
    return jobs


@pytest.mark.parametrize(
    ("section", "key", "value", "reruns", "stays"),
    [
        ("astrometry", "max_rms_arcsec", 0.7, "astrometry_frame", "solve_field"),
        ("calibration", "hot_pixel_sigma", 6.0, "bad_pixel_mask", "master_bias"),
        ("stacks", "colour_q", 5.0, "colour_image", "stack"),
    ],
)
def test_a_changed_key_reruns_only_the_rules_that_use_it(
    reduced_micro, section, key, value, reruns, stays
):
    """Each rule's parameters hold only the keys it uses (issue 14, item 7). Dry runs: the
    reduced night is not touched (its folder holds Snakemake's record of the parameters)."""
    cfg = yaml.safe_load(reduced_micro.config.read_text())
    cfg.setdefault(section, {})[key] = value
    where = reduced_micro.config.parent / f"changed_{key}.yaml"
    changed = Night(reduced_micro.raw, reduced_micro.work, where)
    changed.config.write_text(yaml.safe_dump(cfg))
    unchanged = _planned_jobs(run(reduced_micro, extra=("-n",)))
    assert unchanged == {}, unchanged
    jobs = _planned_jobs(run(changed, extra=("-n",)))
    assert reruns in jobs and stays not in jobs, jobs
