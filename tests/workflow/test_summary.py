"""The run on the tiny night: the night's status and summary page, a second run with nothing
to do, and the report."""

import pytest
from astropy.table import Table

from ..helpers import run_snakemake

pytestmark = pytest.mark.slow


def test_the_night_status_names_the_step_that_left_each_file_out(tiny_run):
    # Every raw file, the left-out ones with the step and the reason.
    work, inventory, status = tiny_run.work, tiny_run.inventory, tiny_run.status
    night = Table.read(work / "night_status.ecsv")
    assert len(night) == len(tiny_run.frames)
    left_out = night[night["status"] != "used"]
    assert set(left_out["stem"][left_out["step"] == "inventory"]) == set(
        inventory["stem"][~inventory["used"]]
    )
    assert set(left_out["stem"][left_out["step"] == "astrometry"]) == set(
        status["stem"][~status["solved"]]
    )
    assert "Night summary:" in (work / "qc" / "night_summary.html").read_text()


def test_nothing_left_to_do_on_a_second_run_and_the_report_renders(tiny_run):
    # The dry run first: the report is written into the work folder.
    tmp, cfg, work = tiny_run.tmp, str(tiny_run.config), tiny_run.work
    proc = run_snakemake(tmp, "-n", "--configfile", cfg)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    run_snakemake(tmp, "--configfile", cfg, "--report", str(work / "report.html"))
    report_html = (work / "report.html").read_text(errors="replace")
    assert (work / "report.html").stat().st_size > 10_000
    for label in ("colour image of NGC7789", "transit light curve of Qatar-1", "night summary"):
        assert label in report_html, label
