"""Progress of a night: a line per frame step and the time left."""

import pytest
from astropy.table import Table

from aifa_steps.core.failures import run_frame_step
from aifa_steps.core.progress import ENV_PROGRESS, estimate_left, record_frame_step


def _rows(frames, cores, seconds=2.0):
    """Frames done step after step by ``cores`` workers, each step ``seconds`` long."""
    rows, clock = [], [0.0] * cores
    for k in range(frames):
        for step in ("calibration", "astrometry", "photometry"):
            worker = k % cores
            clock[worker] += seconds
            rows.append((1000.0 + clock[worker], step, seconds))
    return rows


def test_time_left_follows_the_steps_still_to_do_and_the_cores_in_use():
    # 6 of 10 frames done, 6 s per frame: 24 s of work left.
    assert estimate_left(10, _rows(6, cores=1)) == pytest.approx(24.0)
    assert estimate_left(10, _rows(6, cores=2)) == pytest.approx(12.0)
    assert estimate_left(10, _rows(2, cores=1)) is None  # too early to say
    # Only calibration so far (5 of 10 frames, 2 s each): the other steps are guessed alike.
    calibrated = [(1000.0 + 2.0 * (k + 1), "calibration", 2.0) for k in range(5)]
    assert estimate_left(10, calibrated) == pytest.approx(5 * 2.0 + 10 * 2.0 + 10 * 2.0)
    assert estimate_left(6, _rows(6, cores=1)) == pytest.approx(0.0)


def test_each_frame_step_adds_a_line_and_prints_the_progress(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    (work / "logs").mkdir(parents=True)
    Table(
        {"imagetyp": ["light", "light", "light", "bias"], "used": [True, True, False, True]}
    ).write(work / "inventory.ecsv")
    monkeypatch.delenv(ENV_PROGRESS, raising=False)
    assert record_frame_step("calibration", "a", 1.0, True) is None  # no run: nothing
    monkeypatch.setenv(ENV_PROGRESS, str(work / "logs" / "progress.tsv"))
    run_frame_step("calibration", "a", lambda: None, lambda reason: None)
    run_frame_step("calibration", "b", lambda: 1 / 0, lambda reason: None)  # failed: counted
    line = record_frame_step("astrometry", "a", 1.5, True)
    assert line == "progress: calibration 2/2, astrometry 1/2, photometry 0/2 frames"
    assert line in capsys.readouterr().err
    lines = (work / "logs" / "progress.tsv").read_text().splitlines()
    assert lines[0] == "# lights 2"
    assert [x.split("\t")[1:4] for x in lines[1:]] == [
        ["calibration", "a", "ok"],
        ["calibration", "b", "failed"],
        ["astrometry", "a", "ok"],
    ]
    assert record_frame_step("master_flat", "flat_r", 1.0, True) is None  # not a frame step
    # A frame that failed its astrometry gets no photometry; a garbled line is skipped.
    with open(work / "logs" / "progress.tsv", "a") as stream:
        stream.write("12.5\tastrometry\tb\tok\tx.y\n")
    line = record_frame_step("astrometry", "b", 1.0, False)
    assert line == "progress: calibration 2/2, astrometry 2/2, photometry 0/1 frames"
