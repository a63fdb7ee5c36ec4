"""Progress of a night that a person can follow: one line per frame step, and the time left.

Every per-frame step (`aifa_steps.core.failures.run_frame_step`) appends a line to the run's
progress file (``logs/progress.tsv``, named by the environment variable ``AIFA_PROGRESS``,
which the Snakefile sets and clears at the start of each run) and prints one line to the run's
output::

    progress: calibration 12/45, astrometry 8/45, photometry 3/45 frames; about 6 min left

The estimate weighs the steps still to do by each step's mean time so far and divides by the
rate at which the run has done frame steps (so it accounts for the cores in use); it appears
once three frames have passed one step (a step not yet measured counts as the mean of the
measured ones until it is).
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from pathlib import Path

__all__ = ["ENV_PROGRESS", "FRAME_STEPS", "estimate_left", "record_frame_step"]

ENV_PROGRESS = "AIFA_PROGRESS"
#: The per-frame steps of a light, in order.
FRAME_STEPS = ("calibration", "astrometry", "photometry")
#: Frames that must have passed a step before its mean time is trusted.
MIN_FRAMES = 3


def _lights(progress: Path) -> int | None:
    """Used light frames of the night, from the inventory next to the logs (None if unknown)."""
    inventory = progress.parent.parent / "inventory.ecsv"
    if not inventory.is_file():
        return None
    from astropy.table import Table

    table = Table.read(inventory)
    used = table[(table["imagetyp"] == "light") & table["used"]]
    return len(used)


def _read(
    progress: Path,
) -> tuple[int | None, list[tuple[float, str, float]], dict[str, int]]:
    """The night's lights, the steps done (end, step, seconds) and the failures per step."""
    lights, rows, failed = None, [], defaultdict(int)
    for line in progress.read_text(errors="replace").splitlines():
        try:
            if line.startswith("# lights "):
                lights = int(line.split()[2])
                continue
            fields = line.split("\t")
            if len(fields) == 5 and not line.startswith("#"):
                rows.append((float(fields[0]), fields[1], float(fields[4])))
                failed[fields[1]] += fields[3] == "failed"
        except (ValueError, IndexError):
            continue  # a line being written by another job
    return lights, rows, failed


def estimate_left(
    lights: int | dict[str, int], rows: list[tuple[float, str, float]]
) -> float | None:
    """Seconds of wall time left for the frame steps, or None before it can be estimated.

    Parameters
    ----------
    lights : int or dict
        Light frames of the night, or per step the frames that will pass it.
    rows : list of (time, step, seconds)
        Frame steps done: when each ended (epoch seconds), its step and its duration.
    """
    done: dict[str, int] = defaultdict(int)
    spent: dict[str, float] = defaultdict(float)
    for _, step, seconds in rows:
        done[step] += 1
        spent[step] += seconds
    measured = {s: spent[s] / done[s] for s in FRAME_STEPS if done[s] >= MIN_FRAMES}
    if not measured or len(rows) < 2:
        return None
    # A step no frame has passed yet (the night runs step by step) is guessed to take the
    # mean of the measured ones: a rough figure at first, corrected as the steps come.
    guess = sum(measured.values()) / len(measured)
    mean = {step: measured.get(step, guess) for step in FRAME_STEPS}
    totals = lights if isinstance(lights, dict) else dict.fromkeys(FRAME_STEPS, lights)
    left = sum(max(0, totals[step] - done[step]) * mean[step] for step in FRAME_STEPS)
    ends = [end for end, _, _ in rows]
    starts = [end - seconds for end, _, seconds in rows]
    elapsed = max(ends) - min(starts)
    work_done = sum(spent.values())
    if elapsed <= 0 or work_done <= 0:
        return None
    return left / (work_done / elapsed)


def _format(seconds: float) -> str:
    minutes = seconds / 60.0
    if minutes < 1.5:
        return "under 2 min"
    if minutes < 90:
        return f"about {minutes:.0f} min"
    return f"about {minutes / 60:.1f} h"


def record_frame_step(step: str, stem: str, seconds: float, ok: bool) -> str | None:
    """Append a frame step to the run's progress file and print the progress line.

    Does nothing (returns None) when ``AIFA_PROGRESS`` is not set or the step is not one of
    `FRAME_STEPS`; a progress file that cannot be written never stops the step.

    Returns
    -------
    str or None
        The line printed.
    """
    name = os.environ.get(ENV_PROGRESS)
    if not name or step not in FRAME_STEPS:
        return None
    try:
        return _record(Path(name), step, stem, seconds, ok)
    except Exception:  # noqa: BLE001 - the progress line never stops a frame's step
        return None


def _record(progress: Path, step: str, stem: str, seconds: float, ok: bool) -> str | None:
    try:
        progress.parent.mkdir(parents=True, exist_ok=True)
        if not progress.exists():
            lights = _lights(progress)
            if lights is not None:
                with open(progress, "a") as stream:
                    stream.write(f"# lights {lights}\n")
        line = f"{time.time():.3f}\t{step}\t{stem}\t{'ok' if ok else 'failed'}\t{seconds:.3f}\n"
        with open(progress, "a") as stream:  # one short write: lines of parallel jobs stay whole
            stream.write(line)
        lights, rows, failed = _read(progress)
    except OSError:
        return None
    counts = {s: sum(1 for _, step_, _ in rows if step_ == s) for s in FRAME_STEPS}
    # Frames that failed their astrometry get no photometry.
    totals = dict.fromkeys(FRAME_STEPS, lights or 0)
    totals["photometry"] = max(0, totals["photometry"] - failed["astrometry"])
    text = "progress: " + ", ".join(
        f"{s} {counts[s]}" + (f"/{totals[s]}" if lights else "") for s in FRAME_STEPS
    )
    text += " frames"
    left = estimate_left(totals, rows) if lights else None
    if left is not None:
        text += f"; {_format(left)} left"
    print(text, file=sys.stderr, flush=True)
    return text
