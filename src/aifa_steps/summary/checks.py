"""Problems that stop a night early, each found once and before the work it would spoil.

- configuration that contradicts itself, and programs or index files the night needs but
  this machine lacks: `config_problems` and `missing_tools`, checked before any job starts;
- targets and filters of the configuration that the night has no frames of:
  `config_warnings` (logged, the night goes on);
- a night whose light frames are all excluded, or whose inventory shows a problem the
  configuration declares fatal: `inventory_verdict`, checked as soon as the inventory exists.

`fix_hint` and `reason_counts` turn the reasons frames were left out into advice, here and in
the night's status (`aifa_steps.summary.status`). Every Snakemake process imports this module
while it parses the workflow and checks the configuration: astropy is only imported for type
checking (``tests/test_parse_imports.py``).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from aifa_steps.core.formats import Reason, safe_name
from aifa_steps.photometry.settings import catalogue_aperture_key

if TYPE_CHECKING:
    from astropy.table import Table

__all__ = [
    "TOOLS",
    "config_problems",
    "config_warnings",
    "fix_hint",
    "inventory_verdict",
    "missing_tools",
    "reason_counts",
    "text_filled",
]

#: Programs the workflow calls: (program, Debian package, what for, needed only when).
TOOLS = (
    ("solve-field", "astrometry.net", "astrometric solutions", None),
    ("source-extractor", "source-extractor", "the source lists solve-field reads", None),
    ("build-astrometry-index", "astrometry.net", "index files", "build_index"),
)


def missing_tools(config: Mapping, which=shutil.which) -> list[str]:
    """Messages for the programs the configuration needs that are not installed.

    Parameters
    ----------
    config : mapping
        The workflow configuration.
    which : callable
        Program lookup (``shutil.which``; replaceable in tests).
    """
    astro = config.get("astrometry", {})
    problems = []
    for program, package, purpose, only_when in TOOLS:
        if only_when and not astro.get(only_when, True):
            continue
        if which(program) is None:
            problems.append(
                f"{program} is not installed (needed for {purpose}). Install it with "
                f"'sudo apt-get install {package}' (Debian/Ubuntu), or 'make setup', or use "
                "the conda environment of environment.yml."
            )
    return problems


def _index_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.fits") if p.is_file()) if folder.is_dir() else []


def config_problems(config: Mapping, check_files: bool = True) -> list[str]:
    """Keys of the configuration that contradict each other or point at nothing.

    Parameters
    ----------
    config : mapping
        The validated workflow configuration (defaults filled in).
    check_files : bool
        Also check that files and folders named by the configuration exist (off while the
        simulated night that holds them is still to be made).

    Returns
    -------
    list of str
        One message per problem, naming the keys and the fix.
    """
    problems = []
    try:
        catalogue_aperture_key(config.get("photometry", {}), config.get("zeropoints", {}))
    except ValueError as error:
        problems.append(str(error))
    astro = config.get("astrometry", {})
    dirs = [Path(d) for d in astro.get("index_dirs", [])]
    if not astro.get("build_index", True) and not dirs:
        problems.append(
            "astrometry.build_index is false and astrometry.index_dirs is empty: solve-field "
            "would have no index files. Set build_index: true, or install index files "
            "(Debian: sudo apt-get install astrometry-data-tycho2) and set "
            "index_dirs: [/usr/share/astrometry]"
        )
    for folder in dirs:
        if not folder.is_dir():
            problems.append(
                f"astrometry.index_dirs names {folder}, which does not exist (Debian's "
                "astrometry-data-tycho2 packages install to /usr/share/astrometry)"
            )
        elif not _index_files(folder):
            problems.append(
                f"astrometry.index_dirs names {folder}, which holds no index files (*.fits): "
                "install them (Debian: sudo apt-get install astrometry-data-tycho2) or "
                "remove the folder from the list"
            )
    if not astro.get("max_rms_arcsec", 0.5) and not astro.get("max_rms_pixels", 0.5):
        problems.append(
            "astrometry.max_rms_arcsec and astrometry.max_rms_pixels are both 0: every frame "
            "would fail its astrometry. Set one of them, e.g. max_rms_pixels: 0.5"
        )
    refcat = config.get("reference_catalogue", {})
    if refcat.get("source", "vizier") == "file":
        path = refcat.get("path")
        if not path:
            problems.append(
                "reference_catalogue.source is 'file' but reference_catalogue.path is not set"
            )
        elif check_files and not Path(path).is_file():
            problems.append(
                f"reference_catalogue.path {path} does not exist (source: file); give the "
                "catalogue's path, or set reference_catalogue.source: vizier"
            )
    for name, target in (config.get("targets") or {}).items():
        if target.get("kind") == "transit":
            ephemeris = target.get("ephemeris") or {}
            missing = [k for k in ("t0_bjd_tdb", "period_days") if k not in ephemeris]
            if missing:
                problems.append(
                    f"targets.{name} is a transit target but targets.{name}.ephemeris lacks "
                    f"{' and '.join(missing)}: the transit fit needs them (or set kind: field)"
                )
    return problems


def _target_keys(name: str) -> set[str]:
    return {str(name).strip(), safe_name(name)}


def config_warnings(config: Mapping, inventory: Table) -> list[str]:
    """Targets and filters of the configuration that the night has no frames of.

    Parameters
    ----------
    config : mapping
        The workflow configuration.
    inventory : astropy.table.Table
        The night's inventory.
    """
    warnings = []
    inventory = text_filled(inventory)
    lights = inventory[(inventory["imagetyp"] == "light") & inventory["used"]]
    observed: dict[str, set[str]] = {}
    for row in lights:
        for key in _target_keys(row["object"]):
            observed.setdefault(key, set()).add(str(row["filter"]))
    for name, target in (config.get("targets") or {}).items():
        filters = set().union(*(observed.get(k, set()) for k in _target_keys(name)))
        if not filters:
            warnings.append(
                f"targets.{name} has no usable light frame in this night (OBJECT values of "
                f"the night: {sorted(set(lights['object'])) or 'none'})"
            )
            continue
        for band in target.get("filters", []) or []:
            if band not in filters:
                warnings.append(
                    f"targets.{name}.filters lists {band}, but the night has no {name} frames "
                    f"in {band} (only {sorted(filters)})"
                )
    return warnings


#: What to do about the usual reasons a frame is excluded (reason code -> fix), tried in order.
_HINTS = (
    (
        Reason.MISSING_KEYWORD,
        "set the headers section of the configuration to the keywords your camera writes "
        "(fitsheader FILE lists them; python -m aifa_steps.init RAW_DIR drafts it)",
    ),
    (
        Reason.UNKNOWN_FRAME_TYPE,
        "add the header value to frame_types (e.g. frame_types.light), or sort the files "
        "into BIAS/ DARK/ FLAT/ LIGHT/ folders",
    ),
    (Reason.UNREADABLE_FITS, "copy the files again from the camera computer"),
    (Reason.TRUNCATED, "copy the files again from the camera computer"),
    (
        Reason.NO_TIME_OF_DAY,
        "set headers.time_obs to the keyword that holds the time of the exposure start",
    ),
    (Reason.READOUT, "check the readout section (overscan and trim sections of the frames)"),
    (Reason.UNREADABLE_VALUE, "check headers.date_obs and headers.date_obs_utc_offset_hours"),
    (
        Reason.MIXED_GEOMETRY,
        "reduce frames of one binning and read-out area per night (one configuration each)",
    ),
    (Reason.EXPOSURE_TIME, "check headers.exptime: it must name the exposure time in seconds"),
    (Reason.NOT_AN_IMAGE, "these files hold no image; leave them out of raw_dir"),
    (Reason.DUPLICATE_NAME, "give every raw file its own name"),
)


def fix_hint(reason: str) -> str:
    """What to do about a reason of the inventory ('' when there is no general advice)."""
    for code, hint in _HINTS:
        if code.found_in(reason):
            return hint
    return ""


def reason_counts(reasons: Iterable[str], indent: str = "  ") -> str:
    """One line per reason with its count, most frequent first, each with its fix."""
    counts = Counter(str(r) or "(no reason)" for r in reasons)
    lines = []
    for reason, n in counts.most_common():
        hint = fix_hint(reason)
        lines.append(f"{indent}{n} x {reason}" + (f"\n{indent}    fix: {hint}" if hint else ""))
    return "\n".join(lines)


def inventory_verdict(inventory: Table, fatal: Iterable[str], where: str | Path) -> str | None:
    """The message that stops the night after its inventory, or None when it can go on.

    The night stops when no light frame is usable, or when the inventory found a problem
    that ``inventory.fatal`` lists.

    Parameters
    ----------
    inventory : astropy.table.Table
        The inventory (its ``meta["problems"]`` holds ``[category, message]`` pairs).
    fatal : iterable of str
        The categories the configuration declares fatal.
    where : str or Path
        The inventory's path, named in the message.
    """
    problems = [tuple(p) for p in inventory.meta.get("problems", [])]
    chosen = [(c, m) for c, m in problems if c in set(fatal)]
    if chosen:
        lines = [f"  {m} [{c}]" for c, m in chosen]
        return (
            "This night stops here: the inventory found problems that the configuration's "
            "inventory.fatal declares fatal:\n"
            + "\n".join(lines)
            + f"\nEvery file and its reason: {where}. Fix: add the missing frames to the raw "
            "folder, or remove the problem from inventory.fatal to reduce the night without "
            "them."
        )
    inventory = text_filled(inventory)
    lights = inventory[inventory["imagetyp"] == "light"]
    if len(lights) == 0:
        kinds = Counter(str(k) for k in inventory["imagetyp"])
        return (
            f"This night has no light frame: the inventory of {len(inventory)} files found "
            f"{dict(kinds)}. Fix: check raw_dir, and that frame_types.light lists the value "
            "your camera writes for science frames (or put them in a LIGHT/ folder). "
            f"Every file: {where}."
        )
    if not lights["used"].any():
        return (
            f"No light frame of this night can be used: all {len(lights)} are excluded.\n"
            + reason_counts(lights["reason"])
            + f"\nEvery file and its reason: {where} (and qc/inventory.html)."
        )
    return None


def text_filled(table: Table | None) -> Table | None:
    """The table with masked text (empty strings read back from ECSV) as ``''``.

    ECSV writes an empty string as a missing value, which astropy reads back masked (``--``).
    """
    if table is None or not table.has_masked_values:
        return table
    table = table.copy()
    for name in table.colnames:
        column = table[name]
        if getattr(column, "mask", None) is not None and column.dtype.kind in "US":
            table[name] = column.filled("")
    return table
