"""Score the astrometry of a reduced simulated night against the simulator's true WCS.

For every solved frame (``astrometry/status.ecsv``) it compares the solution
(``astrometry/<stem>.fits``) with ``truth/wcs/<stem>.fits`` on a 25 x 25 grid that includes the
corners and prints the RMS and largest separation in arcsec: per how the frame got its start
(``solve-field`` or matched to a neighbour) the number of frames, the median and the largest
RMS, and the largest separation anywhere; then the frames that were not solved.

Usage::

    python bench/score_astrometry.py data/demo_night results/demo_night
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from aifa_steps.astrometry.judge import wcs_separation
from aifa_steps.core.frames import solution_wcs


def score(night: Path, work: Path) -> Table:
    """One row per solved frame: ``stem``, ``method``, ``rms_arcsec``, ``max_arcsec``."""
    status = Table.read(work / "astrometry" / "status.ecsv")
    rows = []
    for row in status[status["solved"]]:
        stem = str(row["stem"])
        header = fits.getheader(work / "astrometry" / f"{stem}.fits")
        shape = (int(header["IMAGEH"]), int(header["IMAGEW"]))
        truth = WCS(fits.getheader(night / "truth" / "wcs" / f"{stem}.fits"))
        rms, worst = wcs_separation(solution_wcs(header), truth, shape)
        method = "solve-field" if str(row["method"]) == "solve-field" else "matched"
        rows.append({"stem": stem, "method": method, "rms_arcsec": rms, "max_arcsec": worst})
    return Table(rows=rows) if rows else Table(names=("stem", "method", "rms_arcsec", "max_arcsec"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("night", type=Path)
    parser.add_argument("work", type=Path)
    args = parser.parse_args()
    table = score(args.night, args.work)
    for method in ("solve-field", "matched"):
        mine = table[table["method"] == method]
        if len(mine):
            print(
                f"{method:12s} {len(mine):4d} frames: RMS vs truth median "
                f'{np.median(mine["rms_arcsec"]):.4f}", largest {mine["rms_arcsec"].max():.4f}"; '
                f'largest separation {mine["max_arcsec"].max():.4f}"'
            )
    status = Table.read(args.work / "astrometry" / "status.ecsv")
    for row in status[~status["solved"]]:
        print(f"not solved: {row['stem']} ({row['reason']})")


if __name__ == "__main__":
    main()
