"""Astrometry handed on from solved frames: asterism matching of source lists, the WCS fitted
to matched sources, propagation along a drifting time series, the choice of frames that
solve-field runs on, and thresholds that follow the pixel scale."""

import numpy as np
import pytest
from astropy.table import Table

from aifa_steps.astrometry.chain import (
    propagate_wcs,
    solve_field_selection,
    wcs_from_string,
    wcs_to_string,
)
from aifa_steps.astrometry.judge import rms_limit_arcsec
from aifa_steps.astrometry.match import MatchError, match_sources, wcs_from_sources
from aifa_steps.simulate.optics import make_wcs

from .helpers import wcs_separation

SHAPE = (448, 640)
SCALE = 0.607
RA0, DEC0 = 303.38, 65.16


def sky_stars(n=400, seed=1, half=0.12):
    """Random stars within ``half`` deg of (RA0, DEC0), with power-law fluxes."""
    rng = np.random.default_rng(seed)
    dec = DEC0 + rng.uniform(-half, half, n)
    ra = RA0 + rng.uniform(-half, half, n) / np.cos(np.radians(DEC0))
    flux = 1e3 * rng.pareto(1.5, n) + 200.0
    return ra, dec, flux


def source_list(wcs, ra, dec, flux, seed, missing=0.0, extra=0, noise=0.05):
    """The stars inside a frame as a source list (brightest first), some lost, some spurious."""
    rng = np.random.default_rng(seed)
    x, y = wcs.all_world2pix(ra, dec, 0)
    inside = (x > 2) & (x < SHAPE[1] - 3) & (y > 2) & (y < SHAPE[0] - 3)
    keep = inside & (rng.uniform(size=len(x)) >= missing)
    x, y, f = x[keep], y[keep], flux[keep]
    x, y = x + rng.normal(0, noise, len(x)), y + rng.normal(0, noise, len(y))
    if extra:  # cosmic rays and hot pixels: bright-ish points anywhere
        x = np.concatenate([x, rng.uniform(0, SHAPE[1], extra)])
        y = np.concatenate([y, rng.uniform(0, SHAPE[0], extra)])
        f = np.concatenate([f, rng.uniform(500, 5000, extra)])
    table = Table({"x": x, "y": y, "flux": f})
    table.sort("flux", reverse=True)
    return table


def xy(table):
    return np.column_stack([table["x"], table["y"]])


def frame_wcs(dx_px, dy_px, rotation=180.6):
    """A frame's true WCS with the pointing moved by (dx, dy) pixels (distortion included)."""
    ddec = dy_px * SCALE / 3600.0
    dra = dx_px * SCALE / 3600.0 / np.cos(np.radians(DEC0))
    return make_wcs(SHAPE, RA0 + dra, DEC0 + ddec, SCALE, rotation, k3=2e-9)


def test_matching_finds_a_large_shift_and_a_small_rotation_with_missing_and_extra_sources():
    ra, dec, flux = sky_stars()
    reference = frame_wcs(0, 0)
    moved = frame_wcs(110, -35, rotation=180.6 + 0.4)
    ref = source_list(reference, ra, dec, flux, seed=2, missing=0.15, extra=10)
    frame = source_list(moved, ra, dec, flux, seed=3, missing=0.15, extra=10)
    match = match_sources(xy(frame), xy(ref))
    # The pairs are the same stars: their true positions agree through the two true WCS.
    fx, fy = frame["x"][match.source], frame["y"][match.source]
    sky = moved.pixel_to_world(fx, fy)
    rx, ry = reference.world_to_pixel(sky)
    offset = np.hypot(rx - ref["x"][match.reference], ry - ref["y"][match.reference])
    assert np.median(offset) < 0.2 and len(match.source) > 20
    # The similarity maps the frame's centre where the true WCS put it, about 115 px away.
    centre = np.array([SHAPE[1] / 2, SHAPE[0] / 2])
    expected = np.array(reference.world_to_pixel(moved.pixel_to_world(*centre)))
    assert np.hypot(*(expected - centre)) > 110
    assert np.hypot(*((match.transform @ [*centre, 1.0])[:2] - expected)) < 0.5
    # The WCS fitted to 30 pairs (0.07 px noise per pair): about a tenth of a pixel.
    wcs, match = wcs_from_sources(xy(frame), xy(ref), reference, SHAPE)
    rms, worst = wcs_separation(wcs, moved, SHAPE)
    assert rms < 0.08 and worst < 0.25, (rms, worst)
    assert match.rms_px < 0.15


