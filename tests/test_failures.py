"""Failures as data, night verdicts, atomic writes and safe names (without the workflow)."""

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from aifa_steps.core.atomic import PARTIAL_PREFIX, atomic_path, write_table
from aifa_steps.core.failures import (
    FAULT_ENV,
    FrameFailure,
    check_light_data,
    fits_failure,
    run_frame_step,
    write_failed_fits,
)
from aifa_steps.core.fitsutil import set_card
from aifa_steps.core.formats import safe_name, safe_names
from aifa_steps.summary.checks import (
    config_problems,
    config_warnings,
    fix_hint,
    inventory_verdict,
    missing_tools,
)
from aifa_steps.summary.status import night_status, night_verdict


# ---- atomic writes ---------------------------------------------------------------------------
def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "t.ecsv"
    write_table(Table({"a": [1, 2]}), path)
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half a tab")
        raise RuntimeError("killed")
    assert list(Table.read(path)["a"]) == [1, 2]
    assert not list(tmp_path.glob(f"{PARTIAL_PREFIX}*"))


def test_a_process_killed_while_writing_leaves_the_old_file_or_none(tmp_path):
    """The process dies (os._exit) half-way through a FITS file: the product is either the
    complete old one or absent, never a truncated file that a rerun would trust."""
    script = textwrap.dedent(
        f"""
        import os
        import numpy as np
        from astropy.io import fits
        from aifa_steps.core.atomic import atomic_path
        for name in ("old.fits", "new.fits"):
            path = {str(tmp_path)!r} + "/" + name
            with atomic_path(path) as tmp:
                data = np.arange(200 * 300, dtype=np.float32).reshape(200, 300)
                fits.PrimaryHDU(data).writeto(tmp)
                with open(tmp, "r+b") as handle:
                    handle.truncate(5000)  # as if the disk filled or the job was killed
                if name == "new.fits" or os.path.exists({str(tmp_path)!r} + "/old.fits"):
                    os._exit(9)
        """
    )
    (tmp_path / "old.fits").parent.mkdir(exist_ok=True)
    fits.PrimaryHDU(np.ones((2, 2), np.float32)).writeto(tmp_path / "old.fits")
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == 9
    assert np.array_equal(fits.getdata(tmp_path / "old.fits"), np.ones((2, 2)))
    assert not (tmp_path / "new.fits").exists()


# ---- one frame's failure is data -------------------------------------------------------------
def test_run_frame_step_turns_any_error_into_a_reason(tmp_path, monkeypatch, caplog):
    reasons = []
    assert run_frame_step("calibration", "f1", lambda: 5, reasons.append) == 5
    assert not reasons

    def broken():
        return {}["EXPTIME"]

    assert run_frame_step("calibration", "f1", broken, reasons.append) is None
    assert reasons == ["KeyError: 'EXPTIME'"]
    assert "Traceback" in caplog.text
    run_frame_step(
        "astrometry", "f1", lambda: (_ for _ in ()).throw(FrameFailure("no stars")), reasons.append
    )
    assert reasons[-1] == "no stars"
    monkeypatch.setenv(FAULT_ENV, "photometry:f2")
    run_frame_step("photometry", "f2", lambda: 1, reasons.append)
    assert reasons[-1] == f"RuntimeError: fault injected by {FAULT_ENV}"
    assert run_frame_step("photometry", "f3", lambda: 1, reasons.append) == 1


def test_failed_fits_products_say_why(tmp_path):
    path = tmp_path / "c.fits"
    header = fits.Header({"OBJECT": "Qatar-1", "FILTER": "r", "GAIN": 1.0})
    write_failed_fits(path, "calibration", "no finite pixel (all NaN or infinite)" * 3, header)
    step, reason = fits_failure(path)
    assert step == "calibration" and reason.startswith("no finite pixel")
    assert len(reason) > 68  # long reasons survive (CONTINUE cards)
    assert fits.getheader(path)["OBJECT"] == "Qatar-1" and "GAIN" not in fits.getheader(path)
    fits.PrimaryHDU(np.zeros((2, 2))).writeto(tmp_path / "good.fits")
    assert fits_failure(tmp_path / "good.fits") is None


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: np.full_like(d, np.nan), "no finite pixel"),
        (lambda d: np.where(np.arange(d.size).reshape(d.shape) % 3 == 0, 5.0, np.nan), "only 33 %"),
        (lambda d: np.full_like(d, 65535.0), "saturated: 100 % of the pixels"),
        (lambda d: np.full_like(d, 800.0), "blank frame: every pixel is 800 ADU"),
    ],
)
def test_unusable_light_data(make, reason):
    data = np.random.default_rng(1).normal(500, 10, (64, 80))
    check_light_data(data, 65535)  # a normal frame passes
    with pytest.raises(FrameFailure, match=reason):
        check_light_data(make(data), 65535)
    data[:, 3] = np.nan  # one bad column is not a failure
    check_light_data(data, 65535)


