"""The night's results summary: headline numbers, frame counts, conditions, the pages."""

import json
from urllib.parse import quote

import numpy as np
import pytest
from astropy.table import Table

from aifa_steps.products.cmd import blended_stars
from aifa_steps.products.transit_model import TransitModel
from aifa_steps.summary.conditions_figure import conditions_figure
from aifa_steps.summary.results import (
    cluster_result,
    frame_counts,
    night_conditions,
    night_results,
    transit_result,
)
from aifa_steps.summary.results_files import figure_links, write_results_summary
from aifa_steps.summary.results_page import results_html

MODEL = TransitModel(2460963.39, 1.42, 0.15, 6.1, 84.0, (0.45, 0.2))


def _light_curve(noise=1e-3, cadence_min=2.0, seed=1):
    t = MODEL.t0 + np.arange(-1.5, 1.5, cadence_min / 60.0) / 24.0
    transit = MODEL.flux(t)
    flux = transit + np.random.default_rng(seed).normal(0, noise, t.size)
    return Table({"bjd_tdb": t, "flux_detrended": flux, "transit": transit})


def _fit(**extra):
    return {
        "t0_bjd_tdb": MODEL.t0 + 1.0 / 1440,
        "t0_bjd_tdb_err": 0.5 / 1440,
        "depth": 0.0229,
        "depth_err": 0.0008,
        "duration_hours": 1.72,
        "duration_hours_err": 0.04,
        "aperture_arcsec": 4.3,
        "error_scale": 1.0,
        **extra,
    }


def _status():
    rows = [
        ("a", "light", "Qatar-1", "r", "used", "", ""),
        ("b", "light", "Qatar-1", "r", "failed", "astrometry", "no stars"),
        ("c", "light", "Qatar-1", "r", "failed", "astrometry", "no stars"),
        ("d", "light", "NGC7789", "g", "excluded", "", "missing keyword FILTER"),
        ("e", "bias", "", "", "used", "", ""),
    ]
    table = Table(
        rows=rows, names=("stem", "imagetyp", "object", "filter", "status", "step", "reason")
    )
    table.meta.update(verdict="Night summary: 1 of 4 light frames reduced", fatal=False)
    table.meta["calibration"] = ["bias: master of 10 frames"]
    return table


def test_transit_numbers_with_the_offset_from_the_prediction_and_binned_scatter():
    curve = _light_curve(noise=1e-3)
    result = transit_result(_fit(predicted_t0_bjd_tdb=MODEL.t0), curve)
    assert result["o_minus_c_minutes"] == pytest.approx(1.0, abs=1e-6)
    assert result["t0_err_minutes"] == pytest.approx(0.5)
    residual = curve["flux_detrended"] - curve["transit"]
    assert result["rms_per_frame_ppt"] == pytest.approx(np.std(residual) * 1e3)
    assert result["rms_per_frame_ppt"] == pytest.approx(1.0, rel=0.25)
    # Ten-minute bins of five 2-minute frames: the scatter falls by about sqrt(5).
    assert result["bin_minutes"] == 10.0
    assert result["rms_per_bin_ppt"] == pytest.approx(1.0 / np.sqrt(5), rel=0.35)
    assert result["n_points"] == len(curve)
    # No ephemeris: no offset, and no NaN in the JSON.
    bare = transit_result(_fit(depth_err=float("nan")), curve)
    assert bare["o_minus_c_minutes"] is None and bare["depth_err"] is None
    json.dumps(bare, allow_nan=False)


