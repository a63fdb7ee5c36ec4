"""Small nights with one fault each, and running the workflow on them.

A *micro night* is cut from the tiny simulated night (640 x 448 px): 3 biases, 2 darks, 2 r
flats and 3 clear Qatar-1 frames in r, with its reference catalogue. Each fault case copies
it, applies one fault, runs Snakemake on it in a subprocess as a user would, and checks the
outcome. Every case also checks that the raw files were not modified.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from astropy.io import fits
from astropy.table import Table

from aifa_steps.summary.checks import text_filled

from ..helpers import REPO, snakemake_command

#: Frames of the tiny night (seed 7) that make a micro night: (folder, index in folder).
MICRO = {"BIAS": [0, 1, 2], "DARK": [0, 1], "FLAT_r": [0, 1]}
N_LIGHTS = 3


@dataclass
class Night:
    """A fault case's night: raw folder, work folder, configuration file."""

    raw: Path
    work: Path
    config: Path

    def lights(self) -> list[Path]:
        return sorted((self.raw / "LIGHT").glob("*.fit*"))

    def cfg(self) -> dict:
        return yaml.safe_load(self.config.read_text())

    def set_cfg(self, **changes) -> None:
        """Replace top-level sections of the configuration (``None`` removes one)."""
        cfg = self.cfg()
        for key, value in changes.items():
            if value is None:
                cfg.pop(key, None)
            else:
                cfg[key] = value
        self.config.write_text(yaml.safe_dump(cfg))

    def table(self, name: str) -> Table:
        return Table.read(self.work / name)

    def status(self) -> Table:
        """``night_status.ecsv`` with masked text as ''."""
        return text_filled(Table.read(self.work / "night_status.ecsv"))

    def row(self, stem: str):
        status = self.status()
        match = status[status["stem"] == stem]
        assert len(match) == 1, (stem, list(status["stem"]))
        return match[0]


def checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below ``folder`` (the raw night must never change)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def make_micro_base(tiny: Path, out: Path) -> Path:
    """Copy the micro night's frames out of the tiny night; write its configuration."""
    frames = Table.read(tiny / "truth" / "frames.ecsv")
    chosen = []
    for kind in ("BIAS", "DARK"):
        rows = frames[frames["imagetyp"] == kind]
        chosen += [rows["file"][k] for k in MICRO[kind]]
    flats = frames[(frames["imagetyp"] == "FLAT") & (frames["filter"] == "r")]
    flats = flats[flats["defect"] == "none"]
    chosen += [flats["file"][k] for k in MICRO["FLAT_r"]]
    lights = frames[
        (frames["imagetyp"] == "LIGHT")
        & (frames["object"] == "Qatar-1")
        & (frames["defect"] == "none")
        & ~np.asarray(frames["cloudy"], bool)
    ]
    picks = np.linspace(0, len(lights) - 1, N_LIGHTS).round().astype(int)
    chosen += [lights["file"][k] for k in picks]
    raw = out / "raw"
    for name in chosen:
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tiny / name, raw / name)
    shutil.copy2(tiny / "refcat.ecsv", raw / "refcat.ecsv")
    cfg = yaml.safe_load((tiny / "config.yaml").read_text())
    cfg["targets"] = {
        "Qatar-1": {**cfg["targets"]["Qatar-1"], "kind": "field"},
    }
    cfg["targets"]["Qatar-1"].pop("ephemeris", None)
    cfg["stacks"] = {"max_frames": 3}
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    return out


def new_night(base: Path, where: Path) -> Night:
    """A fresh copy of the micro night (raw files and configuration) in ``where``."""
    raw, work = where / "raw", where / "work"
    shutil.copytree(base / "raw", raw)
    cfg = yaml.safe_load((base / "config.yaml").read_text())
    cfg["raw_dir"], cfg["work_dir"] = str(raw), str(work)
    cfg["reference_catalogue"] = {"source": "file", "path": str(raw / "refcat.ecsv")}
    config = where / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return Night(raw, work, config)


def command(night: Night, *targets: str, cores: int | None = None, extra: tuple = ()) -> list:
    """The Snakemake command line a user would type for ``night`` (targets relative to the
    work folder; default: the whole night)."""
    if cores is None:  # two cases at a time under pytest-xdist: one core each
        cores = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2
    return snakemake_command(
        night.config.parent,
        *(night.work / t for t in targets),  # before --configfile, which takes several
        "--cores",
        cores,
        "--configfile",
        night.config,
        *extra,
    )


def run(
    night: Night,
    *targets: str,
    env: dict | None = None,
    check: bool = True,
    cores: int | None = None,
    extra: tuple = (),
) -> subprocess.CompletedProcess:
    """Run the workflow on a night as a user would; return the finished process."""
    cmd = command(night, *targets, cores=cores, extra=extra)
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=full_env)
    proc.text = proc.stdout + proc.stderr  # type: ignore[attr-defined]
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.text[-6000:]}")
    return proc


#: What a case needs to show that the night went on: the status of every frame and the
#: photometry of the frames that are left (stacks, previews and QC figures are left out to
#: keep the suite fast; the clean micro night and the lights-only night make everything).
NIGHT_GOES_ON = ("night_status.ecsv", "photometry/Qatar-1/magnitudes.ecsv")


def rewrite_light(path: Path, data=None, dtype=None, **header_changes) -> None:
    """Rewrite a raw light (a fault applied on purpose to the copy of a night)."""
    with fits.open(path) as hdul:
        header = hdul[0].header.copy()
        image = hdul[0].data.copy()
    if data is not None:
        image = data(image) if callable(data) else data
    if dtype is not None:
        image = image.astype(dtype)
        for key in ("BZERO", "BSCALE"):
            header.remove(key, ignore_missing=True)
    for key, value in header_changes.items():
        key = key.replace("_", "-") if key in ("DATE_OBS",) else key
        if value is None:
            header.remove(key, ignore_missing=True)
        else:
            header[key] = value
    path.unlink()
    fits.PrimaryHDU(image, header).writeto(path)
