"""Header variety: real headers of other camera software, and the conventions they use.

The headers under ``tests/data/headers`` are real (see the README there): Lowell
Observatory's LOIS (IRAF-style types, date-only DATE-OBS plus UTC-OBS, sexagesimal RA/DEC,
CCDSUM, BIASSEC/TRIMSEC) and MaxIm DL 6 (``Light frame``, OBJCTRA/OBJCTDEC, EGAIN, JD,
SITELAT/SITELONG as strings).
"""

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from aifa_steps.inventory.classify import frame_type
from aifa_steps.inventory.headers import (
    HeaderTimeError,
    binning,
    header_float,
    keywords_for,
    observation_time,
    parse_dec,
    parse_degrees,
    parse_ra,
    parse_time_of_day,
)
from aifa_steps.inventory.table import build_inventory, read_frame

HEADERS = Path(__file__).parent / "data" / "headers"
ALIASES = {
    "bias": ["BIAS", "Bias Frame", "zero", "Offset", "ZERO"],
    "dark": ["DARK", "Dark Frame"],
    "flat": ["FLAT", "Flat Field", "Flat Frame", "Sky Flat", "Dome Flat", "SKYFLAT"],
    "light": ["LIGHT", "Light Frame", "object", "science"],
}


def real(name: str) -> fits.Header:
    return fits.Header.fromtextfile(HEADERS / name)


def mjd(iso: str) -> float:
    return float(Time(iso, scale="utc").mjd)