def test_too_few_stars_is_a_clear_error():
    ra, dec, flux = sky_stars()
    ref = source_list(frame_wcs(0, 0), ra, dec, flux, seed=2)
    with pytest.raises(MatchError, match=r"only 3 sources in the frame \(< 5\)"):
        match_sources(xy(ref)[:3] + 5.0, xy(ref))
    with pytest.raises(MatchError, match="sources in the reference frame"):
        match_sources(xy(ref), np.empty((0, 2)))


def test_unrelated_fields_do_not_match():
    ra, dec, flux = sky_stars(seed=1)
    ra2, dec2, flux2 = sky_stars(seed=9)
    ref = source_list(frame_wcs(0, 0), ra, dec, flux, seed=2)
    other = source_list(frame_wcs(0, 0), ra2, dec2, flux2, seed=3)
    with pytest.raises(MatchError):
        wcs_from_sources(xy(other), xy(ref), frame_wcs(0, 0), SHAPE)


def test_propagation_follows_a_drifting_pointing_across_a_cloudy_frame():
    """Twelve frames drifting 60 px each (660 px in all: the last ones share no star with the
    first), solved only at the start; frame 5 is clouded (three stars). Every other frame gets
    its WCS, matched to the solved frame while they overlap and then from frame to frame."""
    ra, dec, flux = sky_stars(n=2000, half=0.3)
    stems = [f"f{k:02d}" for k in range(12)]
    truths = {s: frame_wcs(60.0 * k, 8.0 * k) for k, s in enumerate(stems)}
    sources = {
        s: source_list(w, ra, dec, flux, seed=k, missing=0.1)
        for k, (s, w) in enumerate(truths.items())
    }
    sources["f05"] = sources["f05"][:3]
    mjds = 60962.8 + np.arange(12) * 0.01
    results = propagate_wcs(stems, mjds, sources, {"f00": truths["f00"]}, SHAPE, SCALE)
    by_stem = {r.stem: r for r in results}
    assert by_stem["f00"].method == "solve-field"
    assert by_stem["f05"].method == "none" and "only 3 sources" in by_stem["f05"].reason
    assert by_stem["f01"].reference == "f00" and by_stem["f02"].reference == "f00"
    assert by_stem["f06"].reference not in ("f00", "f05")  # bridged over the cloudy frame
    assert all(by_stem[s].reference not in ("f00", "") for s in stems[6:])
    for stem in stems:
        if stem in ("f00", "f05"):
            continue
        result = by_stem[stem]
        assert result.method == "matched", result.reason
        rms, _ = wcs_separation(result.wcs, truths[stem], SHAPE)
        assert rms < 0.1, (stem, rms)  # arcsec, after up to 8 hand-overs
        assert (
            wcs_separation(wcs_from_string(wcs_to_string(result.wcs)), result.wcs, SHAPE)[1] < 1e-6
        )


def test_a_target_without_any_solution_asks_solve_field_for_its_richest_frame():
    ra, dec, flux = sky_stars(n=250)
    truths = {"a": frame_wcs(0, 0), "b": frame_wcs(20, 0)}
    sources = {s: source_list(w, ra, dec, flux, seed=1) for s, w in truths.items()}
    sources["a"] = sources["a"][:40]
    asked = []

    def solve(stem):
        asked.append(stem)
        return truths[stem]

    results = propagate_wcs(["a", "b"], [1.0, 2.0], sources, {}, SHAPE, SCALE, solve=solve)
    assert asked == ["b"]
    assert [r.method for r in results] == ["matched", "solve-field"]
    none = propagate_wcs(["a", "b"], [1.0, 2.0], sources, {}, SHAPE, SCALE)
    assert {r.reason for r in none} == {"no frame of this target was solved by solve-field"}


