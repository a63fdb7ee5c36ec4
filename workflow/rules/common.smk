# Shared paths and helpers for all rules.
import functools
import os

import numpy as np

# Light modules only: every Snakemake process (on a cluster, each job twice) parses this.
from aifa_steps.inventory.settings import find_raw_files
from aifa_steps.calibration.settings import exptime_label
from aifa_steps.core.formats import APERTURE_CONFIG_KEYS, safe_name
from aifa_steps.core.progress import ENV_PROGRESS
from aifa_steps.summary.checks import config_problems, inventory_verdict
from pathlib import Path

RAW = Path(config["raw_dir"])
WORK = Path(config["work_dir"])
# The report opens on the night's results: report/workflow.rst includes this page (written by
# the results_summary rule) when it exists.
if (WORK / "qc" / "summary_report.html").is_file():
    config["_summary_page"] = str((WORK / "qc" / "summary_report.html").resolve())


def photometry_keys(*extra):
    """Keys of the photometry section that the per-frame photometry uses (its settings'
    fields, the apertures among them), plus ``extra``."""
    from aifa_steps.photometry.settings import PhotometryParameters

    return keys_of(
        config["photometry"],
        *PhotometryParameters.keys(),
        *APERTURE_CONFIG_KEYS,
        *extra,
    )


def keys_of(section, *names):
    """Only the named keys of a config section: a job's parameters hold what it uses, so
    changing another key of the section does not rerun it."""
    return {name: section[name] for name in names if name in section}


LOGS = WORK / "logs"
# Each frame step adds a line to the run's progress and prints the time left
# (aifa_steps.core.progress); onstart clears the file of an earlier run.
PROGRESS = LOGS / "progress.tsv"
os.environ[ENV_PROGRESS] = str(PROGRESS.absolute())
BENCHMARKS = WORK / "benchmarks"  # per job: wall and CPU time, peak memory
SIMULATE = config.get("simulate")


def raw_night_missing_message():
    return (
        f"raw_dir {RAW} does not exist. Point raw_dir in the configuration at the "
        "night's folder, or add a 'simulate' section to create a simulated night."
    )


if not SIMULATE and not RAW.is_dir():
    raise WorkflowError(raw_night_missing_message())

# Keys that contradict each other stop the run before anything starts.
_CONFIG_PROBLEMS = config_problems(config, check_files=RAW.is_dir())
if _CONFIG_PROBLEMS:
    raise WorkflowError(
        "The configuration cannot work as it is:\n"
        + "\n".join(f"  - {p}" for p in _CONFIG_PROBLEMS)
    )


# ---- The raw files and the inventory checkpoint. -------------------------------------------
def raw_files(wildcards=None):
    """Every FITS file below raw_dir. They are the inventory's inputs, so adding, removing or
    editing any raw file reruns the inventory (and then only what depends on changed frames).
    For the demo night they are known once the simulation (a checkpoint) has run."""
    if SIMULATE:
        checkpoints.simulate_night.get()
    return [str(p) for p in find_raw_files(RAW)]


@functools.lru_cache
def _read_inventory(path, mtime):
    from astropy.table import Table

    table = Table.read(path)
    verdict = inventory_verdict(table, config["inventory"]["fatal"], path)
    return table, table[table["used"]], verdict


def _inventory():
    """``(table, used rows)`` of the inventory (waits for the checkpoint). A night that cannot
    go on (every light excluded, or a problem that inventory.fatal names) stops here with one
    message."""
    path = checkpoints.inventory.get().output.table
    table, used, verdict = _read_inventory(path, os.path.getmtime(path))
    if verdict:
        raise WorkflowError(verdict)
    return table, used


def inventory_table():
    """The whole inventory (see `_inventory`)."""
    return _inventory()[0]


def after_inventory(path):
    """An input function for ``path`` that waits for the inventory: for rules whose
    parameters read the inventory while their inputs are fixed paths (Snakemake requires
    the checkpoint a parameter waits for among the rule's inputs)."""

    def wait(wildcards):
        inventory_table()
        return str(path).format(**wildcards)

    return wait


def inventory_ready(wildcards=None):
    """No input, but only once the inventory exists (see `after_inventory`)."""
    inventory_table()
    return []


def used_frames():
    """Used rows of the inventory."""
    return _inventory()[1]


def raw_frames_table(kind):
    rows = used_frames()
    return rows[rows["imagetyp"] == kind]


def raw_frames(kind, filter=None, exptime=None):
    rows = raw_frames_table(kind)
    sel = np.ones(len(rows), dtype=bool)
    if filter is not None:
        sel &= rows["filter"] == filter
    if exptime is not None:
        sel &= abs(rows["exptime"] - float(exptime)) < 1e-3
    return sorted(rows["path"][sel])


# ---- Masters: each is optional (a night may have only light frames). -----------------------
def master_bias_file(wildcards=None):
    """The master bias, or [] for a night without bias frames."""
    return [WORK / "masters" / "bias.fits"] if len(raw_frames_table("bias")) else []


