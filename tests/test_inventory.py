import shutil

import numpy as np
import pytest
import yaml
from astropy.io import fits

from aifa_steps.inventory.classify import canonical_filter, frame_type
from aifa_steps.inventory.report import inventory_html
from aifa_steps.inventory.table import InventoryError, build_inventory, read_frame

ALIASES = {
    "bias": ["BIAS", "Bias Frame", "zero"],
    "dark": ["DARK", "Dark Frame"],
    "flat": ["FLAT", "Flat Field"],
    "light": ["LIGHT", "Light Frame", "object"],
}
FILTERS = {"r": ["r", "Sloan r", "rp"], "g": ["g", "Sloan g"]}


@pytest.fixture(scope="module")
def config(tiny_night):
    cfg = yaml.safe_load((tiny_night / "config.yaml").read_text())
    cfg["frame_types"] = ALIASES
    cfg["filters"] = {**FILTERS, "i": ["i"]}
    return cfg


def test_frame_type_aliases_and_folder_fallback(tmp_path):
    assert frame_type("Light Frame", ALIASES) == "light"
    assert frame_type("ZERO", ALIASES) == "bias"
    assert frame_type(" flat field ", ALIASES) == "flat"
    assert frame_type(None, ALIASES, tmp_path / "DARK" / "x.fits") == "dark"
    assert frame_type("weird", ALIASES, tmp_path / "Flats" / "x.fits") == "flat"
    assert frame_type("weird", ALIASES, tmp_path / "other" / "x.fits") is None


def test_filter_aliases():
    assert canonical_filter("Sloan r", FILTERS) == "r"
    assert canonical_filter("RP", FILTERS) == "r"
    assert canonical_filter("Ha", FILTERS) == "Ha"  # unknown names pass through
    assert canonical_filter("", FILTERS) is None


def test_tiny_night_inventory_flags_the_bad_frames(tiny_night, tiny_frames, config):
    table = build_inventory(tiny_night, config)
    assert len(table) == len(tiny_frames)
    assert set(table.colnames) >= {
        "path",
        "imagetyp",
        "filter",
        "exptime",
        "object",
        "mjd",
        "used",
        "reason",
    }
    by_stem = {row["stem"]: row for row in table}
    for truth in tiny_frames:
        stem = truth["file"].split("/")[-1].removesuffix(".fits")
        row = by_stem[stem]
        assert row["imagetyp"] == truth["imagetyp"].lower()
        assert row["exptime"] == pytest.approx(truth["exptime"])
        assert row["mjd"] == pytest.approx(truth["mjd"], abs=1e-6)
        if truth["defect"] == "corrupt":
            assert not row["used"] and "truncated" in row["reason"]
        elif truth["defect"] == "no_filter":
            assert not row["used"] and "missing keyword FILTER" in row["reason"]
        else:
            assert row["used"], (stem, row["reason"])
            assert row["filter"] == truth["filter"]
    html = inventory_html(table)
    assert "truncated" in html and "Excluded frames (2)" in html


def test_raw_files_are_not_modified(tiny_night, config):
    before = {p: p.stat().st_mtime_ns for p in tiny_night.rglob("*.fits")}
    build_inventory(tiny_night, config)
    assert before == {p: p.stat().st_mtime_ns for p in tiny_night.rglob("*.fits")}


def _write(path, shape=(10, 12), **keys):
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu = fits.PrimaryHDU(np.zeros(shape, dtype=np.uint16))
    for k, v in keys.items():
        hdu.header[k.replace("_", "-")] = v
    hdu.writeto(path)
    return path


def test_foreign_spellings_odd_shapes_and_missing_flats(tmp_path):
    night = tmp_path / "night"
    base = {"EXPTIME": 10.0, "DATE_OBS": "2025-10-14T20:00:00"}
    _write(night / "cal" / "b1.fits", IMAGETYP="Bias Frame", **base)
    _write(night / "cal" / "f1.fits", IMAGETYP="Flat Field", FILTER="Sloan r", **base)
    _write(night / "sci" / "l1.fits", IMAGETYP="object", FILTER="rp", OBJECT="M1", **base)
    _write(night / "sci" / "l2.fits", IMAGETYP="Light Frame", FILTER="Sloan g", OBJECT="M1", **base)
    _write(
        night / "sci" / "l3.fits", shape=(20, 12), IMAGETYP="LIGHT", FILTER="r", OBJECT="M1", **base
    )
    (night / "sci" / "junk.fits").write_bytes(b"not a fits file at all")
    cfg = {"frame_types": ALIASES, "filters": FILTERS}
    table = build_inventory(night, cfg)
    rows = {r["stem"]: r for r in table}
    assert rows["b1"]["imagetyp"] == "bias" and rows["b1"]["used"]
    assert rows["f1"]["filter"] == "r" and rows["f1"]["used"]
    assert rows["l1"]["imagetyp"] == "light" and rows["l1"]["filter"] == "r" and rows["l1"]["used"]
    # A light in a filter without flats is kept (calibrated without a flat) and the night
    # problem says so; only inventory.fatal can make it stop the night.
    assert rows["l2"]["used"] and rows["l2"]["filter"] == "g"
    problems = dict(map(tuple, table.meta["problems"]))
    assert "['g']" in problems["no_flat"] and "not flat-fielded" in problems["no_flat"]
    with pytest.raises(InventoryError, match="no_flat"):
        build_inventory(night, {**cfg, "inventory": {"fatal": ["no_flat"]}})
    assert not rows["l3"]["used"] and "shape" in rows["l3"]["reason"]
    assert not rows["junk"]["used"] and "unreadable" in rows["junk"]["reason"]


def test_local_time_offset_is_removed(tmp_path):
    path = _write(
        tmp_path / "LIGHT" / "x.fits",
        IMAGETYP="LIGHT",
        FILTER="r",
        OBJECT="M1",
        EXPTIME=5.0,
        DATE_OBS="2025-10-14T22:00:00",
    )
    cfg = {
        "frame_types": ALIASES,
        "filters": FILTERS,
        "headers": {"date_obs_utc_offset_hours": 2.0},
    }
    row = read_frame(path, cfg)
    assert row["mjd"] == pytest.approx(60962.0 + 20.0 / 24.0)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_inventory(tmp_path / "nope", {})
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no FITS files"):
        build_inventory(tmp_path / "empty", {})


def test_truth_folder_is_not_inventoried(tiny_night, tmp_path, config):
    copy = tmp_path / "night"
    shutil.copytree(tiny_night, copy)
    table = build_inventory(copy, config)
    assert not any("/truth/" in p.removeprefix(str(copy)) for p in table["path"])


def test_reasons_are_written_and_matched_through_their_codes():
    from aifa_steps.core.formats import NightProblem, Reason
    from aifa_steps.inventory.table import night_problems
    from aifa_steps.summary.checks import fix_hint

    def row(kind, reason="", used=True, exptime=10.0):
        return {"imagetyp": kind, "filter": "r", "exptime": exptime, "used": used, "reason": reason}

    odd = f"{Reason.MIXED_GEOMETRY} from the night's 100x100 binned 1x1"
    rows = [row("bias"), row("light"), row("flat"), row("dark"), row("light", odd, False)]
    assert [c for c, _ in night_problems(rows)] == [NightProblem.MIXED_GEOMETRY]
    assert fix_hint(odd).startswith("reduce frames of one binning")
    for code in Reason:
        assert code.found_in(f"x; {code} y") and isinstance(fix_hint(str(code)), str)
    assert fix_hint(f"{Reason.UNREADABLE_FITS}: bad").startswith("copy the files again")
