"""Differential light curves and the transit fit on a synthetic night with known answers."""

import numpy as np
import pytest
from astropy.table import Table

from aifa_steps.products.ensemble import ComparisonParameters, flux_matrix, select_comparisons
from aifa_steps.products.lightcurve import (
    TransitSettings,
    bin_light_curve,
    bin_width_minutes,
    transit_light_curve,
    transit_products,
)
from aifa_steps.products.plots import lightcurve_figure
from aifa_steps.products.transit_fit import error_scale
from aifa_steps.products.transit_model import TransitModel

TRUTH = TransitModel(2460963.391, 1.4200242, 0.1455, 6.25, 84.26, (0.45, 0.2))
EPHEMERIS = {"t0_bjd_tdb": 2460963.391 + 3 * 1.4200242, "period_days": 1.4200242}


def _night(seed=3, n_frames=100, variable_id=4):
    """Frames of a target (id 1) with a transit, 10 comparison stars, one of them (id
    ``variable_id``) a 3 % sinusoidal variable; all dimmed by extinction and clouds alike."""
    rng = np.random.default_rng(seed)
    t = TRUTH.t0 + np.linspace(-0.07, 0.075, n_frames)
    airmass = 1.05 + 0.25 * np.linspace(0, 1, n_frames) ** 2
    common = 10 ** (-0.4 * 0.13 * airmass) * (1 - 0.01 * rng.random(n_frames))
    n_stars = 11
    base = np.concatenate([[1e6], rng.uniform(0.8e6, 3e6, n_stars - 1)])
    signal = np.ones((n_frames, n_stars))
    signal[:, 0] = TRUTH.flux(t)
    signal[:, variable_id - 1] = 1 + 0.03 * np.sin(2 * np.pi * (t - t[0]) / 0.2)
    expected = base * signal * common[:, None]
    error = np.sqrt(expected / 0.376)  # photon noise (ADU)
    measured = expected + rng.normal(0, 1, expected.shape) * error
    tables = []
    for k in range(n_frames):
        table = Table(
            {
                "id": np.arange(1, n_stars + 1),
                "flux_4": measured[k],
                "flux_err_4": error[k],
                "flag_4": np.zeros(n_stars, np.int16),
            }
        )
        table.meta.update(
            BJD_TDB=float(t[k]),
            AIRMASS=float(airmass[k]),
            SEEING=2.0,
            SKY=1500.0,
            EXPTIME=30.0,
            APERTURES=[4.0],
        )
        tables.append(table)
    reference = Table(
        {
            "id": np.arange(1, n_stars + 1),
            "ra": 303.38 + np.arange(n_stars) * 0.01,
            "dec": np.full(n_stars, 65.16),
            "gmag": np.full(n_stars, 13.0),
            "imag": np.full(n_stars, 12.3),
        }
    )
    return tables, reference, error[:, 0] / expected[:, 0]


def test_variable_comparison_star_is_rejected():
    tables, reference, _ = _night()
    matrix = flux_matrix(tables, "4")
    columns, weights, notes = select_comparisons(matrix, 0, None)
    assert 3 not in columns  # id 4, the variable
    assert len(columns) == 9 and weights.sum() == pytest.approx(1.0)
    assert any("comparison 4 dropped" in note for note in notes)
    # Forbidding and pinning stars.
    params = ComparisonParameters(excluded=[2, 3], pinned=[4])
    columns, _, _ = select_comparisons(matrix, 0, None, params)
    assert 3 in columns and 1 not in columns and 2 not in columns


