"""The night through SLURM (snakemake-executor-plugin-slurm and profiles/slurm) on a real
single-node cluster: the products equal those of a local run, file by file."""

from __future__ import annotations

import re

import pytest

from aifa_steps.core.workdiff import compare_work_dirs, product_files

from ..helpers import REPO, require_program, run_snakemake, write_config

pytestmark = pytest.mark.slow

#: A small night: the tiny preset's cluster frames and 6 transit frames (12 lights).
PRESET, SEED, TRANSIT_FRAMES = "tiny", 11, 6


def _slurm_jobs(jobcomp, workdir) -> list[dict]:
    """Finished SLURM jobs (jobcomp/filetxt lines) that ran in ``workdir``."""
    jobs = []
    for line in jobcomp.read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("WorkDir") == str(workdir):
            jobs.append(fields)
    return jobs


def test_a_night_on_slurm_equals_the_local_run(slurm_cluster, tmp_path):
    require_program("solve-field")
    raw = tmp_path / "raw"
    common = {
        "raw_dir": str(raw),
        "reference_catalogue": {"source": "file", "path": str(raw / "refcat.ecsv")},
    }
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    local_dir.mkdir()
    slurm_dir.mkdir()
    local_cfg = write_config(
        tmp_path / "local.yaml",
        work_dir=str(local_dir / "work"),
        simulate={"preset": PRESET, "seed": SEED, "transit_frames": TRANSIT_FRAMES},
        **common,
    )
    # The cluster reduces the raw night the local run simulated (no simulate section).
    slurm_cfg = write_config(
        tmp_path / "slurm.yaml", work_dir=str(slurm_dir / "work"), simulate=None, **common
    )
    run_snakemake(local_dir, "--cores", "2", "--configfile", local_cfg)
    proc = run_snakemake(
        slurm_dir,
        "--profile",
        REPO / "profiles" / "slurm",
        "--configfile",
        slurm_cfg,
        # A test cluster answers at once: check often, and from the start. The node has two
        # cores: masters on one thread each run side by side.
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "1",
        "--set-threads",
        "master_bias=1",
        "master_dark=1",
        "master_flat=1",
    )
    log = proc.stdout + proc.stderr

    # Every product of the local run, equal: tables value by value, FITS data pixel by pixel.
    assert len(product_files(local_dir / "work")) > 100
    differences = compare_work_dirs(local_dir / "work", slurm_dir / "work")
    assert differences == [], "\n".join(differences)

    # The jobs ran as SLURM jobs, all finished; the local rules ran in the Snakemake process.
    jobs = _slurm_jobs(slurm_cluster.jobcomp, slurm_dir)
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", log)
    assert len(jobs) == len(submitted) > 40
    assert {j["JobState"] for j in jobs} == {"COMPLETED"}
    assert "localcheckpoint inventory:" in log and "localrule results_summary:" in log
    # The profile's resources reach SLURM: the stacks ask for 4000 MB, a frame for 1500.
    memory = {re.search(r"mem=([^,]+)", j["Tres"]).group(1) for j in jobs}
    assert {"4000M", "1500M"} <= memory
