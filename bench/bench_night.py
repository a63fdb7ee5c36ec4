"""A whole night through the workflow: wall time, CPU time and memory of every stage.

Simulates a night (default: the ``full`` preset, 4788 x 3194 frames, with ``--transit-frames``
transit frames), reduces it with ``snakemake --cores N`` for each ``--cores`` value in a fresh
work folder, writes the report, and prints per stage: jobs, wall time (sum over jobs), CPU
time, the largest job's peak memory, the cost per frame job, and how the stage's job time
splits into work (from the ``timing:`` line of the jobs' logs) and the rest (Snakemake's
launch of the job, interpreter start, imports, exit). Then the
total wall time, the speed-up between core counts and the share of the cores' time spent
outside the science code (the jobs' time outside their work plus time no job runs:
Snakemake's bookkeeping and waiting for serial steps), the CPU time of Snakemake's main
process (psutil; and of it with all jobs, from ``getrusage``) and the disk use of the work
folder against the raw night.

The per-job numbers come from Snakemake's ``benchmark:`` files (``<work>/benchmarks``) and the
``timing:`` line each job writes to its log. Results: ``bench/results/night_<preset>_<n>.ecsv``
(one row per stage and core count) and a text summary next to it.

Usage::

    python bench/bench_night.py --transit-frames 300 --cores 1 2
    python bench/bench_night.py --preset demo --cores 2          # a quick look
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml
from astropy.table import Table

REPO = Path(__file__).resolve().parents[1]

# Rule -> stage of the list, and whether the rule runs once per frame. Every rule with
# a benchmark file is listed (tests/test_layout.py checks).
STAGES = {
    "inventory": ("inventory", False),
    "master_bias": ("master bias", False),
    "master_dark": ("master darks", False),
    "master_flat": ("master flats", False),
    "bad_pixel_mask": ("bad-pixel mask", False),
    "calibrate_frame": ("calibration", True),
    "camera_characterisation": ("quality control", False),
    "calibration_qc": ("quality control", False),
    "reference_catalogue": ("reference catalogue", False),
    "astrometry_index": ("astrometry", False),
    "astrometry_chain": ("astrometry", False),
    "solve_field": ("astrometry", True),
    "astrometry_frame": ("astrometry", True),
    "astrometry_status": ("astrometry", False),
    "astrometry_plots": ("astrometry", False),
    "photometry_reference": ("background + photometry", False),
    "photometry_frame": ("background + photometry", True),
    "psf_photometry": ("PSF photometry", True),
    "zeropoints": ("zero points", False),
    "calibrated_magnitudes": ("zero points", False),
    "cluster_products": ("CMD", False),
    "transit_products": ("light curve", False),
    "stack": ("stacks", False),
    "colour_image": ("stacks", False),
    "night_summary": ("night summary", False),
    "results_summary": ("night summary", False),
}
# Benchmark folders named otherwise than their rule.
BENCHMARK_NAMES = {"calibrate": "calibrate_frame"}
SHELL_RULES = {"solve_field"}  # no Python start-up: all of it is the science program
TIMING = re.compile(r"timing: start-up ([0-9.na]+) s, work ([0-9.]+) s")


def rule_of(path: Path, bench_dir: Path) -> str:
    """Rule name from a benchmark file's path (``<rule>/...`` or ``<rule>[_x].tsv``)."""
    first = path.relative_to(bench_dir).parts[0]
    name = first.removesuffix(".tsv")
    if name in BENCHMARK_NAMES:
        return BENCHMARK_NAMES[name]
    for rule in sorted(STAGES, key=len, reverse=True):
        if name == rule or name.startswith(rule + "_"):
            return rule
    return name


def job_records(work: Path) -> list[dict]:
    """One record per job: rule, wall s, CPU s, peak RSS MB, start-up s, work s."""
    bench_dir = work / "benchmarks"
    records = []
    for path in sorted(bench_dir.rglob("*.tsv")):
        table = Table.read(path, format="ascii.tab")
        rule = rule_of(path, bench_dir)
        log = work / "logs" / path.relative_to(bench_dir).with_suffix(".log")
        wall = float(table["s"][0])
        startup = np.nan
        if rule in SHELL_RULES:
            startup = 0.0
        elif log.exists():
            match = TIMING.search(log.read_text(errors="replace"))
            if match:
                # Everything but the work: Snakemake's launch of the job, the interpreter,
                # the imports, and the exit.
                startup = max(wall - float(match.group(2)), 0.0)
        rss = table["max_rss"][0]
        records.append(
            {
                "rule": rule,
                "wall": wall,
                "cpu": float(table["cpu_time"][0]) if "cpu_time" in table.colnames else np.nan,
                "rss_mb": float(rss) if rss not in ("-", "NA") else np.nan,
                "startup": startup,
            }
        )
    add_server_usage(records, work / "logs" / "job_server.tsv")
    return records