def test_cluster_counts_stars_in_the_cmd_badly_measured_and_blended():
    catalogue = Table(
        {
            "ra": [10.0, 10.0 + 1.5 / 3600, 10.01, 10.02, 10.03],
            "dec": [20.0, 20.0, 20.0, 20.0, 20.0],
            "g": [14.0, 14.5, 15.0, 16.0, np.nan],
            "g_err": [0.01, 0.01, 0.01, 0.3, np.nan],
            "r": [13.5, 14.0, 14.5, 15.5, 15.0],
            "r_err": [0.01, 0.01, 0.01, 0.2, 0.01],
            "i": [13.2, 13.7, 14.2, 15.2, 14.8],
            "i_err": [0.01, 0.01, 0.01, 0.2, 0.01],
        }
    )
    catalogue["blended"] = blended_stars(catalogue, 4.0)
    # The first two are 1.5" apart and within a magnitude: both blended; the rest are alone.
    assert list(catalogue["blended"]) == [True, True, False, False, False]
    zeropoints = Table(
        {
            "target": ["NGC7789"] * 4,
            "filter": ["g", "g", "g", "g"],
            "aperture": ["1fwhm", "2fwhm", "1fwhm", "2fwhm"],
            "aperture_arcsec": [2.0, 4.0, 2.0, 4.0],
            "zeropoint": [28.60, 28.70, 28.62, 28.72],
        }
    )
    result = cluster_result(catalogue, zeropoints, "NGC7789")
    assert result["stars"] == {"g": 4, "r": 5, "i": 5}
    assert result["cmd_stars"] == 4 and result["poorly_measured"] == 1
    assert result["blended"] == 2
    assert result["method"] == "aperture" and result["poor_fits"] == 0
    # PSF magnitudes: poor fits counted, the page names them instead of blends.
    from aifa_steps.summary.results_page import _cmd_stars_text

    assert "blended (a neighbour adds light" in _cmd_stars_text(result)
    catalogue["poor_fit"] = [False, True, False, True, False]
    catalogue.meta["METHOD"] = "psf"
    psf = cluster_result(catalogue, zeropoints, "NGC7789")
    assert psf["method"] == "psf" and psf["poor_fits"] == 1  # the other has a large error
    assert "1 with a poor PSF fit" in _cmd_stars_text(psf)
    assert result["zeropoints"]["g"] == pytest.approx(
        {"median": 28.61, "scatter": np.std([28.60, 28.62], ddof=1), "frames": 2}
        | {"aperture": "1fwhm"}
    )


def test_a_faint_neighbour_does_not_blend_a_bright_star():
    catalogue = Table({"ra": [10.0, 10.0 + 1.0 / 3600], "dec": [20.0, 20.0], "r": [12.0, 16.0]})
    # 16 mag is 2.5 % of 12 mag: it blends the faint star, not the bright one.
    assert list(blended_stars(catalogue, 4.0)) == [False, True]


def test_frame_counts_group_the_reasons():
    counts = frame_counts(_status())
    assert (counts["lights"], counts["used"], counts["excluded"], counts["failed"]) == (4, 1, 1, 2)
    assert counts["by_step"] == {"astrometry": 2, "inventory": 1}
    assert counts["reasons"][0] == {"step": "astrometry", "reason": "no stars", "frames": 2}


def test_conditions_through_the_night(tmp_path):
    calibrated = Table(
        {
            "stem": ["a", "b", "c"],
            "object": ["Qatar-1"] * 3,
            "filter": ["r"] * 3,
            "exptime": [30.0, 30.0, 60.0],
            "sky_median": [300.0, 600.0, 600.0],
            "airmass": [1.1, 1.2, 1.4],
            "mjd": [60962.8, 60962.9, 60963.0],
        }
    )
    zeropoints = Table({"stem": ["a", "a", "b"], "seeing_arcsec": [2.0, 2.0, 3.0]})
    conditions = night_conditions(calibrated, zeropoints)
    assert conditions["seeing_arcsec"] == {"median": 2.5, "min": 2.0, "max": 3.0}
    assert conditions["sky_adu_per_s"]["r"] == {"median": 10.0, "min": 10.0, "max": 20.0}
    assert conditions["airmass"]["max"] == pytest.approx(1.4)
    conditions_figure(calibrated, zeropoints, tmp_path / "conditions.png")
    conditions_figure(None, None, tmp_path / "empty.png")
    assert (tmp_path / "conditions.png").stat().st_size > 10_000
    assert (tmp_path / "empty.png").exists()


