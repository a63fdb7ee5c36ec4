"""The workflow run once per test session on the tiny night, shared by the per-stage modules
of this folder (each checks what its stage made; none of them changes the run's files)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from astropy.table import Table

from aifa_steps.simulate import get_preset, plan_night

from ..helpers import DEFAULT_CONFIG, require_program, run_snakemake, write_config

#: The simulated night of the run (the workflow simulates it: its `simulate` section).
RUN_PRESET, RUN_SEED = "tiny", 3


@dataclass
class TinyRun:
    """A finished run: its folders, configuration, and the tables most checks read."""

    tmp: Path
    raw: Path
    work: Path
    config: Path
    cloudy: str  # the frame lost to clouds, asked for as Qatar-1's reference frame
    frames: Table = field(init=False)  # the simulator's truth, one row per raw file
    inventory: Table = field(init=False)
    status: Table = field(init=False)  # astrometry/status.ecsv
    truth: dict = field(init=False)  # stem -> row of `frames`

    def __post_init__(self):
        self.frames = Table.read(self.raw / "truth" / "frames.ecsv")
        self.inventory = Table.read(self.work / "inventory.ecsv")
        self.status = Table.read(self.work / "astrometry" / "status.ecsv")
        self.truth = {
            f.split("/")[-1].removesuffix(".fits"): row
            for f, row in zip(self.frames["file"], self.frames, strict=True)
        }

    @property
    def solved(self) -> Table:
        """Rows of the solved frames in the astrometry status."""
        return self.status[self.status["solved"]]

    @property
    def lights(self) -> Table:
        """Inventory rows of the used light frames."""
        inv = self.inventory
        return inv[(inv["imagetyp"] == "light") & inv["used"]]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    """The workflow simulates and reduces the tiny night (read-only for tests)."""
    require_program("solve-field")
    tmp = tmp_path_factory.mktemp("workflow_run")
    raw, work = tmp / "raw", tmp / "work"
    default = yaml.safe_load(DEFAULT_CONFIG.read_text())
    # Ask for the frame lost to clouds as Qatar-1's reference frame: it cannot be solved, so
    # the workflow must warn and choose one itself.
    plans, _ = plan_night(get_preset(RUN_PRESET), RUN_SEED)
    cloudy = next(p for p in plans if p.cloudy).file.split("/")[-1].removesuffix(".fits")
    targets = default["targets"]
    targets["Qatar-1"]["reference_frame"] = cloudy
    # Gain and read noise unknown ('auto'): measured from the night's flat and bias pairs
    # (the simulated headers have EGAIN, which the inventory may or may not carry).
    instrument = default["instrument"]
    instrument.update(gain="auto", read_noise="auto")
    cfg = write_config(
        tmp / "tiny.yaml",
        raw_dir=str(raw),
        work_dir=str(work),
        simulate={"preset": RUN_PRESET, "seed": RUN_SEED},
        reference_catalogue={"source": "file", "path": str(raw / "refcat.ecsv")},
        targets=targets,
        instrument=instrument,
    )
    run_snakemake(tmp, "--cores", "2", "--configfile", str(cfg))
    return TinyRun(tmp, raw, work, cfg, cloudy)