def test_nan_header_values_are_written():
    header = fits.Header()
    set_card(header, "SKYSTD", np.float32("nan"), "QC")
    set_card(header, "SKYMED", np.float64(3.5), "QC")
    fits.PrimaryHDU(header=header).writeto(fits_buffer := __import__("io").BytesIO())
    assert math.isnan(float(header["SKYSTD"])) and header["SKYMED"] == 3.5
    assert fits_buffer.tell() > 0


# ---- names from headers ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("original", "safe"),
    [
        ("Qatar-1", "Qatar-1"),
        ("HAT-P-32 b/test", "HAT-P-32_b_test"),
        ("M 31", "M_31"),
        ("Kepler-1b.2", "Kepler-1b_2"),
        ("Plejaden Süd", "Plejaden_Sud"),
        ("../../etc", "etc"),
        ("-x", "_-x"),
        ("", "unnamed"),
    ],
)
def test_safe_names(original, safe):
    assert safe_name(original) == safe


def test_safe_names_stay_distinct():
    names = safe_names(["M 31", "M/31", "NGC7789", "星"])
    assert len(set(names.values())) == 4
    assert names["NGC7789"] == "NGC7789" and names["M 31"].startswith("M_31_")
    assert names["星"].startswith("unnamed_")


# ---- problems of the night -------------------------------------------------------------------
BASE = {
    "photometry": {"apertures_arcsec": [4, 6, 8, 10]},
    "zeropoints": {"catalogue_aperture_arcsec": 4},
    "astrometry": {"build_index": True, "index_dirs": []},
    "reference_catalogue": {"source": "vizier"},
}


def test_config_contradictions_name_the_keys(tmp_path):
    assert config_problems(BASE) == []
    bad = {**BASE, "zeropoints": {"catalogue_aperture_arcsec": 5}}
    (problem,) = config_problems(bad)
    assert "zeropoints.catalogue_aperture_arcsec is 5" in problem
    assert "photometry.apertures [4.0, 6.0, 8.0, 10.0]" in problem
    no_index = {**BASE, "astrometry": {"build_index": False, "index_dirs": []}}
    assert "astrometry.build_index is false" in config_problems(no_index)[0]
    missing = {**BASE, "astrometry": {"build_index": True, "index_dirs": [str(tmp_path / "x")]}}
    assert "does not exist" in config_problems(missing)[0]
    file_source = {**BASE, "reference_catalogue": {"source": "file", "path": "nowhere.ecsv"}}
    assert "nowhere.ecsv does not exist" in config_problems(file_source)[0]
    assert config_problems(file_source, check_files=False) == []
    transit = {**BASE, "targets": {"X": {"kind": "transit", "ra": 1, "dec": 2}}}
    assert "targets.X.ephemeris lacks t0_bjd_tdb and period_days" in config_problems(transit)[0]


def test_missing_programs_name_the_debian_package():
    found = {"solve-field": None, "source-extractor": "/usr/bin/source-extractor"}
    problems = missing_tools(BASE, which=lambda name: found.get(name, "/usr/bin/x"))
    assert len(problems) == 1 and "sudo apt-get install astrometry.net" in problems[0]
    no_build = {**BASE, "astrometry": {"build_index": False}}
    assert missing_tools(no_build, which=lambda name: None if "index" in name else "/x") == []


def _inventory(rows, problems=()):
    names = ("path", "stem", "imagetyp", "object", "target", "filter", "used", "reason")
    table = Table(rows=rows, names=names, dtype=(str, str, str, str, str, str, bool, str))
    table.meta["problems"] = [list(p) for p in problems]
    return table


def test_inventory_verdicts():
    ok = _inventory(
        [("a", "a", "light", "Q", "Q", "r", True, ""), ("b", "b", "bias", "", "", "", True, "")]
    )
    assert inventory_verdict(ok, [], "inv.ecsv") is None
    fatal = _inventory(ok, problems=[("no_flat", "no usable flats in filter(s) ['r']")])
    assert "[no_flat]" in inventory_verdict(fatal, ["no_flat"], "inv.ecsv")
    assert inventory_verdict(fatal, ["no_bias"], "inv.ecsv") is None
    excluded = _inventory(
        [
            ("a", "a", "light", "Q", "Q", "r", False, "missing keyword FILTER"),
            ("b", "b", "light", "Q", "Q", "r", False, "missing keyword FILTER"),
            ("c", "c", "light", "Q", "Q", "r", False, "truncated file (1 of 2 bytes)"),
        ]
    )
    message = inventory_verdict(excluded, [], "work/inventory.ecsv")
    assert "all 3 are excluded" in message and "2 x missing keyword FILTER" in message
    assert "1 x truncated file" in message and "work/inventory.ecsv" in message
    assert "fix: set the headers section" in message
    assert "no light frame" in inventory_verdict(_inventory([ok[1]]), [], "i").lower()
    assert fix_hint("unknown frame type 'x'").startswith("add the header value")


