"""Score the stacks of a reduced simulated night against the simulator's truth.

For every ``products/<object>/stack_<filter>.fits`` it prints, for isolated unsaturated true
stars well inside the grid: the offset between the stack's centroid (2-D Gaussian) and the
true position through the stack's WCS (median, 90th percentile, mean dx/dy in pixels), and
the magnitude from ``MAGZPT`` and a 16-pixel aperture minus the true magnitude (median, which
also holds the light outside 16 px and of faint neighbours).

Usage::

    python bench/score_stacks.py data/demo_night results/demo_night
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from photutils.aperture import CircularAperture, aperture_photometry
from photutils.centroids import centroid_2dg, centroid_sources


def isolated_stars(stars: Table, wcs: WCS, shape, band: str, bright: float, faint: float):
    """Pixel positions and magnitudes of true stars without a bright neighbour within 15 px."""
    x, y = wcs.world_to_pixel_values(stars["ra"], stars["dec"])
    mags = np.asarray(stars[band], float)
    ny, nx = shape
    inside = (x > 30) & (x < nx - 30) & (y > 30) & (y < ny - 30)
    chosen = np.flatnonzero(inside & (mags > bright) & (mags < faint))
    alone = [
        k
        for k in chosen
        if np.count_nonzero((np.hypot(x - x[k], y - y[k]) < 15.0) & (mags < mags[k] + 4.0)) == 1
    ]
    return x[alone], y[alone], mags[alone]


def score(path: Path, stars: Table, bright: float, faint: float) -> str:
    with fits.open(path) as hdul:
        image = np.nan_to_num(hdul[0].data.astype(float))
        header = hdul[0].header
    band = str(header["FILTER"])
    wcs = WCS(header)
    x, y, mags = isolated_stars(stars, wcs, image.shape, band, bright, faint)
    if len(x) == 0:
        return f"{path}: no isolated star in {bright}-{faint} mag"
    cx, cy = centroid_sources(image, x, y, box_size=11, centroid_func=centroid_2dg)
    offset = np.hypot(cx - x, cy - y)
    p90 = np.percentile(offset, 90)
    line = (
        f"{header.get('OBJECT', '?'):10s} {band:3s} frames {header['NCOMBINE']:3d}  stars "
        f"{len(x):4d}  offset median {np.median(offset):.3f} px, 90 % {p90:.3f} px, "
        f"mean dx {np.mean(cx - x):+.3f} dy {np.mean(cy - y):+.3f}"
    )
    if "MAGZPT" in header:
        sums = aperture_photometry(image, CircularAperture(np.c_[x, y], r=16.0))["aperture_sum"]
        diff = header["MAGZPT"] - 2.5 * np.log10(np.asarray(sums, float)) - mags
        line += f"  mag(16 px) - true: median {np.nanmedian(diff):+.3f}"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("night", type=Path, help="simulated night (with truth/)")
    parser.add_argument("work", type=Path, help="its reduction (work_dir)")
    parser.add_argument("--bright", type=float, default=12.0, help="brightest magnitude used")
    parser.add_argument("--faint", type=float, default=15.5, help="faintest magnitude used")
    args = parser.parse_args()
    stars = Table.read(args.night / "truth" / "stars.ecsv")
    for path in sorted((args.work / "products").glob("*/stack_*.fits")):
        print(score(path, stars, args.bright, args.faint))


if __name__ == "__main__":
    main()