def test_a_solution_with_the_wrong_pixel_scale_serves_no_one():
    ra, dec, flux = sky_stars(n=250)
    wrong = make_wcs(SHAPE, RA0, DEC0, 2 * SCALE, 180.6)
    sources = {"a": source_list(frame_wcs(0, 0), ra, dec, flux, seed=1)}
    (result,) = propagate_wcs(["a"], [1.0], sources, {"a": wrong}, SHAPE, SCALE)
    assert result.method == "none" and "pixel scale" in result.reason


def test_solve_field_selection():
    stems = ["q3", "q1", "q2", "c1", "q4"]
    targets = ["Q", "Q", "Q", "C", "Q"]
    mjds = [3.0, 1.0, 2.0, 5.0, 4.0]
    assert solve_field_selection(stems, targets, mjds, "all") == set(stems)
    assert solve_field_selection(stems, targets, mjds, "first") == {"q1", "c1"}
    assert solve_field_selection(stems, targets, mjds, 2) == {"q1", "q3", "c1"}
    assert solve_field_selection(stems, targets, mjds, 1) == set(stems)
    with pytest.raises(ValueError, match="solve_field"):
        solve_field_selection(stems, targets, mjds, "some")


def test_rms_limit_follows_the_pixel_scale():
    assert rms_limit_arcsec(0.607, 0.5, 0.5) == 0.5  # fine pixels: the arcsec limit
    assert rms_limit_arcsec(5.2, 0.5, 0.5) == pytest.approx(2.6)  # coarse: half a pixel
    assert rms_limit_arcsec(5.2, 2.0, 0.0) == 2.0  # pixel rule switched off


# ---- The workflow on a night whose pointing drifts 115 px, solve-field on one frame each. ----
DRIFT_SEED = 5


def _run(night, config, target):
    from .helpers import run_snakemake

    run_snakemake(night, str(target), "--cores", "2", "--configfile", str(config))


@pytest.fixture(scope="module")
def drift_night(tmp_path_factory):
    """The ``drift`` night reduced to its astrometry with ``solve_field: first``: the cluster's
    single frame and the first Qatar-1 frame are solved by solve-field, the other nine Qatar-1
    frames (one clouded, one made starless here) only by matching. Returns (raw, work, config).
    """
    import yaml
    from astropy.io import fits

    from aifa_steps.simulate import get_preset, simulate_night

    from .helpers import require_program

    require_program("solve-field")
    root = tmp_path_factory.mktemp("drift")
    raw, work = root / "raw", root / "work"
    simulate_night(raw, get_preset("drift"), seed=DRIFT_SEED, jobs=2, work_dir=str(work))
    starless = sorted((raw / "LIGHT").glob("Qatar-1*.fits"))[4]
    with fits.open(starless, mode="update") as hdul:
        data = hdul[0].data
        noise = np.random.default_rng(1).normal(0, 20, data.shape)
        hdul[0].data = (np.median(data) + noise).astype(np.uint16)
    cfg = yaml.safe_load((raw / "config.yaml").read_text())
    cfg["astrometry"] = {**cfg.get("astrometry", {}), "solve_field": "first"}
    config = root / "first.yaml"
    config.write_text(yaml.safe_dump(cfg))
    _run(root, config, work / "astrometry" / "status.ecsv")
    return raw, work, config, starless.name.removesuffix(".fits")


