"""Helpers shared by test modules: the repository's paths, external programs, the truth of a
simulated night, WCS comparison, and running the workflow as a user would.

Test modules import these from here (never from a conftest or another test module);
conftest files hold fixtures only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from aifa_steps.astrometry.judge import wcs_separation  # noqa: F401 (tests import it here)

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
#: The one solve-field implementation; the rule solve_field, the chain and the benchmark run it too.
SOLVE_FIELD_SH = REPO / "workflow" / "scripts" / "solve_field.sh"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
#: Seed of the tiny night of the ``tiny_night`` fixture.
TINY_SEED = 7


def require_program(name: str) -> str:
    """Path of an external program; skip the test without it (fail on CI)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make setup installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def truth_calibrated(night: Path, row) -> tuple:
    """A raw frame calibrated with the true bias, dark and flat: (data, raw, flat), float64."""
    from astropy.io import fits

    bias = fits.getdata(night / "truth" / "bias.fits").astype(np.float64)
    rate = fits.getdata(night / "truth" / "dark_rate.fits").astype(np.float64)
    flat = fits.getdata(night / "truth" / f"flat_{row['filter']}.fits").astype(np.float64)
    raw = fits.getdata(night / row["file"]).astype(np.float64)
    return (raw - bias - rate * row["exptime"]) / flat, raw, flat


def night_of(reference, measured):
    """Night mean magnitudes (4 arcsec) of a target of the demo_photometry fixture."""
    from astropy.table import vstack

    from aifa_steps.photometry.magnitudes import calibrated_magnitudes, night_magnitudes
    from aifa_steps.photometry.zeropoints import frame_zeropoints

    frames = []
    for _, table in measured:
        zeropoints, _ = frame_zeropoints(table, reference)
        frames.append(calibrated_magnitudes(table, zeropoints, reference))
    return night_magnitudes(vstack(frames), reference, 4.0)


def snakemake_command(workdir, *args) -> list[str]:
    """The command line that runs the workflow in ``workdir`` with ``args``, as a user would."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(SNAKEFILE),
        "--directory",
        str(workdir),
        *(str(a) for a in args),
    ]


def run_snakemake(workdir, *args, check=True):
    """Run the workflow in ``workdir`` (a subprocess, as a user would); return the process."""
    proc = subprocess.run(
        snakemake_command(workdir, *args), capture_output=True, text=True, cwd=REPO
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def write_config(path, **changes):
    """The default configuration with top-level ``changes`` (``None`` drops a key) at ``path``."""
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    cfg.update(changes)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    path.write_text(yaml.safe_dump(cfg))
    return path