def write_frame(path: Path, header: fits.Header, shape=(12, 16)) -> Path:
    """A small frame with a real header (the header's NAXISn are replaced by the cut-out's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = header.copy()
    for key in ("NAXIS1", "NAXIS2", "BZERO", "BSCALE", "BITPIX"):
        header.remove(key, ignore_missing=True)
    data = np.full(shape, 1000, np.uint16)
    hdu = fits.PrimaryHDU(data=data.astype(np.float32), header=header)
    hdu.writeto(path)
    return path


def test_lois_headers_date_plus_time_sexagesimal_pointing_ccdsum():
    light = real("lowell_lois_object.hdr")
    value, source = observation_time(light)
    assert source == "DATE-OBS + UTC-OBS"
    assert value == pytest.approx(mjd("2019-03-26T02:27:31.13"), abs=1e-8)
    # The LOIS pipeline's own mid-time (MIDTIMJD, a JD) lies half the 300 s exposure later.
    assert (light["MIDTIMJD"] - 2400000.5 - value) * 86400 == pytest.approx(150.7, abs=1.0)
    assert parse_ra(light["RA"]) == pytest.approx(15 * (8 + 18 / 60 + 29.9 / 3600))
    assert parse_dec(light["DEC"]) == pytest.approx(25 + 19 / 60 + 59 / 3600)
    assert binning(light) == (3, 3)
    assert frame_type(light["IMAGETYP"], ALIASES) == "light"
    assert frame_type(real("lowell_lois_bias.hdr")["IMAGETYP"], ALIASES) == "bias"
    flat = real("lowell_lois_skyflat.hdr")
    assert frame_type(flat["IMAGETYP"], {}) == "flat"  # SKYFLAT by its words, no alias needed
    # Flats have no FILTER keyword, only FILTNAME: the candidates find it.
    assert "FILTER" not in flat and header_float(flat, "exptime") == pytest.approx(2.7)
    assert keywords_for("filter")[:3] == ["FILTER", "FILTERS", "FILTNAME"]


def test_maxim_headers_objctra_egain_site_strings():
    sbig = real("maxim_sbig_stf8300_light.hdr")
    assert frame_type(sbig["IMAGETYP"], ALIASES) == "light"  # 'Light frame'
    assert parse_ra(sbig["OBJCTRA"]) == pytest.approx(15 * (5 + 19 / 60 + 39 / 3600))
    assert parse_dec(sbig["OBJCTDEC"]) == pytest.approx(45 + 3 / 60 + 34 / 3600)
    assert header_float(sbig, "gain") == pytest.approx(0.38, abs=1e-6)  # EGAIN
    assert parse_degrees(sbig["SITELAT"]) == pytest.approx(37.5)
    value, source = observation_time(sbig)
    assert source == "DATE-OBS"
    assert value == pytest.approx(sbig["JD"] - 2400000.5, abs=1e-6)  # JD agrees with DATE-OBS
    apogee = real("maxim_apogee_cdk432_light.hdr")
    assert parse_degrees(apogee["SITELONG"]) == pytest.approx(-(119 + 40 / 60 + 52 / 3600))
    assert header_float(apogee, "read_noise") == pytest.approx(5.82)
    assert binning(apogee) == (1, 1)


def test_date_obs_with_zone_suffix_is_converted_to_utc():
    header = fits.Header({"DATE-OBS": "2017-12-19T18:33:43.317-0700"})
    value, _ = observation_time(header)
    assert value == pytest.approx(mjd("2017-12-20T01:33:43.317"), abs=1e-9)
    for text in ("2017-12-20T01:33:43.317Z", "2017-12-20T03:33:43.317+02:00"):
        assert observation_time(fits.Header({"DATE-OBS": text}))[0] == pytest.approx(
            value, abs=1e-9
        )
    # A configured offset applies to local times without a suffix, never on top of one.
    local = fits.Header({"DATE-OBS": "2017-12-19T18:33:43.317"})
    assert observation_time(local, utc_offset_hours=-7)[0] == pytest.approx(value, abs=1e-9)
    assert observation_time(header, utc_offset_hours=-7)[0] == pytest.approx(value, abs=1e-9)


def test_time_fallbacks_and_errors():
    assert observation_time(fits.Header({"MJD-OBS": 60000.25}))[0] == 60000.25
    assert observation_time(fits.Header({"JD": 2460000.75}))[0] == pytest.approx(60000.25)
    both = fits.Header({"DATE-OBS": "2024-01-02", "UT": "23:59:30.5"})
    assert observation_time(both)[0] == pytest.approx(mjd("2024-01-02T23:59:30.5"), abs=1e-9)
    decimal_hours = fits.Header({"DATE-OBS": "2024-01-02", "UT": 1.5})
    assert observation_time(decimal_hours)[0] == pytest.approx(mjd("2024-01-02T01:30:00"))
    old = fits.Header({"DATE-OBS": "02/01/98", "TIME-OBS": "01:30:00"})
    assert observation_time(old)[0] == pytest.approx(mjd("1998-01-02T01:30:00"))
    with pytest.raises(HeaderTimeError, match="no time of day"):
        observation_time(fits.Header({"DATE-OBS": "2024-01-02"}))
    with pytest.raises(HeaderTimeError, match="unreadable DATE-OBS"):
        observation_time(fits.Header({"DATE-OBS": "yesterday"}))
    with pytest.raises(HeaderTimeError, match="missing keyword"):
        observation_time(fits.Header({"EXPTIME": 3.0}))
    assert parse_time_of_day("25:00:00") is None


def test_angles_in_degrees_or_sexagesimal():
    assert parse_ra(303.38175) == pytest.approx(303.38175)  # NINA: degrees
    assert parse_ra("303.38175") == pytest.approx(303.38175)
    assert parse_ra("20h13m31.62s") == pytest.approx(303.38175, abs=1e-4)
    assert parse_dec("-05 03 34") == pytest.approx(-(5 + 3 / 60 + 34 / 3600))
    assert parse_dec("-00:30:00") == pytest.approx(-0.5)  # the sign of a zero degree
    assert parse_dec("95:00:00") is None and parse_ra("north") is None


@pytest.mark.parametrize(
    ("value", "folder", "name", "expected"),
    [
        ("Flat Field", "x", "a", "flat"),  # MaxIm DL
        ("DOMEFLAT", "x", "a", "flat"),  # IRAF-style
        ("ZERO", "x", "a", "bias"),
        ("Dark Frame", "x", "a", "dark"),
        ("FOCUS", "x", "a", None),  # a named type that is none of them
        ("weird", "LIGHT", "a", "light"),  # ... unless its folder says what it is
        (None, "flats_r", "a", "flat"),  # folder words
        (None, "night", "bias_0001", "bias"),  # file name words
        (None, "night", "wasp12_0001", "light"),  # nothing anywhere: a lights-only night
    ],
)
def test_frame_types_from_values_folders_and_names(tmp_path, value, folder, name, expected):
    assert frame_type(value, ALIASES, tmp_path / folder / f"{name}.fits") == expected


def test_parent_folders_do_not_decide_the_frame_type(tmp_path):
    # Words in a parent above the file's own folder say nothing (dark_sky_survey/).
    path = tmp_path / "dark_sky_survey" / "night1" / "frame_0001.fits"
    assert frame_type(None, ALIASES, path) == "light"


def test_inventory_of_a_lois_night_made_of_real_headers(tmp_path):
    """Real LOIS headers on small cut-outs: every frame typed, timed, pointed and filtered."""
    write_frame(tmp_path / "zero" / "b1.fits", real("lowell_lois_bias.hdr"))
    write_frame(tmp_path / "flat" / "f1.fits", real("lowell_lois_skyflat.hdr"))
    light = real("lowell_lois_object.hdr")
    # Cut-outs are small: their sections must lie inside them.
    write_frame(tmp_path / "5945" / "l1.fits", light)
    table = build_inventory(tmp_path, {"readout": {"overscan": "none", "trim": "none"}})
    rows = {r["stem"]: r for r in table}
    assert [rows[s]["imagetyp"] for s in ("b1", "f1", "l1")] == ["bias", "flat", "light"]
    assert all(table["used"]), list(table["reason"])
    assert rows["f1"]["filter"] == "VR" and rows["l1"]["filter"] == "VR"
    assert rows["l1"]["mjd"] == pytest.approx(mjd("2019-03-26T02:27:31.13"), abs=1e-8)
    assert rows["l1"]["ra"] == pytest.approx(124.62458, abs=1e-4)
    assert rows["l1"]["xbinning"] == 3
    # LOIS lists a gain per amplifier (AGAIN_01 = 4.95), which the night's flat pairs do not
    # confirm (3.6 +- 0.6 e-/ADU): it is not read unless headers.gain names it.
    assert np.isnan(rows["l1"]["gain"])
    configured = build_inventory(
        tmp_path, {"readout": {"overscan": "none", "trim": "none"}, "headers": {"gain": "AGAIN_01"}}
    )
    assert configured["gain"][configured["stem"] == "l1"][0] == pytest.approx(4.95)


def test_inventory_reads_gain_and_names_the_keywords_it_tried(tmp_path):
    header = real("maxim_apogee_cdk432_light.hdr")
    header["OBJECT"] = "M13"
    row = read_frame(write_frame(tmp_path / "a.fits", header), {})
    assert row["used"], row["reason"]
    assert (row["gain"], row["read_noise"]) == (pytest.approx(1.18), pytest.approx(5.82))
    del header["FILTER"]
    row = read_frame(write_frame(tmp_path / "b.fits", header), {})
    assert not row["used"] and "missing keyword FILTER/FILTERS/FILTNAME" in row["reason"]
    configured = read_frame(tmp_path / "b.fits", {"headers": {"filter": "READOUTM"}})
    assert configured["used"] and configured["filter"] == "Monochrome"


def test_the_wcs_a_raw_header_carries_moves_with_the_trim():
    """The LOIS lights carry their pipeline's WCS with string values and SCAMP PV terms."""
    from aifa_steps.inventory.headers import celestial_wcs

    light = real("lowell_lois_object.hdr")
    wcs = celestial_wcs(light)
    trimmed = celestial_wcs(light, "[18:1382,1:1370]")
    assert wcs is not None and trimmed is not None
    centre = wcs.pixel_to_world(715.0, 684.0)
    assert centre.ra.deg == pytest.approx(float(light["CRVAL1"]), abs=2e-3)
    # Raw pixel x is trimmed pixel x + 17.
    assert trimmed.pixel_to_world(698.0, 684.0).separation(centre).arcsec < 1e-6
    scale = np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600
    assert scale == pytest.approx(1.107, abs=0.002)
    assert celestial_wcs(real("lowell_lois_bias.hdr")) is None  # 'Linear Unbinned ADC Pixels'
