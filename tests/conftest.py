"""Shared fixtures: one simulated tiny night per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from astropy.table import Table

from aifa_steps.simulate import get_preset, simulate_night

REPO = Path(__file__).resolve().parents[1]
TINY_SEED = 7


@pytest.fixture(scope="session")
def tiny_night(tmp_path_factory) -> Path:
    """A simulated tiny night (read-only for tests: copy before changing anything)."""
    out = tmp_path_factory.mktemp("nights") / "tiny"
    simulate_night(
        out, get_preset("tiny"), seed=TINY_SEED, jobs=2, work_dir=str(out.parent / "tiny_reduced")
    )
    return out


@pytest.fixture(scope="session")
def tiny_frames(tiny_night) -> Table:
    return Table.read(tiny_night / "truth" / "frames.ecsv")


@pytest.fixture(scope="session")
def tiny_stars(tiny_night) -> Table:
    return Table.read(tiny_night / "truth" / "stars.ecsv")


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
    import numpy as np
    from astropy.io import fits

    bias = fits.getdata(night / "truth" / "bias.fits").astype(np.float64)
    rate = fits.getdata(night / "truth" / "dark_rate.fits").astype(np.float64)
    flat = fits.getdata(night / "truth" / f"flat_{row['filter']}.fits").astype(np.float64)
    raw = fits.getdata(night / row["file"]).astype(np.float64)
    return (raw - bias - rate * row["exptime"]) / flat, raw, flat