def _truth_rms(raw, work, stem):
    from astropy.io import fits
    from astropy.wcs import WCS

    header = fits.getheader(work / "astrometry" / f"{stem}.fits")
    truth = WCS(fits.getheader(raw / "truth" / "wcs" / f"{stem}.fits"))
    return wcs_separation(WCS(header), truth, (header["IMAGEH"], header["IMAGEW"]))[0]


def _check_night(raw, work, starless, reference):
    from aifa_steps.summary.checks import text_filled

    frames = Table.read(raw / "truth" / "frames.ecsv")
    cloudy = {f.split("/")[-1].removesuffix(".fits") for f in frames["file"][frames["cloudy"]]}
    status = text_filled(Table.read(work / "astrometry" / "status.ecsv"))
    assert len(status) == 11 and len(cloudy) == 1
    for row in status:
        stem = row["stem"]
        if stem in cloudy | {starless}:
            assert not row["solved"] and row["step"] == "astrometry" and row["reason"], stem
            continue
        assert row["solved"], (stem, row["reason"])
        assert row["reference"].startswith(reference), row["reference"]
        assert _truth_rms(raw, work, stem) <= 0.05, stem
    reasons = dict(zip(status["stem"], status["reason"], strict=True))
    assert reasons[starless].startswith("no solved frame matched: ")
    assert "only" in reasons[starless] or "asterism" in reasons[starless]
    return status


@pytest.mark.slow
def test_solve_field_on_one_frame_and_matching_give_every_clear_frame_its_wcs(drift_night):
    raw, work, _, starless = drift_night
    status = _check_night(raw, work, starless, "refcat")
    methods = dict(zip(status["stem"], status["method"], strict=True))
    solved_by_solve_field = sorted(s for s, m in methods.items() if m == "solve-field")
    assert [s.split("_")[0] for s in solved_by_solve_field] == ["NGC7789", "Qatar-1"]
    matched = [s for s, m in methods.items() if m.startswith("matched to ")]
    assert len(matched) == 8  # 9 other Qatar-1 frames, the starless one not
    # Frames that solve-field skipped did not pay for it: Source Extractor only.
    for stem in status["stem"]:
        log = (work / "logs" / "solve_field" / f"{stem}.log").read_text()
        assert ("pass 1" in log) == (stem in solved_by_solve_field), stem
        assert (work / "astrometry" / "solve" / f"{stem}.xyls").exists()
    chain = Table.read(work / "astrometry" / "chain" / "Qatar-1" / "frames.ecsv")
    assert set(chain["method"]) == {"solve-field", "matched", "none"}


@pytest.mark.slow
def test_a_night_without_reference_catalogue_refines_against_a_solved_frames_stars(
    drift_night, tmp_path
):
    """Offline: an empty reference catalogue and index files from elsewhere (as Debian's
    Tycho-2 ones would be): every frame is refined against the stars of a solved frame."""
    import shutil

    import yaml

    from aifa_steps.astrometry.index import build_indexes, index_scales

    raw, work, config, starless = drift_night
    refcat = Table.read(raw / "refcat.ecsv")
    build_indexes(refcat, tmp_path / "index", index_scales(6.47, 4.53))
    refcat[:0].write(tmp_path / "empty.ecsv")
    offline = tmp_path / "work"
    shutil.copytree(work, offline, symlinks=True)  # the calibrated frames stay valid ...
    for made in ("astrometry", "refcat"):  # ... what follows the catalogue is made again
        shutil.rmtree(offline / made)
    cfg = yaml.safe_load(config.read_text())
    cfg["work_dir"] = str(offline)
    cfg["reference_catalogue"] = {"source": "file", "path": str(tmp_path / "empty.ecsv")}
    cfg["astrometry"].update(build_index=False, index_dirs=[str(tmp_path / "index")])
    (tmp_path / "offline.yaml").write_text(yaml.safe_dump(cfg))
    _run(tmp_path, tmp_path / "offline.yaml", offline / "astrometry" / "status.ecsv")
    status = _check_night(raw, offline, starless, "stars of ")
    # The frame whose stars are the reference is measured against solve-field's index stars.
    own = status[[r.endswith("(solve-field's index stars)") for r in status["reference"]]]
    assert len(own) == 2 and all(own["rms_arcsec"] > 0)


