# Shared paths and helpers for all rules.
import os

import numpy as np

from aifa_steps.masters import exptime_label
from pathlib import Path

RAW = Path(config["raw_dir"])
WORK = Path(config["work_dir"])
LOGS = WORK / "logs"
BENCHMARKS = WORK / "benchmarks"  # per job: wall and CPU time, peak memory
SIMULATE = config.get("simulate")


def raw_night_missing_message():
    return (
        f"raw_dir {RAW} does not exist. Point raw_dir in the configuration at the "
        "night's folder, or add a 'simulate' section to create a simulated night."
    )


if not SIMULATE and not RAW.is_dir():
    raise WorkflowError(raw_night_missing_message())


# ---- The inventory checkpoint decides which frames exist. ----------------------------------
import functools
import re


@functools.lru_cache
def _used_frames(path, mtime):
    from astropy.table import Table

    table = Table.read(path)
    return table[table["used"]]


def used_frames():
    """Used rows of the inventory (waits for the inventory checkpoint)."""
    path = checkpoints.inventory.get().output.table
    return _used_frames(path, os.path.getmtime(path))


def raw_frames(kind, filter=None, exptime=None):
    rows = raw_frames_table(kind)
    sel = np.ones(len(rows), dtype=bool)
    if filter is not None:
        sel &= rows["filter"] == filter
    if exptime is not None:
        sel &= abs(rows["exptime"] - float(exptime)) < 1e-3
    return sorted(rows["path"][sel])


def master_darks(wildcards=None):
    times = sorted({exptime_label(t) for t in raw_frames_table("dark")["exptime"]})
    return [WORK / "masters" / f"dark_{t}s.fits" for t in times]


def master_flats(wildcards=None):
    filters = sorted(set(raw_frames_table("flat")["filter"]))
    return [WORK / "masters" / f"flat_{f}.fits" for f in filters]


def raw_frames_table(kind):
    rows = used_frames()
    return rows[rows["imagetyp"] == kind]


def light_row(stem):
    rows = raw_frames_table("light")
    match = rows[rows["stem"] == stem]
    if len(match) != 1:
        raise WorkflowError(f"{stem} is not a used light frame of the inventory")
    return match[0]


def light_stems():
    return sorted(raw_frames_table("light")["stem"])


def calibrated_frames(wildcards=None):
    return [WORK / "calibrated" / f"{s}.fits" for s in light_stems()]


def light_objects():
    return sorted(set(raw_frames_table("light")["object"]))


def object_centre(obj):
    """Target position from the configuration, else the median header pointing."""
    target = config.get("targets", {}).get(obj)
    if target:
        return float(target["ra"]), float(target["dec"])
    rows = raw_frames_table("light")
    rows = rows[rows["object"] == obj]
    return float(np.nanmedian(rows["ra"])), float(np.nanmedian(rows["dec"]))


def field_size_arcmin():
    rows = raw_frames_table("light")
    scale = config["instrument"]["pixel_scale"] / 60.0
    return float(rows["naxis1"][0]) * scale, float(rows["naxis2"][0]) * scale


def reference_catalogues(wildcards=None):
    return [WORK / "refcat" / f"{obj}.ecsv" for obj in light_objects()]


def pointing_hint(stem, radius):
    """solve-field position hint from the header pointing ('' for a blind solve)."""
    row = light_row(stem)
    if np.isfinite(row["ra"]) and np.isfinite(row["dec"]):
        return f"--ra {row['ra']:.6f} --dec {row['dec']:.6f} --radius {radius}"
    return ""


def frame_object(stem):
    return str(light_row(stem)["object"])


def solved_stems():
    """Stems whose astrometry succeeded (waits for the astrometry_status checkpoint)."""
    from astropy.table import Table

    table = Table.read(checkpoints.astrometry_status.get().output.table)
    return sorted(table["stem"][table["solved"]])


# ---- Photometry: targets with solved frames and their reference frames. --------------------
def solved_frames_table():
    """Solved rows of the astrometry status with the inventory's filter and exposure time."""
    from astropy.table import Table, join

    status = Table.read(checkpoints.astrometry_status.get().output.table)
    status = status[status["solved"]]
    lights = raw_frames_table("light")["stem", "filter", "exptime"]
    return join(status, lights, keys="stem")


def photometry_objects():
    """Targets with at least one solved frame (the others get no photometry)."""
    return sorted(set(solved_frames_table()["object"]))


def photometry_stems(obj):
    rows = solved_frames_table()
    return sorted(rows["stem"][rows["object"] == obj])


def reference_frame(obj):
    """The configured reference frame of a target if it was solved, else the automatic one."""
    from aifa_steps.detection import choose_reference_frame

    rows = solved_frames_table()
    rows = rows[rows["object"] == obj]
    requested = config.get("targets", {}).get(obj, {}).get("reference_frame")
    if requested and requested in rows["stem"]:
        return requested
    return choose_reference_frame(rows, config["photometry"]["reference_filter"])


def photometry_tables(wildcards=None):
    """Per-frame photometry tables of every solved frame."""
    return [
        WORK / "photometry" / obj / f"{stem}.ecsv"
        for obj in photometry_objects()
        for stem in photometry_stems(obj)
    ]


def photometry_products(wildcards=None):
    """Night-level photometry products of every target with solved frames."""
    return [
        WORK / "photometry" / obj / name
        for obj in photometry_objects()
        for name in ("magnitudes.ecsv", "calibrated.ecsv")
    ]


def object_filters(obj):
    """Filters with solved frames of a target."""
    rows = solved_frames_table()
    return sorted(set(rows["filter"][rows["object"] == obj]))


def _stack_rows(obj, filter):
    from aifa_steps.stacking import select_stack_frames

    rows = solved_frames_table()
    rows = rows[rows["object"] == obj]
    return select_stack_frames(rows, filter, config["stacks"]["max_frames"])


def stack_stems(obj, filter):
    """The best-seeing solved frames of a target in one filter (at most stacks.max_frames)."""
    return list(_stack_rows(obj, filter)["stem"])


def stack_frame_rows(obj, filter):
    """``[stem, exptime]`` of the frames of `stack_stems` (a rule parameter)."""
    return [[str(r["stem"]), float(r["exptime"])] for r in _stack_rows(obj, filter)]


def colour_filters(obj):
    """Filters of a target's colour image in red, green, blue order; the first filter alone
    (a grey picture) when the target has none of stacks.colour_filters."""
    available = object_filters(obj)
    chosen = [f for f in config["stacks"]["colour_filters"] if f in available]
    return chosen or available[:1]


def science_products(wildcards=None):
    """Catalogue and CMD of every cluster, light curve and fit of every transit target, stacks
    and the colour image of every target with solved frames."""
    targets = config.get("targets", {})
    names = {
        "cluster": ("catalogue.ecsv", "cmd.png"),
        "transit": ("lightcurve.ecsv", "transit_fit.json", "lightcurve.png"),
    }
    products = []
    for obj in photometry_objects():
        kind_products = names.get(targets.get(obj, {}).get("kind"), ())
        stacks = [f"stack_{f}.fits" for f in object_filters(obj)]
        for name in (*kind_products, *stacks, "color.png"):
            products.append(WORK / "products" / obj / name)
    return products