def test_transit_depth_time_and_noise_are_recovered(tmp_path):
    tables, reference, relative_noise = _night()
    result = transit_light_curve(tables, reference, (303.38, 65.16), EPHEMERIS, depth_guess=0.02)
    fit = result["fit"]
    assert fit.depth == pytest.approx(TRUTH.depth, rel=0.05)
    assert abs(fit.t0_bjd_tdb - TRUTH.t0) * 1440 < 2.0
    assert fit.duration_hours == pytest.approx(TRUTH.duration_hours, rel=0.05)
    assert 0 < fit.depth_err < 0.002 and 0 < fit.t0_bjd_tdb_err * 1440 < 2.0
    table = result["table"]
    assert table.colnames[:5] == ["bjd_tdb", "flux", "flux_err", "flux_detrended", "model"]
    outside = table["transit"] > 0.99999
    scatter = np.std((table["flux_detrended"] - table["transit"])[outside])
    # The ensemble adds a little noise to the target's own photon noise.
    assert scatter < 1.3 * np.median(relative_noise)
    assert np.median(table["flux_err"]) == pytest.approx(np.median(relative_noise), rel=0.2)
    assert 4 not in result["comparisons"]["id"]
    # The model drawn on a fine grid is the fitted one.
    model = result["transit_model"]
    assert np.allclose(model.flux(np.asarray(table["bjd_tdb"])), table["transit"], atol=1e-6)
    lightcurve_figure(result, tmp_path / "lc.png", "test", {"duration_hours": 1.68})
    assert (tmp_path / "lc.png").stat().st_size > 30_000


def test_transit_settings_from_the_targets_section():
    section = {"kind": "transit", "ra": 303.38, "dec": 65.16, "ephemeris": EPHEMERIS}
    settings = TransitSettings.from_config({**section, "filters": ["r"], "detrend": ["sky"]})
    assert settings.detrend == ("sky",) and settings.limb_darkening == (0.45, 0.2)
    assert settings.depth_guess == 0.01 and settings.checked_ephemeris("Qatar-1") == EPHEMERIS
    pinned = TransitSettings.from_config({**section, "comparison_stars": [4], "exclude_stars": [2]})
    assert pinned.comparisons == ComparisonParameters(pinned=[4], excluded=[2])
    for ephemeris in (None, {"t0_bjd_tdb": 2460963.391}):
        settings = TransitSettings.from_config({**section, "ephemeris": ephemeris})
        with pytest.raises(ValueError, match="targets.Qatar-1.ephemeris needs t0_bjd_tdb"):
            settings.checked_ephemeris("Qatar-1")


def test_transit_products_writes_what_the_rule_needs():
    tables, reference, _ = _night(n_frames=60)
    settings = TransitSettings.from_config(
        {"ra": 303.38, "dec": 65.16, "ephemeris": EPHEMERIS, "depth_guess": 0.02}
    )
    result = transit_products(tables, reference, settings, "Qatar-1", 0.35, 2168.0)
    plain = transit_light_curve(tables, reference, (303.38, 65.16), EPHEMERIS, depth_guess=0.02)
    summary = result["summary"]
    assert result["table"].meta["OBJECT"] == "Qatar-1"
    assert summary["aperture"] == "4" and summary["aperture_arcsec"] == 4.0
    assert summary["baseline_terms"] == ["constant", "airmass"]
    assert set(summary["aperture_rms"]) == {"4"}
    assert summary["depth"] == pytest.approx(result["fit"].depth)
    # Scintillation adds to every error.
    assert np.all(result["table"]["flux_err"] >= plain["table"]["flux_err"] * 0.999)


def test_target_must_be_detected():
    tables, reference, _ = _night(n_frames=20)
    with pytest.raises(ValueError, match="no detected source within 3 arcsec"):
        transit_light_curve(tables, reference, (10.0, 20.0), EPHEMERIS)


def test_binning():
    t = np.linspace(0, 1 / 24, 13)  # 5-minute cadence over an hour
    centres, means, errors = bin_light_curve(t, np.ones(13), 10.0)
    assert len(centres) >= 3 and np.allclose(means, 1) and np.allclose(errors, 0)
    # Fixed intervals of time, drawn at their centres (not at the mean time of their points).
    assert np.allclose(np.diff(centres) * 1440, 10.0) and centres[0] * 1440 == pytest.approx(5)


def test_bins_hold_at_least_three_frames():
    nine_minutes = np.arange(20) * 9.0 / 1440
    assert bin_width_minutes(nine_minutes, 10.0) == 27.0  # not two points per "10 min" bin
    assert bin_width_minutes(np.arange(60) / 1440, 10.0) == 10.0  # 1-minute cadence: 10 min
    centres, _, _ = bin_light_curve(nine_minutes, np.ones(20), 27.0)
    assert len(centres) == 7  # six bins of three frames, the last of the two frames left