def test_night_status_and_verdict():
    inventory = _inventory(
        [
            ("L/a.fits", "a", "light", "Q b", "Q_b", "r", True, ""),
            ("L/b.fits", "b", "light", "Q b", "Q_b", "r", True, ""),
            ("L/c.fits", "c", "light", "Q b", "Q_b", "r", True, ""),
            ("L/d.fits", "d", "light", "Q b", "Q_b", "r", False, "missing keyword FILTER"),
            ("F/f.fits", "f", "flat", "", "", "r", True, ""),
        ]
    )
    astrometry = Table(
        rows=[
            ("a", True, "", ""),
            ("b", False, "no finite pixel", "calibration"),
            ("c", True, "", ""),
        ],
        names=("stem", "solved", "reason", "step"),
    )
    zeropoints = Table(
        rows=[("a", 25.0, ""), ("c", np.nan, "photometry failed: no stars measured")],
        names=("stem", "zeropoint", "reason"),
    )
    flats = [Table(rows=[("F/f.fits", False, "saturated")], names=("path", "used", "reason"))]
    status = night_status(inventory, astrometry, zeropoints, flats)
    rows = {r["stem"]: r for r in status}
    assert (rows["a"]["status"], rows["a"]["step"]) == ("used", "")
    assert (rows["b"]["status"], rows["b"]["step"], rows["b"]["reason"]) == (
        "failed",
        "calibration",
        "no finite pixel",
    )
    assert (rows["c"]["step"], rows["c"]["reason"]) == ("photometry", "no stars measured")
    assert (rows["d"]["status"], rows["d"]["step"]) == ("excluded", "inventory")
    assert (rows["f"]["status"], rows["f"]["step"]) == ("excluded", "master_flat")
    fatal, message = night_verdict(status)
    assert not fatal and message.startswith("Night summary: 1 of 4 light frames reduced")
    nothing = Table(
        rows=[(s, False, "solve-field found no solution", "astrometry") for s in "abc"],
        names=("stem", "solved", "reason", "step"),
    )
    fatal, message = night_verdict(night_status(inventory, nothing))
    assert fatal and "Nothing solved" in message
    assert "3 x astrometry: solve-field found no solution" in message


def test_targets_and_filters_without_frames_are_warned_about():
    inventory = _inventory([("a", "a", "light", "HAT-P-32 b", "HAT-P-32_b", "r", True, "")])
    config = {
        "targets": {
            "HAT-P-32 b": {"filters": ["r", "g"]},
            "HAT-P-32_b": {},
            "WASP-12": {"filters": ["r"]},
        }
    }
    warnings = config_warnings(config, inventory)
    assert len(warnings) == 2
    assert "targets.HAT-P-32 b.filters lists g" in warnings[0]
    assert "targets.WASP-12 has no usable light frame" in warnings[1]


def test_the_summary_page_lists_frames_left_out_calibration_and_warnings():
    from aifa_steps.summary.page import night_summary_html
    from aifa_steps.summary.status import calibration_notes

    inventory = _inventory(
        [
            ("L/a.fits", "a", "light", "Q b", "Q_b", "r", True, ""),
            ("L/d.fits", "d", "light", "Q b", "Q_b", "r", False, "missing keyword FILTER"),
        ]
    )
    status = night_status(inventory)
    notes = calibration_notes(inventory)
    assert notes[0].startswith("bias: none in this night")
    assert "dark: none in this night" in notes[1]
    assert "flat r: none in this night; r frames are not flat-fielded" in notes[2]
    html = night_summary_html(status, "Night summary: 1 of 2", ["targets.X has no frame"], notes)
    for text in ("missing keyword FILTER", "targets.X has no frame", "not flat-fielded", "Q b"):
        assert text in html


def test_errors_of_the_machine_end_the_job_instead_of_failing_the_frame():
    import errno

    from aifa_steps.core.failures import is_environment_error

    full = OSError(errno.ENOSPC, "No space left on device")
    assert is_environment_error(full) and is_environment_error(MemoryError())
    assert is_environment_error(OSError("Not enough space on disk: requested 5, available 0"))
    assert not is_environment_error(OSError("Empty or corrupt FITS file"))
    reasons = []
    with pytest.raises(OSError):
        run_frame_step("calibration", "f", lambda: (_ for _ in ()).throw(full), reasons.append)
    assert reasons == []