def master_darks(wildcards=None):
    times = sorted({exptime_label(t) for t in raw_frames_table("dark")["exptime"]})
    return [WORK / "masters" / f"dark_{t}s.fits" for t in times]


def flat_filters():
    return sorted(set(raw_frames_table("flat")["filter"]))


def master_flats(wildcards=None):
    return [WORK / "masters" / f"flat_{f}.fits" for f in flat_filters()]


def master_flat_for(filter):
    """The master flat of a filter, or [] when the night has no flats in it."""
    return (
        [WORK / "masters" / f"flat_{filter}.fits"] if filter in flat_filters() else []
    )


def flat_qc_tables(wildcards=None):
    return [WORK / "qc" / f"flat_frames_{f}.ecsv" for f in flat_filters()]


# ---- Light frames and targets. -------------------------------------------------------------
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
    """File-safe names of the targets (inventory column ``target``; every path uses them)."""
    return sorted(set(raw_frames_table("light")["target"]))


def object_name(target):
    """The OBJECT as the headers write it, for a file-safe target name."""
    rows = raw_frames_table("light")
    names = rows["object"][rows["target"] == target]
    return str(names[0]) if len(names) else target


def target_config(target):
    """The configuration of a target, found by its header name or its file-safe name."""
    targets = config.get("targets") or {}
    original = object_name(target)
    for name, section in targets.items():
        if name in (target, original) or safe_name(name) == target:
            return section
    return {}


def object_centre(target):
    """Target position from the configuration, else the median header pointing (rounded, so
    that adding a frame does not move it)."""
    section = target_config(target)
    if section:
        return float(section["ra"]), float(section["dec"])
    rows = raw_frames_table("light")
    rows = rows[rows["target"] == target]
    return (
        round(float(np.nanmedian(rows["ra"])), 3),
        round(float(np.nanmedian(rows["dec"])), 3),
    )


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
    """The file-safe target name of a light frame."""
    return str(light_row(stem)["target"])


def frame_info(stem):
    """Inventory values of a light frame that its per-frame jobs need. They are parameters of
    those jobs, so a changed header reruns that frame's jobs only."""
    row = light_row(stem)
    return {
        "filter": str(row["filter"]),
        "exptime": float(row["exptime"]),
        "mjd": float(row["mjd"]),
        "object": str(row["object"]),
        "target": str(row["target"]),
    }


# ---- Astrometry: the frames solve-field runs on, the frames of a target. -------------------
def solve_field_wanted(stem):
    """'yes' when solve-field runs on this frame (astrometry.solve_field), else 'no'."""
    from aifa_steps.astrometry.chain import solve_field_selection

    rows = raw_frames_table("light")
    chosen = solve_field_selection(
        rows["stem"], rows["target"], rows["mjd"], config["astrometry"]["solve_field"]
    )
    return "yes" if stem in chosen else "no"


def target_stems(target):
    rows = raw_frames_table("light")
    return sorted(rows["stem"][rows["target"] == target])


def target_frames(target):
    """Stem, time and header pointing of each light frame of a target (the chain's
    parameters: a changed header reruns its target's chain)."""
    return [
        {
            "stem": s,
            "path": str(light_row(s)["path"]),
            "mjd": float(light_row(s)["mjd"]),
            "hint": pointing_hint(s, config["astrometry"]["search_radius_deg"]),
            "solve": solve_field_wanted(s),
        }
        for s in target_stems(target)
    ]


def solve_files(kind):
    return lambda wc: [
        WORK / "astrometry" / "solve" / f"{s}.{kind}" for s in target_stems(wc.target)
    ]


# ---- After the astrometry: solved frames, targets with photometry. -------------------------
@functools.lru_cache
def _read_status(path, mtime):
    from astropy.table import Table

    return Table.read(path)


def astrometry_status_table():
    inventory_table()  # first, so that inputs and parameters wait for the same checkpoint
    path = checkpoints.astrometry_status.get().output.table
    return _read_status(path, os.path.getmtime(path))


# Rules whose inputs follow from the astrometry status take it as an ``ancient`` input: a
# dependency (so that Snakemake re-reads their inputs when the status checkpoint reruns in the
# same invocation) whose time stamp alone reruns nothing.
ASTROMETRY_STATUS = ancient(WORK / "astrometry" / "status.ecsv")


def solved_stems():
    """Stems whose astrometry succeeded (waits for the astrometry_status checkpoint)."""
    table = astrometry_status_table()
    return sorted(table["stem"][table["solved"]])


def solved_frames_table():
    """Solved rows of the astrometry status with the inventory's target, filter and exposure
    time (empty when nothing was solved)."""
    from astropy.table import join

    status = astrometry_status_table()
    status = status[status["solved"]]
    lights = raw_frames_table("light")
    if len(status) == 0:
        return lights["stem", "target", "filter", "exptime"][:0]
    return join(status, lights["stem", "filter", "exptime"], keys="stem")