def test_summary_files_and_pages(tmp_path):
    work = tmp_path / "work"
    products = work / "products" / "Qatar-1"
    products.mkdir(parents=True)
    (work / "qc").mkdir()
    status = _status()
    status.write(work / "night_status.ecsv")
    (products / "transit_fit.json").write_text(json.dumps(_fit(predicted_t0_bjd_tdb=MODEL.t0)))
    _light_curve().write(products / "lightcurve.ecsv")
    for name in ("lightcurve.png", "color.png"):
        (products / name).write_bytes(b"png")
    (work / "qc" / "astrometry.png").write_bytes(b"png")
    outputs = {
        "json": work / "summary.json",
        "html": work / "summary.html",
        "fragment": work / "qc" / "summary_report.html",
    }
    paths = [
        products / "transit_fit.json",
        products / "lightcurve.ecsv",
        products / "lightcurve.png",
        products / "color.png",
        work / "qc" / "astrometry.png",
    ]
    targets = {"Qatar-1": {"kind": "transit"}, "NGC7789": {"kind": "cluster"}}
    summary = write_results_summary(work / "night_status.ecsv", targets, paths, work, outputs)
    on_disk = json.loads(outputs["json"].read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["targets"]["Qatar-1"]["depth"] == pytest.approx(0.0229)
    assert on_disk["targets"]["NGC7789"]["note"] == "no solved frame: no products"
    assert on_disk["calibration"] == ["bias: master of 10 frames"]
    page = outputs["html"].read_text()
    assert "2.29 &plusmn; 0.08 %" in page and "1.0 min" in page
    assert "<img src='products/Qatar-1/lightcurve.png'" in page  # relative to the work folder
    assert "no stars" in page and "missing keyword FILTER" in page
    fragment = outputs["fragment"].read_text()
    assert "<html" not in fragment and "app.showResultInfo(p)" in fragment
    # The report's entries are keyed by Snakemake's path of the file, URL-quoted in the link.
    assert f"}})(&#x27;{quote(str(products / 'lightcurve.png'))}&#x27;)" in fragment


def test_links_by_target_and_night(tmp_path):
    links = figure_links(
        [tmp_path / "products" / "NGC_7789" / "cmd.png", tmp_path / "qc" / "zeropoints.png"],
        tmp_path,
        True,
        ["NGC 7789"],
    )
    assert links == {
        "NGC 7789": [("colour-magnitude diagram", "products/NGC_7789/cmd.png")],
        "night": [("zero points, seeing and aperture corrections", "qc/zeropoints.png")],
    }


def test_a_night_without_products_still_has_a_summary():
    summary = night_results(_status(), {"Qatar-1": {"kind": "transit"}})
    page = results_html(summary)
    assert "no solved frame" in page and "1 of 4 light frames reduced" in page
    json.dumps(summary, allow_nan=False)


def test_qc_figures_stay_readable_with_hundreds_of_frames_and_without_pairs(tmp_path):
    from aifa_steps.astrometry.plots import _reason_kind, astrometry_report
    from aifa_steps.calibration.plots import photon_transfer_figure

    n = 300
    solved = np.ones(n, bool)
    solved[::7] = False
    reasons = np.where(solved, "", "RMS residual 1.290 arcsec > 0.5").astype(object)
    reasons[::21] = "no stars"
    status = Table(
        {
            "stem": [f"f{k:03d}" for k in range(n)],
            "target": ["Qatar-1"] * n,
            "solved": solved,
            "reason": reasons.astype(str),
            "n_matches": np.where(solved, 200, 0),
            "rms_arcsec": np.where(solved, 0.1, np.nan),
        }
    )
    assert _reason_kind("RMS residual 1.290 arcsec > 0.5") == "RMS residual # arcsec > #"
    unsolved = status[~solved]  # (the solved ones would need their matched-star tables)
    astrometry_report(
        unsolved, [], tmp_path / "s.ecsv", tmp_path / "astrometry.png", tmp_path / "res"
    )
    from PIL import Image

    assert Image.open(tmp_path / "astrometry.png").size == (900, 550)  # no list below it
    summary = Table(
        rows=[
            ("gain", np.nan, np.nan, 0.376, "e-/ADU", 0, "no pairs of flats at one level"),
            ("read_noise", np.nan, np.nan, 3.5, "e-", 0, "no pairs of biases"),
        ],
        names=("quantity", "measured", "error", "configured", "unit", "n_pairs", "reason"),
    )
    photon_transfer_figure(
        summary, Table({"filter": [], "level": [], "half_variance": []}), tmp_path / "ptc.png"
    )
    assert (tmp_path / "ptc.png").stat().st_size > 5_000
