"""The workflow against a tutorial-style script on the same simulated night, per stage.

One command: simulates a night (``bench_night.simulate``; reused when it exists under
``--base``), reduces it with ``snakemake --cores N`` (``bench_night.reduce``, default 2 cores,
no report), then runs the tutorial-style baseline (``tutorial_baseline.py``: sequential,
one core, ccdproc, two solve-field passes, photutils; as a separate process) on the same raw
night with the index files the workflow built, and prints per stage (masters, calibration,
astrometry, photometry, total) the tutorial's wall seconds, the workflow's job-time sum
(core-seconds of the stage's jobs from their ``benchmark:`` files, start-up included) and
the ratio, then the wall time of both runs and their ratio.

The workflow does more than the baseline (bad-pixel masks, uncertainties, SIP refinement,
quality control, photometry of every star, zero points, stacks, products): those jobs are
the row "other (workflow only)". Results: ``bench/results/versus_tutorial_<label>.txt``.

Usage::

    python bench/bench_versus_tutorial.py                        # full preset, 30 transit frames
    python bench/bench_versus_tutorial.py --preset demo          # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from astropy.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_night import (  # noqa: E402
    REPO,
    cpu_line,
    disk_bytes,
    disk_line,
    job_records,
    reduce,
    simulate,
    stage_table,
)

# Workflow stage (bench_night.STAGES) -> the tutorial's stage it compares with.
TUTORIAL_STAGE = {
    "master bias": "masters",
    "master darks": "masters",
    "master flats": "masters",
    "bad-pixel mask": "masters",
    "calibration": "calibration",
    "astrometry": "astrometry",
    "background + photometry": "photometry",
}
ROWS = ("masters", "calibration", "astrometry", "photometry")


def workflow_stages(work: Path, cores: int) -> dict[str, float]:
    """The workflow's job-time sums (s) per tutorial stage, ``other`` and ``total``."""
    table = stage_table(job_records(work), cores)
    sums = dict.fromkeys([*ROWS, "other"], 0.0)
    for row in table:
        sums[TUTORIAL_STAGE.get(row["stage"], "other")] += float(row["wall_s"])
    sums["total"] = sum(sums.values())
    return sums


def run_baseline(night: Path, work: Path, index_dir: Path, out_json: Path) -> float:
    """Run tutorial_baseline.py in its own process; return its wall seconds."""
    command = [
        sys.executable,
        str(Path(__file__).resolve().parent / "tutorial_baseline.py"),
        str(night / "config.yaml"),
        str(work),
        "--raw",
        str(night),
        "--index-dir",
        str(index_dir),
        "--json",
        str(out_json),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    return time.perf_counter() - start


def report(
    label: str,
    lights: int,
    cores: int,
    tutorial: dict[str, float],
    tutorial_wall: float,
    workflow: dict[str, float],
    workflow_wall: float,
    measured: dict[str, float],
    tutorial_bytes: int,
) -> str:
    """The side-by-side table as text."""
    lines = [
        f"{label} night, {lights} light frames; workflow with --cores {cores}, tutorial-style "
        f"baseline sequential on one core ({int(tutorial['solved'])} of "
        f"{int(tutorial['lights'])} lights solved, {int(tutorial['measured'])} transit "
        "frames measured)",
        "tutorial: wall s of the stage; workflow: sum of the stage's job wall times (core-s, "
        "start-up included); ratio = tutorial / workflow",
        "",
        f"{'stage':24s} {'tutorial s':>11s} {'workflow s':>11s} {'ratio':>7s}",
    ]
    for stage in ROWS:
        t, w = tutorial[stage], workflow[stage]
        ratio = t / w if w else np.nan
        lines.append(f"{stage:24s} {t:11.1f} {w:11.1f} {ratio:7.2f}")
    lines.append(f"{'other (workflow only)':24s} {'':>11s} {workflow['other']:11.1f}")
    t, w = tutorial["total"], workflow["total"]
    lines.append(f"{'total (stages)':24s} {t:11.1f} {w:11.1f} {t / w:7.2f}")
    lines.append("")
    lines.append(
        f"wall time: tutorial {tutorial_wall:.1f} s (process, imports included; "
        f"{tutorial_wall / lights:.2f} s per light), workflow {workflow_wall:.1f} s "
        f"({workflow_wall / lights:.2f} s per light, --cores {cores}): the workflow is "
        f"{tutorial_wall / workflow_wall:.2f}x faster"
    )
    lines.append(cpu_line(measured, workflow_wall))
    lines.append(disk_line(measured))
    lines.append(
        f"disk: tutorial's work folder {tutorial_bytes / 1e9:.2f} GB: "
        f"{tutorial_bytes / measured['raw_bytes']:.2f}x the raw night"
    )
    load = os.getloadavg()
    lines.append(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="full", choices=["tiny", "demo", "full"])
    parser.add_argument("--transit-frames", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--base", type=Path, default=Path("/tmp/aifa-bench"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    label = f"{args.preset}_t{args.transit_frames}" if args.transit_frames else args.preset
    night = args.base / label
    simulate(night, args.preset, args.transit_frames, args.seed, args.cores)
    frames = Table.read(night / "truth" / "frames.ecsv")
    lights = int(np.sum(frames["imagetyp"] == "LIGHT"))

    work = args.base / f"{label}_work_c{args.cores}"
    workflow_wall, _, measured = reduce(night, work, args.cores, report=False)
    workflow = workflow_stages(work, args.cores)

    tutorial_work = args.base / f"{label}_tutorial"
    out_json = args.base / f"{label}_tutorial.json"
    index_dir = work / "astrometry" / "index"
    tutorial_wall = run_baseline(night, tutorial_work, index_dir, out_json)
    tutorial = json.loads(out_json.read_text())

    config = yaml.safe_load((night / "config.yaml").read_text())
    text = report(
        f"{args.preset} ({label}, raw {config['raw_dir']})",
        lights,
        args.cores,
        tutorial,
        tutorial_wall,
        workflow,
        workflow_wall,
        measured,
        disk_bytes(tutorial_work),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"versus_tutorial_{label}.txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