def add_server_usage(records: list[dict], usage: Path) -> None:
    """Add the job server's children (``logs/job_server.tsv``) to the records of their rules.

    With the job server a job's benchmark measures the process that waits; the science ran
    in the server's child. Each rule's children's CPU time is spread over its jobs, and the
    largest child's peak memory becomes the rule's peak.
    """
    if not usage.exists():
        return
    table = Table.read(usage, format="ascii.tab")
    for rule in {r["rule"] for r in records}:
        mine = table[[str(name).removesuffix(".py") == rule for name in table["script"]]]
        jobs = [r for r in records if r["rule"] == rule]
        if not len(mine) or not jobs:
            continue
        extra = float(np.sum(mine["cpu_s"])) / len(jobs)
        peak = float(np.max(mine["max_rss_mb"]))
        for rec in jobs:
            rec["cpu"] = float(np.nansum([rec["cpu"], extra]))
            rec["rss_mb"] = float(np.nanmax([rec["rss_mb"], peak]))


def stage_table(records: list[dict], cores: int) -> Table:
    """Sum the jobs of each stage."""
    stages: dict[str, list[dict]] = defaultdict(list)
    per_frame: dict[str, int] = defaultdict(int)
    for rec in records:
        stage, frame_rule = STAGES.get(rec["rule"], (rec["rule"], False))
        stages[stage].append(rec)
        if frame_rule:
            per_frame[stage] = max(per_frame[stage], sum(r["rule"] == rec["rule"] for r in records))
    rows = []
    for stage, recs in stages.items():
        wall = sum(r["wall"] for r in recs)
        startup = float(np.nansum([r["startup"] for r in recs]))
        frames = per_frame.get(stage, 0)
        # The cost per frame counts the per-frame rules only (not e.g. the reference detection).
        frame_wall = sum(r["wall"] for r in recs if STAGES.get(r["rule"], ("", False))[1])
        rows.append(
            {
                "cores": cores,
                "stage": stage,
                "jobs": len(recs),
                "wall_s": wall,
                "cpu_s": float(np.nansum([r["cpu"] for r in recs])),
                "peak_mb": float(np.nanmax([r["rss_mb"] for r in recs])),
                "frames": frames,
                "per_frame_s": frame_wall / frames if frames else np.nan,
                "startup_s": startup,
            }
        )
    order = list(dict.fromkeys(stage for stage, _ in STAGES.values()))
    rows.sort(key=lambda r: order.index(r["stage"]) if r["stage"] in order else len(order))
    return Table(rows=rows)


