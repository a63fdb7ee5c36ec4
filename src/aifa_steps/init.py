"""Draft a night's configuration from its raw headers: ``python -m aifa_steps.init RAW_DIR``.

Every raw file's header is read (nothing else; raw files are never modified; see
`aifa_steps.inventory.survey`) and a schema-valid configuration is written to standard output,
with comments that say what was found where and what the user still has to check or fill in::

    python -m aifa_steps.init /data/2019-03-26 > config/nights/2019-03-26.yaml
    snakemake --cores 4 --configfile config/nights/2019-03-26.yaml

Values the headers do not give are drafted so that the night still runs (gain and read noise
``auto``, measured from the data; the pixel scale from the WCS, the pixel size and focal
length, or a pixel-scale keyword; the site from the headers) and are listed on standard
error, and in the file under ``# TO CHECK``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from aifa_steps.inventory.survey import SUMMARY_MEANINGS, finite_median, survey_night

__all__ = ["draft_config", "main"]

# Folders where Debian's and astrometry.net's own installations keep index files.
INDEX_FOLDERS = (
    "/usr/share/astrometry",
    "/usr/local/astrometry/data",
    "/usr/local/share/astrometry",
)


def _index_folders() -> list[str]:
    return [d for d in INDEX_FOLDERS if any(Path(d).glob("index-*.fits"))]


def _targets(inventory) -> tuple[dict[str, dict], list[str]]:
    """Targets with their median header pointing; and the objects without a pointing."""
    lights = inventory[(inventory["imagetyp"] == "light") & inventory["used"]]
    targets: dict[str, dict] = {}
    missing: list[str] = []
    for name in sorted({str(o) for o in lights["object"]}):
        rows = lights[lights["object"] == name]
        ra, dec = finite_median(list(rows["ra"])), finite_median(list(rows["dec"]))
        if ra is None or dec is None:
            missing.append(name)
            continue
        targets[name] = {
            "kind": "field",
            "ra": round(ra, 5),
            "dec": round(dec, 5),
            "filters": sorted({str(f) for f in rows["filter"]}),
        }
    return targets, missing


def _count_lines(counter: Mapping, limit: int = 8) -> str:
    items = Counter(counter).most_common(limit)
    return ", ".join(f"{k} ({n})" for k, n in items)


def draft_config(raw_dir: str | Path, work_dir: str | None = None) -> tuple[str, list[str]]:
    """A commented, schema-valid configuration for the night in ``raw_dir``.

    Parameters
    ----------
    raw_dir : str or Path
        The night folder (as it should appear in the configuration).
    work_dir : str, optional
        Folder for the products (default ``results/<name of raw_dir>``).

    Returns
    -------
    text : str
        The YAML configuration with comments.
    to_check : list of str
        What the user must check or fill in (also in the text, under ``# TO CHECK``).
    """
    survey = survey_night(raw_dir)
    inventory = survey.inventory
    used = inventory[inventory["used"]]
    to_check: list[str] = []
    name = Path(raw_dir).resolve().name
    config: dict[str, object] = {
        "raw_dir": str(raw_dir),
        "work_dir": work_dir or f"results/{name}",
    }

    # Camera.
    instrument: dict[str, object] = {}
    names = [
        survey.values[m].most_common(1)[0][0]
        for m in ("telescope", "instrument")
        if survey.values.get(m)
    ]
    instrument["name"] = " + ".join(names) or "camera"
    # Plausible camera values; NINA's GAIN, for example, is the gain setting (e.g. 100).
    plausible = {"gain": (0.02, 20.0), "read_noise": (0.1, 50.0)}
    for meaning, unit in (("gain", "e-/ADU"), ("read_noise", "e-")):
        value = finite_median(survey.numbers.get(meaning, []))
        low, high = plausible[meaning]
        if value is not None and low <= value <= high:
            instrument[meaning] = round(value, 4)
            continue
        instrument[meaning] = "auto"
        found = "" if value is None else f" ({value:g} is not in {unit}: a camera setting?)"
        to_check.append(
            f"instrument.{meaning}: not in the headers{found}; 'auto' measures it from the "
            f"data ({unit}); write the camera's value if you know it"
        )
    # The best source any frame has: a celestial WCS, else optics, else a scale keyword.
    ranked = ("the headers' WCS", "XPIXSZ / FOCALLEN", "a pixel-scale keyword")
    found = {src for _, src in survey.pixel_scales}
    sources = next((src for src in ranked if src in found), "")
    scale = finite_median([s for s, src in survey.pixel_scales if src == sources])
    if scale is not None:
        instrument["pixel_scale"] = round(scale, 4)
        to_check.append(
            f"instrument.pixel_scale: {scale:.4f} arcsec/px from {sources}; solve-field "
            "searches +-10 % around it (astrometry.scale_tolerance)"
        )
    else:
        instrument["pixel_scale"] = 1.0
        to_check.append(
            "instrument.pixel_scale: NOT IN THE HEADERS, set to 1.0 as a placeholder: write "
            "206.265 * pixel size [um] / focal length [mm] (binned pixels)"
        )
    saturation = finite_median(survey.numbers.get("saturation", [])) or survey.saturation_guess
    instrument["saturation"] = float(saturation or 65535.0)
    if not survey.numbers.get("saturation"):
        to_check.append(
            f"instrument.saturation: {instrument['saturation']:g} ADU from the data type; a "
            "12- or 14-bit camera saturates lower"
        )
    config["instrument"] = instrument

    # Site.
    site: dict[str, object] = {"name": "observatory"}
    lat = finite_median(survey.numbers.get("latitude", []))
    lon = finite_median(survey.numbers.get("longitude", []))
    elevation = finite_median(survey.numbers.get("elevation", []))
    if lat is not None and lon is not None:
        site.update(latitude=round(lat, 5), longitude=round(lon, 5))
        site["elevation"] = round(elevation, 1) if elevation is not None else 0.0
        to_check.append(
            "site: from the headers; check the sign of the longitude (east positive here)"
        )
    else:
        site.update(latitude=0.0, longitude=0.0, elevation=0.0)
        to_check.append(
            "site.latitude/longitude/elevation: NOT IN THE HEADERS, placeholders 0: airmass "
            "and barycentric times need the real values"
        )
    config["site"] = site

    headers: dict[str, object] = {"date_obs_utc_offset_hours": 0.0}
    config["headers"] = headers
    config["readout"] = {"overscan": "header", "trim": "header", "model": "poly", "order": 0}

    targets, unpointed = _targets(inventory)
    config["targets"] = targets
    for name in unpointed:
        to_check.append(
            f"targets: {name!r} has no pointing in the headers (RA/DEC, OBJCTRA/OBJCTDEC): "
            "add it under targets with kind, ra and dec in degrees (solve-field searches "
            "blindly without them)"
        )
    if targets:
        to_check.append(
            "targets: drafted as kind 'field'; make a cluster 'cluster' (catalogue and CMD) or "
            "a transit host 'transit' with its ephemeris"
        )
    light_filters = sorted({str(f) for f in used[used["imagetyp"] == "light"]["filter"]})
    folders = _index_folders()
    config["astrometry"] = {
        "build_index": True,
        "index_dirs": folders,
        "scale_tolerance": 0.1,
        "header_wcs": bool(survey.header_wcs),
        "solve_field": 10,
    }
    if survey.header_wcs:
        to_check.append(
            f"astrometry.header_wcs: {survey.header_wcs} light(s) carry a celestial WCS; it "
            "is the reference when solve-field solves none of a target's frames (offline "
            "nights); set false if it is only a rough pointing"
        )
    to_check.append(
        "astrometry.solve_field: 10 runs solve-field on every 10th frame of a target and hands "
        "its solutions on to the others by matching their stars (all: every frame)"
    )
    if not folders:
        to_check.append(
            "astrometry: no index files installed; without network install Debian's "
            "astrometry-data-tycho2 (or set index_dirs)"
        )
    config["reference_catalogue"] = {"source": "vizier", "radius_deg": 0.5}
    if light_filters:
        config["photometry"] = {"reference_filter": light_filters[0]}

    # Comments: what was found.
    lines = [
        f"# Night configuration drafted by `python -m aifa_steps.init {raw_dir}`",
        f"# from {survey.n_files} raw files ({len(used)} usable). Check the TO CHECK notes, then:",
        "#   snakemake --cores 4 --configfile THIS_FILE",
        "#",
        "# Header keywords found (keyword (files)):",
    ]
    for meaning in SUMMARY_MEANINGS:
        found = survey.keywords.get(meaning)
        lines.append(f"#   {meaning:11s} {_count_lines(found) if found else '-- not found'}")
    lines.append(f"# Frame types: {_count_lines(survey.values.get('imagetyp', {}))}")
    lines.append(f"# Filters: {_count_lines(survey.values.get('filter', {}))}")
    kinds = Counter(str(t) for t in used["imagetyp"])
    lines.append(f"# Usable frames by type: {_count_lines(kinds)}")
    exposure = Counter(
        f"{r['imagetyp']} {float(r['exptime']):g} s" for r in used if r["imagetyp"] != "bias"
    )
    lines.append(f"# Exposure times: {_count_lines(exposure, 12)}")
    binned = Counter(f"{r['xbinning']}x{r['ybinning']}" for r in used)
    shapes = Counter(f"{r['naxis1']}x{r['naxis2']}" for r in used)
    lines.append(
        f"# Binning: {_count_lines(binned)}; image size after trim: {_count_lines(shapes)}"
    )
    lines.append(f"# Time from: {_count_lines(survey.time_sources)}")
    if survey.zone_suffix:
        lines.append(f"# {survey.zone_suffix} DATE-OBS values carry a time zone: applied")
    if survey.sections:
        lines.append(f"# Overscan/trim sections: {_count_lines(survey.sections)}")
    excluded = inventory[~inventory["used"]]
    if len(excluded):
        lines.append(
            f"# Excluded files ({len(excluded)}): {_count_lines(Counter(excluded['reason']), 5)}"
        )
    if not any(kinds.get(k) for k in ("bias", "dark", "flat")):
        lines.append("# No calibration frames: the lights are reduced without them")
    lines.append("#")
    lines.append("# TO CHECK:")
    lines.extend(f"#   - {note}" for note in to_check)
    text = "\n".join(lines) + "\n\n" + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    return text, to_check


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the drafted configuration to standard output."""
    parser = argparse.ArgumentParser(
        prog="python -m aifa_steps.init",
        description="Draft a night configuration from the raw headers (written to stdout).",
    )
    parser.add_argument("raw_dir", help="folder of the night's raw FITS files")
    parser.add_argument("--work-dir", help="folder for the products (default results/<night>)")
    args = parser.parse_args(argv)
    if not Path(args.raw_dir).is_dir():
        print(f"error: {args.raw_dir} is not a folder", file=sys.stderr)
        return 2
    try:
        text, to_check = draft_config(args.raw_dir, args.work_dir)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    print(f"drafted; {len(to_check)} value(s) to check:", file=sys.stderr)
    for note in to_check:
        print(f"  - {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