def test_detrending_against_seeing_removes_a_seeing_trend():
    """A target whose flux follows the seeing (aperture losses): fitting only airmass biases
    the depth; adding seeing to the baseline recovers it."""
    tables, reference, _ = _night(seed=5)
    rng = np.random.default_rng(8)
    seeing = 2.0 + np.cumsum(rng.normal(0, 0.08, len(tables)))
    for table, fwhm in zip(tables, seeing, strict=True):
        table.meta["SEEING"] = float(fwhm)
        table["flux_4"][0] *= 1.0 - 0.01 * (fwhm - 2.0)  # the target only
        table["x"] = np.full(len(table), 100.0)
        table["y"] = np.full(len(table), 200.0)
    args = ((303.38, 65.16), EPHEMERIS)
    plain = transit_light_curve(tables, reference, *args, depth_guess=0.02)
    both = transit_light_curve(
        tables, reference, *args, depth_guess=0.02, detrend=["airmass", "seeing"]
    )
    assert both["fit"].depth == pytest.approx(TRUTH.depth, rel=0.05)
    assert abs(both["fit"].depth - TRUTH.depth) < abs(plain["fit"].depth - TRUTH.depth)
    assert both["fit"].rms < 0.8 * plain["fit"].rms
    assert both["table"].meta["DETREND"] == ["airmass", "seeing"]
    assert np.all(both["table"]["x"] == 100.0)
    # A position that never changes is a harmless constant column; unknown terms are errors.
    fixed = transit_light_curve(tables, reference, *args, depth_guess=0.02, detrend=["seeing", "x"])
    assert fixed["fit"].depth == pytest.approx(both["fit"].depth, rel=0.02)
    with pytest.raises(ValueError, match="unknown detrending term 'focus'"):
        transit_light_curve(tables, reference, *args, detrend=["focus"])


def test_error_scale_limits():
    rng = np.random.default_rng(2)
    flux = 1.0 + rng.normal(0, 0.001, 200)
    outside = np.ones(200, bool)
    for errors, rescaled in ((0.001, False), (0.0009, False), (0.0006, True), (0.003, True)):
        ratio, factor = error_scale(flux, np.full(200, errors), outside)
        assert ratio == pytest.approx(0.001 / errors, rel=0.1)
        assert (factor != 1.0) == rescaled and (factor == ratio or not rescaled)
    # Few points: a larger mismatch is chance (at 20 points the limit is exp(3 / sqrt 38)).
    ratio, factor = error_scale(flux[:20], np.full(20, 0.0007), outside[:20])
    assert 1.25 < ratio < 1.6 and factor == 1.0
    assert error_scale(flux[:5], np.full(5, 0.01), outside[:5]) == (
        pytest.approx(np.nan, nan_ok=True),
        1.0,
    )


def test_wrong_error_bars_are_rescaled_to_the_scatter():
    """Error bars 3 x too large (a guessed gain): the fit reports the ratio, rescales the
    errors to the out-of-transit scatter and gives the same parameter errors as with right
    error bars."""
    tables, reference, relative_noise = _night()
    args = ((303.38, 65.16), EPHEMERIS)
    right = transit_light_curve(tables, reference, *args, depth_guess=0.02)
    assert right["fit"].error_scale == 1.0 and 0.8 < right["fit"].error_ratio < 1.25
    for table in tables:
        table["flux_err_4"] *= 3.0
    wrong = transit_light_curve(tables, reference, *args, depth_guess=0.02)
    fit = wrong["fit"]
    assert fit.error_ratio == pytest.approx(right["fit"].error_ratio / 3.0, rel=0.01)
    assert fit.error_scale == fit.error_ratio
    assert np.median(wrong["table"]["flux_err"]) == pytest.approx(
        fit.error_ratio * 3.0 * np.median(right["table"]["flux_err"]), rel=0.01
    )
    assert wrong["table"].meta["ERRSCALE"] == fit.error_scale
    assert fit.depth == pytest.approx(TRUTH.depth, rel=0.05)
    assert fit.depth_err == pytest.approx(right["fit"].depth_err, rel=0.25)
    assert fit.t0_bjd_tdb_err == pytest.approx(right["fit"].t0_bjd_tdb_err, rel=0.25)
    assert fit.reduced_chi2 == pytest.approx(1.0, abs=0.3)
    assert any("errors rescaled by" in note for note in wrong["notes"])
