"""What the workflow reads of the inventory stage while it parses, without heavy imports.

Every Snakemake process imports this module when it parses the workflow (on a cluster, every
job does so twice): `ReadoutSettings`, the keys of the ``readout`` section, and
`find_raw_files`, the inventory's inputs. The modules that do the work
(`aifa_steps.inventory.readout`, `aifa_steps.inventory.table`) import astropy and ccdproc, and
re-export them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from aifa_steps.core.config import StepSettings
from aifa_steps.core.formats import is_fits_name

__all__ = ["OVERSCAN_MODELS", "ReadoutSettings", "find_raw_files"]

#: Overscan models: the median of every row (or column) as it is, or a polynomial fit to them.
OVERSCAN_MODELS = ("row", "poly")


@dataclass(frozen=True)
class ReadoutSettings(StepSettings):
    """Overscan and trim settings (config section ``readout``).

    ``overscan`` and ``trim`` are ``header`` (the frame's BIASSEC, TRIMSEC/DATASEC, if any),
    ``none``, or a FITS section; ``model`` is one of `OVERSCAN_MODELS`, ``order`` the order of
    the ``poly`` model.
    """

    section: ClassVar[str] = "readout"

    overscan: str = "header"
    trim: str = "header"
    model: str = "poly"
    order: int = 0


def find_raw_files(raw_dir: str | Path) -> list[Path]:
    """All FITS files below ``raw_dir`` (recursively), sorted by path."""
    root = Path(raw_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"raw folder {root} does not exist or is not a folder")
    files = [
        p
        for p in root.rglob("*")
        if p.is_file() and is_fits_name(p) and "truth" not in p.relative_to(root).parts
    ]
    return sorted(files)