def test_a_configuration_whose_rms_limits_are_both_zero_is_a_problem():
    from aifa_steps.summary.checks import config_problems

    base = {"reference_catalogue": {"source": "vizier"}}
    assert config_problems({**base, "astrometry": {"max_rms_arcsec": 0.0}}) == []
    (problem,) = config_problems(
        {**base, "astrometry": {"max_rms_arcsec": 0.0, "max_rms_pixels": 0}}
    )
    assert "max_rms_pixels are both 0" in problem


def test_reasons_of_a_frame_without_wcs(tmp_path):
    from aifa_steps.astrometry.chain import (
        ChainResult,
        chain_failure,
        chain_start,
        chain_table,
    )
    from aifa_steps.astrometry.solve import read_sources

    results = [
        ChainResult("a", "solve-field", wcs=frame_wcs(0, 0)),
        ChainResult("b", "matched", "a", 30, 0.2, wcs=frame_wcs(5, 0)),
        ChainResult("c", "none", reason="no solved frame matched: a: only 2 sources"),
    ]
    chain = chain_table(results, SHAPE)
    assert chain_start(chain, "b")[1] == "matched to a" and chain_start(chain, "a")[1] == (
        "solve-field"
    )
    assert chain_start(chain, "c") == (None, "")
    assert chain_failure(chain, "c", False) == "no solved frame matched: a: only 2 sources"
    assert chain_failure(chain, "c", True, "no index built") == (
        "solve-field found no solution: no index built; no solved frame matched: a: only 2 sources"
    )
    (tmp_path / "empty.xyls").write_bytes(b"")
    assert len(read_sources(tmp_path / "empty.xyls")) == 0
    assert len(read_sources(tmp_path / "missing.xyls")) == 0


@pytest.mark.slow
def test_solve_field_on_a_skipped_frames_source_list(drift_night):
    """What the chain runs when no selected frame of a target solved: both passes on the
    source list that the solve_field rule kept."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from aifa_steps.astrometry.settings import SolveSettings
    from aifa_steps.astrometry.solve import solve_source_list

    from .helpers import SOLVE_FIELD_SH

    raw, work, _, _ = drift_night
    chain = Table.read(work / "astrometry" / "chain" / "Qatar-1" / "frames.ecsv")
    stem = str(chain["stem"][chain["method"] == "matched"][0])
    assert (work / "astrometry" / "solve" / f"{stem}.wcs").stat().st_size == 0  # skipped
    header = fits.getheader(raw / "LIGHT" / f"{stem}.fits")
    wcs, corr = solve_source_list(
        SOLVE_FIELD_SH,
        work / "calibrated" / f"{stem}.fits",
        work / "astrometry" / "solve" / f"{stem}.xyls",
        work / "astrometry" / "index" / "solver.cfg",
        work / "astrometry" / "index" / "verify.cfg",
        SCALE,
        SHAPE,
        f"--ra {header['RA']} --dec {header['DEC']} --radius 1.0",
        SolveSettings(cpulimit=30),
    )
    assert wcs is not None and len(corr) > 20
    truth = WCS(fits.getheader(raw / "truth" / "wcs" / f"{stem}.fits"))
    assert wcs_separation(wcs, truth, SHAPE)[0] < 0.6  # solve-field alone, before refinement


def test_a_header_wcs_is_the_reference_only_when_solve_field_solved_nothing():
    """An offline night: solve-field solves nothing, the raw headers carry a pipeline's WCS."""
    ra, dec, flux = sky_stars(n=250)
    truths = {"a": frame_wcs(0, 0), "b": frame_wcs(30, 10), "c": frame_wcs(60, 20)}
    sources = {s: source_list(w, ra, dec, flux, seed=k) for k, (s, w) in enumerate(truths.items())}
    sources["a"] = sources["a"][:40]  # the richest frame ("b") is chosen as the reference
    headers = {s: frame_wcs(*offset) for s, offset in (("a", (0, 0)), ("b", (30, 10)))}
    results = propagate_wcs(
        ["a", "b", "c"], [1.0, 2.0, 3.0], sources, {}, SHAPE, SCALE, header_solutions=headers
    )
    assert [r.method for r in results] == ["matched", "header", "matched"]
    assert results[2].reference == "b"
    assert wcs_separation(results[2].wcs, truths["c"], SHAPE)[0] < 0.1
    # With a solve-field solution the header WCS is not used.
    solved = propagate_wcs(
        ["a", "b"], [1.0, 2.0], sources, {"a": truths["a"]}, SHAPE, SCALE, header_solutions=headers
    )
    assert [r.method for r in solved] == ["solve-field", "matched"]
    # A header WCS of another pixel scale is refused with a reason.
    wrong = {"b": make_wcs(SHAPE, RA0, DEC0, 1.5 * SCALE, 180.6)}
    (result,) = propagate_wcs(["b"], [1.0], sources, {}, SHAPE, SCALE, header_solutions=wrong)
    assert result.method == "none" and "header WCS" in result.reason


