"""Score the photometry of a reduced simulated night against the simulator's truth.

Prints, per target and aperture, how far the zero points are from the true ones, and per target
and filter the RMS of the night's mean magnitudes of isolated stars brighter than 15 mag
against their true magnitudes. The README's photometry numbers come from this script:

    .venv/bin/python bench/score_photometry.py data/demo_night results/demo_night
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from astropy.table import Table

from aifa_steps.core.formats import frame_stem
from aifa_steps.photometry.refcat import crossmatch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("night", type=Path, help="simulated night folder (with truth/)")
    parser.add_argument("work", type=Path, help="work folder of its reduction")
    parser.add_argument("--faint", type=float, default=15.0, help="faintest true magnitude")
    args = parser.parse_args()

    frames = Table.read(args.night / "truth" / "frames.ecsv")
    truth = {frame_stem(f): z for f, z in zip(frames["file"], frames["zeropoint"], strict=True)}
    zeropoints = Table.read(args.work / "zeropoints.ecsv")
    offset = np.asarray(zeropoints["zeropoint"]) - [truth[s] for s in zeropoints["stem"]]
    print("zero point - truth [mag]")
    print(
        f"{'object':10s} {'aperture':>8s} {'arcsec':>7s} {'frames':>6s} {'median':>8s} "
        f"{'max |d|':>8s} {'err':>7s}"
    )
    # Apertures by name (4, 1.5fwhm); tables of older versions have the radius only.
    names = (
        np.asarray(zeropoints["aperture"]).astype(str)
        if "aperture" in zeropoints.colnames
        else np.array([f"{r:g}" for r in zeropoints["aperture_arcsec"]])
    )
    for obj in sorted(set(zeropoints["object"])):
        mine = zeropoints["object"] == obj
        for aperture in sorted(set(names[mine]), key=lambda n: float(n.removesuffix("fwhm"))):
            sel = mine & (names == aperture)
            d = offset[sel]
            radius = float(np.median(zeropoints["aperture_arcsec"][sel]))
            print(
                f"{obj:10s} {aperture:>8s} {radius:7.2f} {sel.sum():6d} {np.nanmedian(d):+8.4f} "
                f"{np.nanmax(np.abs(d)):8.4f} {np.nanmedian(zeropoints['zeropoint_err'][sel]):7.4f}"
            )

    stars = Table.read(args.night / "truth" / "stars.ecsv")
    positions = Table({"RA_ICRS": stars["ra"], "DE_ICRS": stars["dec"]})
    print(f"\nnight mean magnitudes of isolated stars < {args.faint} mag - truth [mag]")
    print(f"{'object':10s} {'filter':>6s} {'stars':>6s} {'median':>8s} {'RMS':>7s}")
    for path in sorted(args.work.glob("photometry/*/magnitudes.ecsv")):
        table = Table.read(path)
        match = crossmatch(table, positions, 0.5)
        row = np.asarray(match["refcat_row"])
        ok = row >= 0
        variable = np.zeros(len(table), bool)
        variable[ok] = np.asarray(stars["variable"], bool)[row[ok]]
        for band in ("g", "r", "i"):
            if band not in table.colnames:
                continue
            true = np.full(len(table), np.nan)
            true[ok] = np.asarray(stars[band], float)[row[ok]]
            sel = np.isfinite(table[band]) & (true < args.faint) & ~variable & table["isolated"]
            d = np.asarray(table[band])[sel] - true[sel]
            print(
                f"{path.parent.name:10s} {band:>6s} {sel.sum():6d} {np.median(d):+8.4f} "
                f"{np.sqrt(np.mean(d**2)):7.4f}"
            )


if __name__ == "__main__":
    main()
