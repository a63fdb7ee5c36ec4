"""Score the photometry of a reduced simulated night against the simulator's truth.

Prints, per target and aperture, how far the zero points are from the true ones, per target
and filter the RMS of the night's mean magnitudes of isolated stars brighter than 15 mag
against their true magnitudes, and for cluster catalogues the same for every star brighter than
15 mag (isolated or not, variables left out), for the catalogue's magnitudes (PSF with
``photometry.method: psf``) and, beside them, the aperture's. The README's photometry numbers
come from this script:

    .venv/bin/python bench/score_photometry.py data/demo_night results/demo_night
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from astropy.table import Table

from aifa_steps.core.formats import frame_stem
from aifa_steps.photometry.refcat import crossmatch
from aifa_steps.simulate.truth import closest_bright_neighbour


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("night", type=Path, help="simulated night folder (with truth/)")
    parser.add_argument("work", type=Path, help="work folder of its reduction")
    parser.add_argument("--faint", type=float, default=15.0, help="faintest true magnitude")
    parser.add_argument("--verbose", action="store_true", help="list blended stars off by 0.03")
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
        for column in ("g", "r", "i", "g_aper", "r_aper", "i_aper"):
            if column not in table.colnames:
                continue
            band = column[0]
            true = np.full(len(table), np.nan)
            true[ok] = np.asarray(stars[band], float)[row[ok]]
            sel = np.isfinite(table[column]) & (true < args.faint) & ~variable & table["isolated"]
            d = np.asarray(table[column])[sel] - true[sel]
            print(
                f"{path.parent.name:10s} {column:>6s} {sel.sum():6d} {np.median(d):+8.4f} "
                f"{np.sqrt(np.mean(d**2)):7.4f}"
            )

    for path in sorted(args.work.glob("products/*/catalogue.ecsv")):
        score_catalogue(path, stars, positions, args.faint, args.verbose)


def score_catalogue(
    path: Path, stars: Table, positions: Table, faint: float, verbose: bool = False
) -> None:
    """Every star of a catalogue brighter than ``faint`` against the truth, by method.

    Saturated stars count too (a PSF fit of the wings measures them; the aperture has no
    magnitude for them). Stars are also scored by the distance of their closest true
    neighbour that adds at least 10 % of their flux, in units of the FWHM (``--fwhm``):
    isolated (none within 3 FWHM), 0.5-1, 1-1.5, 1.5-3 FWHM; closer pairs are one image that
    no method separates.
    """

    table = Table.read(path)
    fwhm = 2.0  # arcsec, about the simulated seeing
    match = crossmatch(table, positions, 0.5)
    row = np.asarray(match["refcat_row"])
    ok = row >= 0
    method = table.meta.get("METHOD", "aperture")
    bins = (("isolated", 3.0, np.inf), ("<0.5", 0, 0.5), ("0.5-1", 0.5, 1.0))
    bins += (("1-1.5", 1.0, 1.5), (">=1.5", 1.5, 3.0))
    print(f"\n{path.parent.name}: catalogue ({method}) stars < {faint} mag - truth [mag]")
    print("(RMS about the median; pairs by the closest neighbour adding >= 10 % flux, in FWHM)")
    head = f"{'filter':>6s} {'column':>8s} {'stars':>6s} {'of':>4s} {'median':>8s} {'RMS':>7s}"
    print(head + " " + " ".join(f"{name:>14s}" for name, _, _ in bins))
    for band in ("g", "r", "i"):
        true = np.full(len(table), np.nan)
        true[ok] = np.asarray(stars[band], float)[row[ok]]
        variable = np.zeros(len(table), bool)
        variable[ok] = np.asarray(stars["variable"], bool)[row[ok]]
        closest = closest_bright_neighbour(stars, band, fwhm)
        star_sep = np.full(len(table), np.inf)
        star_sep[ok] = closest[row[ok]]
        wanted = ok & (true < faint) & ~variable
        for column in (band, f"{band}_aper"):
            if column not in table.colnames:
                continue
            value = np.asarray(table[column], float)
            sel = wanted & np.isfinite(value)
            d = value - true
            med = np.median(d[sel])
            rms = np.sqrt(np.mean((d[sel] - med) ** 2))
            cells = []
            for _, low, high in bins:
                part = sel & (star_sep >= low) & ((star_sep < high) | np.isinf(high))
                value_rms = np.sqrt(np.mean((d[part] - med) ** 2)) if part.any() else np.nan
                cells.append(f"{value_rms:7.4f} ({part.sum():3d})")
                if verbose and low > 0 and np.isfinite(high):
                    for k in np.flatnonzero(part & (np.abs(d - med) > 0.03)):
                        print(
                            f"  {column} id {table['id'][k]} true {true[k]:.2f} "
                            f"d {d[k] - med:+.3f} neighbour at {star_sep[k]:.2f} FWHM"
                        )
            print(
                f"{band:>6s} {column:>8s} {sel.sum():6d} {wanted.sum():4d} {med:+8.4f} "
                f"{rms:7.4f} " + " ".join(f"{c:>14s}" for c in cells)
            )


if __name__ == "__main__":
    main()