def test_a_targets_chain_from_the_solve_field_outputs(tmp_path):
    """The astrometry_chain step on files: one frame solved by solve-field, one matched to it,
    one whose calibration failed (left out); no .corr, so no stars for a catalogue-less night."""
    from astropy.io import fits

    from aifa_steps.astrometry.settings import ChainSettings
    from aifa_steps.astrometry.target import TargetFiles, chain_target

    ra, dec, flux = sky_stars(n=250)
    truths = {"a": frame_wcs(0, 0), "b": frame_wcs(25, -10), "c": frame_wcs(30, 0)}
    lists = {kind: [] for kind in ("frames", "wcs", "corr", "xyls")}
    for k, (stem, wcs) in enumerate(truths.items()):
        header = fits.Header({"FRAMEOK": stem != "c"})
        fits.PrimaryHDU(np.zeros(SHAPE, np.float32), header).writeto(tmp_path / f"{stem}.fits")
        sources = source_list(wcs, ra, dec, flux, seed=k)
        Table(
            {
                "X_IMAGE": sources["x"] + 1,
                "Y_IMAGE": sources["y"] + 1,
                "MAG_AUTO": -2.5 * np.log10(sources["flux"]),
                "FLUX_AUTO": sources["flux"],
            }
        ).write(tmp_path / f"{stem}.xyls", format="fits")
        solved = fits.PrimaryHDU(header=wcs.to_header(relax=True)) if stem == "a" else None
        (tmp_path / f"{stem}.wcs").write_bytes(b"")
        if solved is not None:
            solved.writeto(tmp_path / f"{stem}.wcs", overwrite=True)
        (tmp_path / f"{stem}.corr").write_bytes(b"")
        for kind in lists:
            lists[kind].append(tmp_path / f"{stem}.{'fits' if kind == 'frames' else kind}")
    frames = [
        {"stem": s, "path": "", "mjd": float(k), "hint": "", "solve": "yes" if s == "a" else "no"}
        for k, s in enumerate(truths)
    ]
    files = TargetFiles.from_lists(list(truths), lists, "solver.cfg", "verify.cfg", "none.sh")
    chain, stars = chain_target(frames, files, SCALE, ChainSettings())
    assert list(chain["stem"]) == ["a", "b"] and list(chain["method"]) == ["solve-field", "matched"]
    assert chain.meta["NAXIS1"] == SHAPE[1]
    wcs = wcs_from_string(chain["wcs"][1])
    assert wcs_separation(wcs, truths["b"], SHAPE)[0] < 0.1
    assert len(stars) == 0 and "REASON" in stars.meta