def photometry_objects():
    """Targets with at least one solved frame (the others get no photometry)."""
    return sorted(set(solved_frames_table()["target"]))


def photometry_stems(obj):
    rows = solved_frames_table()
    return sorted(rows["stem"][rows["target"] == obj])


def uses_psf(obj):
    """True when a target's catalogue magnitudes come from PSF fits (photometry.method)."""
    from aifa_steps.photometry.settings import photometry_method

    return photometry_method(config["photometry"], target_config(obj)) == "psf"


def psf_tables(obj):
    """The PSF photometry of a target's solved frames (none when it uses apertures)."""
    if not uses_psf(obj):
        return []
    return [
        WORK / "photometry" / obj / "psf" / f"{s}.ecsv" for s in photometry_stems(obj)
    ]


def reference_frame(obj):
    """The configured reference frame of a target if it was solved, else the automatic one."""
    from aifa_steps.photometry.reference import choose_reference_frame

    rows = solved_frames_table()
    rows = rows[rows["target"] == obj]
    requested = target_config(obj).get("reference_frame")
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
    return sorted(set(rows["filter"][rows["target"] == obj]))


def _stack_rows(obj, filter):
    from aifa_steps.products.stack_files import select_stack_frames

    rows = solved_frames_table()
    rows = rows[rows["target"] == obj]
    return select_stack_frames(rows, filter, config["stacks"]["max_frames"])


def stack_stems(obj, filter):
    """The best-seeing solved frames of a target in one filter (at most stacks.max_frames)."""
    return list(_stack_rows(obj, filter)["stem"])


def stack_frame_rows(obj, filter):
    """``[stem, exptime]`` of the frames of `stack_stems` (a parameter of the stack)."""
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
    names = {
        "cluster": ("catalogue.ecsv", "cmd.png"),
        "transit": ("lightcurve.ecsv", "transit_fit.json", "lightcurve.png"),
    }
    products = []
    for obj in photometry_objects():
        kind_products = names.get(target_config(obj).get("kind"), ())
        stacks = [f"stack_{f}.fits" for f in object_filters(obj)]
        for name in (*kind_products, *stacks, "color.png"):
            products.append(WORK / "products" / obj / name)
    return products


def zeropoint_table(wildcards=None):
    """The night's zero points, once anything was solved ([] for a night where nothing was)."""
    return [WORK / "zeropoints.ecsv"] if solved_stems() else []


def calibration_qc_table(wildcards=None):
    """The calibrated frames' statistics, once the night has lights ([] otherwise)."""
    return [WORK / "qc" / "calibrated_frames.ecsv"] if light_stems() else []


def summary_products(wildcards=None):
    """What the results summary reads and links: the science products, the night's QC figures."""
    read = ("transit_fit.json", "lightcurve.ecsv", "catalogue.ecsv")
    products = [p for p in science_products() if p.name in read or p.suffix == ".png"]
    night = []
    if light_stems():
        night += [WORK / "qc" / "calibrated_frames.png", WORK / "qc" / "astrometry.png"]
    if zeropoint_table():
        night.append(WORK / "qc" / "zeropoints.png")
    return products + night + [WORK / "qc" / "night_summary.html"]


def night_targets(wildcards=None):
    """Everything the night can produce: each stage only when the one before left something
    to work on, so that a night where nothing solves still ends with its summary."""
    targets = [
        WORK / "inventory.ecsv",
        WORK / "qc" / "inventory.html",
        WORK / "night_status.ecsv",
        WORK / "qc" / "night_summary.html",
        WORK / "summary.html",
        WORK / "qc" / "masters.ecsv",
        WORK / "qc" / "camera.ecsv",
        WORK / "astrometry" / "status.ecsv",
        WORK / "astrometry" / "plots",
    ]
    return targets + zeropoint_table() + photometry_products() + science_products()


# ---- The job server: Python jobs start warm (aifa_steps.core.jobserver). -------------------
_JOB_SERVER = {}


def job_server_wanted():
    """Whether this run starts a job server: on (job_server), local execution, the jobs in
    this Python (no conda, container or module environments)."""
    deployment = getattr(workflow, "deployment_settings", None)
    methods = getattr(deployment, "deployment_method", None) or ()
    return (
        bool(config.get("job_server", True))
        and workflow.local_exec
        and not workflow.remote_exec
        and not methods
    )


def start_job_server():
    if not job_server_wanted():
        return
    from aifa_steps.core.jobserver import ENV_SOCKET, start_server

    process, path = start_server(LOGS / "job_server.log", LOGS / "job_server.tsv")
    _JOB_SERVER["process"] = process
    os.environ[ENV_SOCKET] = path


def stop_job_server():
    from aifa_steps.core.jobserver import ENV_SOCKET, stop_server

    stop_server(_JOB_SERVER.pop("process", None))
    os.environ.pop(ENV_SOCKET, None)
