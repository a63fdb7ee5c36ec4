"""The same night locally and through SLURM: wall times and the cost of a SLURM job.

Simulates a night (default: the ``tiny`` preset with 6 transit frames; ``--preset demo`` for
the demo night), reduces it with ``snakemake --cores N`` and with ``snakemake --profile
profiles/slurm`` in fresh work folders, checks that the products are equal
(`aifa_steps.core.workdiff`), and prints:

- the wall time of both runs and the number of jobs (SLURM jobs and local rules);
- per SLURM job: its time in SLURM (start to end, from the cluster's job completion log), the
  time of its work (Snakemake's ``benchmark:`` file: the script or shell command), and the
  difference, the **overhead per job**: ``sbatch``'s batch script, Snakemake started twice
  (batch script and ``srun``) with the workflow parsed each time, the job's output checks;
- the mean wait in the queue (submission to start) and the wall time the run lost to status
  checks and queueing: SLURM wall minus local wall.

Needs a running cluster whose ``slurm.conf`` sets ``JobCompType=jobcomp/filetxt``: start the
test cluster with ``.ci/slurm-cluster start`` (root), or pass ``--start-cluster``.

Usage::

    python bench/bench_slurm.py --start-cluster
    python bench/bench_slurm.py --preset demo --status-seconds 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from bench_night import REPO, job_records, run_measured, simulate

from aifa_steps.core.workdiff import compare_work_dirs

CLUSTER = REPO / ".ci" / "slurm-cluster"
#: A job run in the Snakemake process: ``localrule <name>:`` or ``localcheckpoint <name>:``.
LOCAL_JOB = re.compile(r"^local(?:rule|checkpoint) (\w+):", re.MULTILINE)
JOBCOMP = Path(os.environ.get("AIFA_SLURM_DIR", "/tmp/aifa-slurm")) / "log" / "jobcomp.log"


def completed_jobs(jobcomp: Path, since: dt.datetime) -> list[dict]:
    """Jobs in the job completion log submitted at or after ``since``: submit, start and end
    times (datetime), state, and the job's memory request."""
    jobs = []
    for line in jobcomp.read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        try:
            submit = dt.datetime.fromisoformat(fields["SubmitTime"])
        except (KeyError, ValueError):
            continue
        if submit < since.replace(microsecond=0):
            continue
        jobs.append(
            {
                "submit": submit,
                "start": dt.datetime.fromisoformat(fields["StartTime"]),
                "end": dt.datetime.fromisoformat(fields["EndTime"]),
                "state": fields.get("JobState", ""),
            }
        )
    return jobs


def local_rules(log: str) -> int:
    """How many jobs ran in the Snakemake process (``localrule`` in its log)."""
    return len(LOCAL_JOB.findall(log))


def night_config(night: Path, work: Path) -> Path:
    """A configuration for the night with ``work`` as work folder (written next to it)."""
    config = yaml.safe_load((night / "config.yaml").read_text())
    config["work_dir"] = str(work)
    config.pop("simulate", None)
    path = work.parent / f"{work.name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--transit-frames", type=int, default=6)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--cores", type=int, default=2, help="cores of the local run")
    parser.add_argument(
        "--status-seconds", type=int, default=2, help="seconds between SLURM status checks"
    )
    parser.add_argument("--root", type=Path, default=Path("/tmp/aifa-bench"))
    parser.add_argument("--start-cluster", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="text summary (bench/results)")
    args = parser.parse_args()

    if args.start_cluster:
        subprocess.run(["bash", str(CLUSTER), "start"], check=True)
    if not JOBCOMP.parent.exists():
        sys.exit(f"no SLURM test cluster ({JOBCOMP.parent}); run .ci/slurm-cluster start")
    name = f"{args.preset}_t{args.transit_frames}"
    night = args.root / name
    simulated = simulate(night, args.preset, args.transit_frames, args.seed, args.cores)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
    snakemake = [sys.executable, "-m", "snakemake"]

    work_local = args.root / f"{name}_local"
    work_slurm = args.root / f"{name}_slurm"
    for work in (work_local, work_slurm):
        subprocess.run(["rm", "-rf", str(work)], check=True)
        work.mkdir(parents=True)
    local = run_measured(
        [
            *snakemake,
            "--cores",
            str(args.cores),
            "--configfile",
            str(night_config(night, work_local)),
        ],
        REPO,
        env,
    )
    since = dt.datetime.now()
    log_path = args.root / f"{name}_slurm.log"
    with log_path.open("w") as log_file:
        command = [*snakemake, "--profile", "profiles/slurm"]
        command += ["--configfile", str(night_config(night, work_slurm))]
        command += ["--slurm-init-seconds-before-status-checks", str(args.status_seconds)]
        command += ["--seconds-between-status-checks", str(args.status_seconds)]
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log_file, stderr=log_file)
        start = dt.datetime.now()
        code = proc.wait()
        slurm_wall = (dt.datetime.now() - start).total_seconds()
    log = log_path.read_text()
    if code:
        sys.exit(f"the SLURM run failed (exit {code}); its log: {log_path}")

    jobs = completed_jobs(JOBCOMP, since)
    n_local = local_rules(log)
    records = job_records(work_slurm)
    # The jobs' work: benchmark seconds of every job that was not a local rule.
    local_names = set(LOCAL_JOB.findall(log))
    work_s = sum(r["wall"] for r in records if r["rule"] not in local_names)
    in_slurm = sum((j["end"] - j["start"]).total_seconds() for j in jobs)
    waited = sum((j["start"] - j["submit"]).total_seconds() for j in jobs)
    n = max(len(jobs), 1)
    differences = compare_work_dirs(work_local, work_slurm)
    lines = [
        f"{name}: {args.preset} preset, {args.transit_frames} transit frames, seed {args.seed}; "
        f"simulation {simulated:.0f} s (0: reused)",
        f"local, --cores {args.cores}: {local['wall_s']:.1f} s wall",
        f"SLURM (profiles/slurm, status checks every {args.status_seconds} s): "
        f"{slurm_wall:.1f} s wall, {len(jobs)} SLURM jobs "
        f"({sum(j['state'] == 'COMPLETED' for j in jobs)} completed) and {n_local} local rules",
        f"per SLURM job: {in_slurm / n:.1f} s in SLURM, {work_s / n:.1f} s of work "
        f"(benchmark), overhead {(in_slurm - work_s) / n:.1f} s; "
        f"{waited / n:.1f} s in the queue",
        f"SLURM against local: {slurm_wall / local['wall_s']:.1f}x the wall time",
        f"products: {'equal' if not differences else f'{len(differences)} differences'}",
        *[f"  {d}" for d in differences[:10]],
    ]
    text = "\n".join(lines)
    print(text)
    out = args.out or REPO / "bench" / "results" / f"slurm_{name}.txt"
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