def simulate(night: Path, preset: str, transit_frames: int | None, seed: int, jobs: int) -> float:
    """Simulate the night unless it exists; return the seconds it took (0 when reused)."""
    if (night / "truth" / "frames.ecsv").exists():
        return 0.0
    command = [sys.executable, "-m", "aifa_steps.simulate", str(night), "--preset", preset]
    command += ["--seed", str(seed), "--jobs", str(jobs), "--overwrite"]
    if transit_frames:
        command += ["--transit-frames", str(transit_frames)]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def disk_bytes(folder: Path) -> int:
    """Bytes that the files below ``folder`` take on disk (allocated blocks, as ``du``)."""
    return sum(p.lstat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def run_measured(command: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Run a command; return its wall time and the CPU time of it and of all its children.

    ``main_cpu_s`` is the CPU time (user + system) of the started process alone (for
    Snakemake: its main process), sampled with psutil every 0.2 s until it exits (so up to
    0.2 s of CPU may be missed) when psutil is installed, else NaN. ``all_cpu_s`` is the
    ``resource.getrusage(RUSAGE_CHILDREN)`` delta: the process and every job it waited for.

    Raises
    ------
    subprocess.CalledProcessError
        If the command fails.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    main_cpu = np.nan
    try:
        import psutil
    except ImportError:
        psutil = None
    proc = subprocess.Popen(command, cwd=cwd, env=env)
    if psutil is not None:
        handle = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                times = handle.cpu_times()
                main_cpu = times.user + times.system
            except psutil.Error:
                break
            time.sleep(0.2)
    code = proc.wait()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code:
        raise subprocess.CalledProcessError(code, command)
    every = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "main_cpu_s": main_cpu, "all_cpu_s": every}


def reduce(
    night: Path, work: Path, cores: int, report: bool = True
) -> tuple[float, float, dict[str, float]]:
    """Reduce the night with ``cores`` cores in a fresh work folder.

    Snakemake runs in this checkout (its ``workflow/``) with this checkout's ``src`` first on
    ``PYTHONPATH``, so the jobs import this tree's package, not an installed one.

    Returns
    -------
    tuple
        Seconds of the run, seconds of the report (0 without ``report``), and a dict of the
        run's measurements: ``main_cpu_s`` (Snakemake's main process), ``all_cpu_s`` (it and
        all jobs), ``work_bytes`` and ``raw_bytes`` (disk use of the work folder after the run
        and of the raw night).
    """
    if work.exists():
        shutil.rmtree(work)
    config = yaml.safe_load((night / "config.yaml").read_text())
    config["work_dir"] = str(work)
    config.pop("simulate", None)
    work.mkdir(parents=True)
    cfg = work.parent / f"{work.name}.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
    snakemake = [sys.executable, "-m", "snakemake", "--configfile", str(cfg)]
    measured = run_measured([*snakemake, "--cores", str(cores)], REPO, env)
    measured["work_bytes"] = disk_bytes(work)
    measured["raw_bytes"] = disk_bytes(REPO / config["raw_dir"])
    report_s = 0.0
    if report:
        start = time.perf_counter()
        subprocess.run(
            [*snakemake, "--report", str(work / "report.html")], cwd=REPO, env=env, check=True
        )
        report_s = time.perf_counter() - start
    return measured["wall_s"], report_s, measured


def disk_line(measured: dict[str, float]) -> str:
    """One line: disk use of the work folder against the raw night."""
    work, raw = measured["work_bytes"], measured["raw_bytes"]
    return (
        f"disk: work folder {work / 1e9:.2f} GB ({work:,} bytes), raw night {raw / 1e9:.2f} GB "
        f"({raw:,} bytes): {work / raw:.2f}x the raw night"
    )


def cpu_line(measured: dict[str, float], run: float) -> str:
    """One line: CPU time of Snakemake's main process and of everything it ran."""
    main = measured["main_cpu_s"]
    return (
        f"Snakemake main process CPU {main:.1f} s ({main / run:.1%} of a core over the "
        f"{run:.0f} s run); it and all its jobs {measured['all_cpu_s']:.1f} s CPU"
    )


def summary(
    table: Table, totals: dict[int, tuple[float, float, dict[str, float]]], frames: int
) -> str:
    """Text summary: the stage table per core count, totals, speed-up, overhead."""
    lines = []
    for cores, (run, report, measured) in totals.items():
        part = table[table["cores"] == cores]
        lines.append(f"--cores {cores}: workflow {run:.1f} s wall, report {report:.1f} s")
        lines.append(
            f"{'stage':26s} {'jobs':>5s} {'wall s':>9s} {'cpu s':>9s} {'peak MB':>8s} "
            f"{'s/frame':>8s} {'not work s':>10s}"
        )
        for row in part:
            per_frame = "" if not np.isfinite(row["per_frame_s"]) else f"{row['per_frame_s']:.2f}"
            lines.append(
                f"{row['stage']:26s} {row['jobs']:5d} {row['wall_s']:9.1f} {row['cpu_s']:9.1f} "
                f"{row['peak_mb']:8.0f} {per_frame:>8s} {row['startup_s']:10.1f}"
            )
        job_time = float(np.sum(part["wall_s"]))
        startup = float(np.sum(part["startup_s"]))
        capacity = run * cores
        idle = max(capacity - job_time, 0.0)
        outside = (startup + idle) / capacity
        lines.append(
            f"jobs {job_time:.1f} of {capacity:.1f} core-s; jobs outside work {startup:.1f} s "
            f"({startup / capacity:.1%}), no job running {idle:.1f} s ({idle / capacity:.1%}); "
            f"outside the science code {outside:.1%}; {run / frames:.2f} s wall per light frame"
        )
        lines.append(cpu_line(measured, run))
        lines.append(disk_line(measured))
        lines.append("")
    if len(totals) > 1:
        walls = [totals[c][0] for c in sorted(totals)]
        cores = sorted(totals)
        lines.append(f"speed-up from {cores[0]} to {cores[-1]} cores: {walls[0] / walls[-1]:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="full", choices=["tiny", "demo", "full"])
    parser.add_argument("--transit-frames", type=int, default=None)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--base", type=Path, default=Path("/tmp/aifa-bench"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    label = f"{args.preset}_t{args.transit_frames}" if args.transit_frames else args.preset
    night = args.base / label
    simulated = simulate(night, args.preset, args.transit_frames, args.seed, max(args.cores))
    lights = Table.read(night / "truth" / "frames.ecsv")
    n_lights = int(np.sum(lights["imagetyp"] == "LIGHT"))
    tables, totals = [], {}
    for cores in args.cores:
        work = args.base / f"{label}_work_c{cores}"
        totals[cores] = reduce(night, work, cores)
        tables.append(stage_table(job_records(work), cores))
    from astropy.table import vstack

    table = vstack(tables)
    table.meta.update(
        preset=args.preset,
        light_frames=n_lights,
        simulation_s=simulated,
        totals={c: {"workflow_s": r, "report_s": p, **m} for c, (r, p, m) in totals.items()},
    )
    args.out.mkdir(parents=True, exist_ok=True)
    table.write(args.out / f"night_{label}.ecsv", overwrite=True)
    text = (
        f"{args.preset} night, {n_lights} light frames ({label}); simulation "
        f"{simulated:.0f} s (0: reused)\n\n" + summary(table, totals, n_lights)
    )
    (args.out / f"night_{label}.txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
